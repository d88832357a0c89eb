"""Tissue mask → polygons with holes (pixel-edge tracing, written from scratch) → GeoJSON.

A mask without diagonal-only contacts (see :func:`gliofuse.wsi.segment.fill_saddles`) has simple,
non-touching boundary rings along pixel edges, so the polygons cover exactly the mask pixels.
Rings follow the GeoJSON right-hand rule in the written coordinates (exterior: positive shoelace
area; holes: negative). Coordinates are level-0 px ``(x, y)``; rings are closed (first == last).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import ndimage

from gliofuse.io import write_text_atomic_


@dataclass
class TissuePolygon:
    """One tissue region.

    Attributes
    ----------
    exterior : (K, 2) float64 closed ring, level-0 px (x, y).
    holes : list of (K_i, 2) float64 closed rings, level-0 px.
    """

    exterior: np.ndarray
    holes: list[np.ndarray] = field(default_factory=list)

    @property
    def area(self) -> float:
        """Net area in level-0 px² (exterior minus holes)."""
        return ring_area(self.exterior) + sum(ring_area(h) for h in self.holes)


def ring_area(ring: np.ndarray) -> float:
    """Signed shoelace area of a closed ring (positive: counter-clockwise in the written coordinates)."""
    x, y = ring[:, 0], ring[:, 1]
    return 0.5 * float(np.dot(x[:-1], y[1:]) - np.dot(x[1:], y[:-1]))


def _boundary_edges(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Directed pixel edges between tissue and background, tissue on a fixed side.

    Returns (start vertex id, end vertex id, flat index of the tissue pixel the edge borders);
    vertex (vx, vy) has id ``vy * (W + 1) + vx``.
    """
    w = mask.shape[1]
    p = np.pad(mask, 1)
    W1 = w + 1
    starts, ends, owners = [], [], []
    # horizontal edges at vertex row vy between pixel rows vy-1 (above) and vy (below)
    above, below = p[:-1, 1:-1], p[1:, 1:-1]  # (h + 1, w)
    vy, vx = np.nonzero(below & ~above)  # top edge of a tissue pixel: run right-to-left
    starts.append(vy * W1 + vx + 1); ends.append(vy * W1 + vx); owners.append(vy * w + vx)
    vy, vx = np.nonzero(above & ~below)  # bottom edge of a tissue pixel: run left-to-right
    starts.append(vy * W1 + vx); ends.append(vy * W1 + vx + 1); owners.append((vy - 1) * w + vx)
    # vertical edges at vertex column vx between pixel columns vx-1 (left) and vx (right)
    left, right = p[1:-1, :-1], p[1:-1, 1:]  # (h, w + 1)
    vy, vx = np.nonzero(right & ~left)  # left edge of a tissue pixel: run downwards
    starts.append(vy * W1 + vx); ends.append((vy + 1) * W1 + vx); owners.append(vy * w + vx)
    vy, vx = np.nonzero(left & ~right)  # right edge of a tissue pixel: run upwards
    starts.append((vy + 1) * W1 + vx); ends.append(vy * W1 + vx); owners.append(vy * w + vx - 1)
    return np.concatenate(starts), np.concatenate(ends), np.concatenate(owners)


def _corners(ring_ids: np.ndarray, width1: int) -> np.ndarray:
    """Vertex ids of a closed ring (first == last) → (K, 2) corner coordinates, collinear points removed."""
    xy = np.stack([ring_ids % width1, ring_ids // width1], axis=1).astype(np.float64)[:-1]
    prev, nxt = np.roll(xy, 1, axis=0), np.roll(xy, -1, axis=0)
    cross = (xy[:, 0] - prev[:, 0]) * (nxt[:, 1] - xy[:, 1]) - (xy[:, 1] - prev[:, 1]) * (nxt[:, 0] - xy[:, 0])
    xy = xy[cross != 0][::-1]  # reversed: exteriors counter-clockwise (positive area) in (x, y)
    return np.vstack([xy, xy[:1]])


def mask_to_polygons(mask: np.ndarray, downsample: tuple[float, float] = (1.0, 1.0)) -> list[TissuePolygon]:
    """Trace the tissue regions of a (H, W) bool mask into polygons with holes.

    Parameters
    ----------
    mask : (H, W) bool, without diagonal-only contacts (else such contacts are traced as pinched
        rings, which are not valid simple-feature polygons).
    downsample : (dx, dy) level-0 px per mask px; output coordinates are level-0 px.

    Returns
    -------
    One :class:`TissuePolygon` per 4-connected tissue region, in raster order of the region's first pixel.
    Their summed ``area`` equals ``mask.sum() * dx * dy``.
    """
    w = mask.shape[1]
    if not mask.any():
        return []
    starts, ends, owners = _boundary_edges(mask)
    order = np.argsort(starts, kind="stable")
    starts, ends, owners = starts[order], ends[order], owners[order]
    if np.any(starts[1:] == starts[:-1]):
        raise ValueError("mask has diagonal-only pixel contacts; apply gliofuse.wsi.segment.fill_saddles first")
    nxt = np.searchsorted(starts, ends)
    labels, _ = ndimage.label(mask)
    label_of_edge = labels.ravel()[owners]
    seen = np.zeros(len(starts), bool)
    exteriors: dict[int, np.ndarray] = {}
    holes: dict[int, list[np.ndarray]] = {}
    dx, dy = downsample
    for e0 in range(len(starts)):
        if seen[e0]:
            continue
        ids = []
        e = e0
        while not seen[e]:
            seen[e] = True
            ids.append(starts[e])
            e = nxt[e]
        ids.append(starts[e0])
        ring = _corners(np.asarray(ids), w + 1)
        ring[:, 0] *= dx
        ring[:, 1] *= dy
        lab = int(label_of_edge[e0])
        if ring_area(ring) > 0:
            exteriors[lab] = ring
        else:
            holes.setdefault(lab, []).append(ring)
    return [TissuePolygon(exterior=exteriors[k], holes=holes.get(k, [])) for k in sorted(exteriors)]


def polygons_to_geojson(polygons: list[TissuePolygon], *, mpp_level0: float | None = None,
                        properties: dict[str, Any] | None = None) -> dict[str, Any]:
    """GeoJSON FeatureCollection, one ``Polygon`` Feature per tissue region (QuPath-importable annotations).

    Feature properties: ``objectType`` ``annotation``, ``classification`` Tissue, ``area_px0`` (level-0 px²),
    ``area_um2`` (when ``mpp_level0`` is known) and ``n_holes``. ``properties`` go on the collection.
    """
    feats = []
    for i, poly in enumerate(polygons):
        rings = [poly.exterior, *poly.holes]
        props: dict[str, Any] = {"objectType": "annotation", "classification": {"name": "Tissue"},
                                 "region": i, "area_px0": round(poly.area, 2), "n_holes": len(poly.holes)}
        if mpp_level0:
            props["area_um2"] = round(poly.area * mpp_level0 * mpp_level0, 2)
        feats.append({"type": "Feature", "id": f"tissue-{i}", "properties": props,
                      "geometry": {"type": "Polygon",
                                   "coordinates": [np.round(r, 3).tolist() for r in rings]}})
    return {"type": "FeatureCollection", "properties": {"units": "level-0 px", **(properties or {})},
            "features": feats}


def write_geojson_(path: str | os.PathLike[str], collection: dict[str, Any]) -> None:
    """Write a GeoJSON object atomically (compact, one line)."""
    write_text_atomic_(path, json.dumps(collection, separators=(",", ":")) + "\n")


def read_geojson_polygons(collection: dict[str, Any]) -> list[TissuePolygon]:
    """Polygons (and MultiPolygons) of a GeoJSON FeatureCollection → :class:`TissuePolygon` list."""
    out = []
    for feat in collection.get("features", []):
        geom = feat.get("geometry") or {}
        parts = [geom["coordinates"]] if geom.get("type") == "Polygon" else geom.get("coordinates", [])
        for rings in parts:
            arrs = [np.asarray(r, np.float64) for r in rings]
            out.append(TissuePolygon(exterior=arrs[0], holes=arrs[1:]))
    return out
