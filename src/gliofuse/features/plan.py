"""Plan how the patches of a slide are read: batches of read units (one ``read_region`` each).

A *read unit* is a rectangle at the read level that covers one or more patches; its patches are cut
out of it in memory. With the ``region`` strategy, patches are grouped into cells of ``region_px``
read-level px (row-major), so one JPEG-tile decode serves up to (region_px / read_size)² patches;
sparse groups fall back to rows or single patches. With ``patch``, every patch is its own unit.
The plan depends only on the coordinates and these settings, never on the number of workers, so
batches (and their features) are the same however they are read.
"""

from __future__ import annotations

import hashlib
import itertools
from dataclasses import dataclass

import numpy as np

#: a unit is read as one rectangle only if its patches cover at least this fraction of it
MIN_DENSITY = 0.5


@dataclass(frozen=True)
class ReadUnit:
    """One ``read_region`` call.

    Attributes
    ----------
    x0, y0 : level-0 px of the rectangle's top-left corner (= the top-left patch corner).
    width, height : rectangle size in px of the read level.
    rows : (k,) int64 indices of the patches (rows of the coords array) it covers.
    offsets : (k, 2) int64 (x, y) of each patch's corner inside the rectangle, read-level px.
    corners : (k, 2) int64 level-0 (x, y) of each patch (for re-reading patches one by one).
    """

    x0: int
    y0: int
    width: int
    height: int
    rows: np.ndarray
    offsets: np.ndarray
    corners: np.ndarray

    def single(self, j: int, read_size: int) -> ReadUnit:
        """The unit reading only patch ``j`` at its own corner."""
        x, y = self.corners[j].tolist()
        return ReadUnit(x0=int(x), y0=int(y), width=read_size, height=read_size, rows=self.rows[j:j + 1],
                        offsets=np.zeros((1, 2), np.int64), corners=self.corners[j:j + 1])


@dataclass(frozen=True)
class Batch:
    """Patches encoded in one forward pass: ``rows`` in order, read by ``units``."""

    index: int
    units: tuple[ReadUnit, ...]

    @property
    def rows(self) -> np.ndarray:
        return np.concatenate([u.rows for u in self.units])


def _unit(coords: np.ndarray, rows: np.ndarray, *, downsample: float, read_size: int) -> ReadUnit:
    c = coords[rows]
    x0, y0 = int(c[:, 0].min()), int(c[:, 1].min())
    offsets = np.rint((c - [x0, y0]) / downsample).astype(np.int64)
    w, h = (offsets.max(0) + read_size).tolist()
    return ReadUnit(x0=x0, y0=y0, width=int(w), height=int(h), rows=rows.astype(np.int64), offsets=offsets,
                    corners=c.astype(np.int64))


def _split(coords: np.ndarray, rows: np.ndarray, *, downsample: float, read_size: int) -> list[ReadUnit]:
    """Read units for a group of patches: one rectangle if dense, else per row, else per patch."""
    unit = _unit(coords, rows, downsample=downsample, read_size=read_size)
    if len(rows) == 1 or len(rows) * read_size**2 >= MIN_DENSITY * unit.width * unit.height:
        return [unit]
    out: list[ReadUnit] = []
    ys = coords[rows, 1]
    for y in np.unique(ys):
        row_rows = rows[ys == y]
        u = _unit(coords, row_rows, downsample=downsample, read_size=read_size)
        if len(row_rows) * read_size**2 >= MIN_DENSITY * u.width * u.height:
            out.append(u)
        else:
            out.extend(_unit(coords, rows_[None], downsample=downsample, read_size=read_size) for rows_ in row_rows)
    return out


def plan_batches(coords: np.ndarray, *, read_size: int, downsample: float, batch_size: int,
                 strategy: str = "region", region_px: int = 2048) -> list[Batch]:
    """Split the patches at ``coords`` into batches of ≤ ``batch_size`` patches and their read units.

    Parameters
    ----------
    coords : (N, 2) int64 level-0 (x, y) patch corners.
    read_size : patch side in px of the read level.
    downsample : level-0 px per read-level px.
    batch_size : patches per batch.
    strategy : ``region`` (group patches into cells of ``region_px`` read-level px) or ``patch``.

    Returns
    -------
    Batches covering every row of ``coords`` exactly once.
    """
    n = len(coords)
    if n == 0:
        return []
    if strategy == "patch":
        order = np.arange(n)
        cell_key = order  # each patch its own group
    elif strategy == "region":
        per_side = max(1, region_px // read_size)
        cell0 = per_side * read_size * downsample  # cell side in level-0 px
        cx = np.floor(coords[:, 0] / cell0).astype(np.int64)
        cy = np.floor(coords[:, 1] / cell0).astype(np.int64)
        order = np.lexsort((coords[:, 0], coords[:, 1], cx, cy))
        cell_key = (cy * (int(cx.max()) + 1) + cx)[order]
        cell_key = np.concatenate([[0], np.cumsum(np.diff(cell_key) != 0)])
    else:
        raise ValueError(f"unknown read strategy {strategy!r}; expected 'region' or 'patch'")
    batches: list[Batch] = []
    for b, start in enumerate(range(0, n, batch_size)):
        rows = order[start:start + batch_size]
        keys = cell_key[start:start + batch_size]
        bounds = np.r_[0, np.flatnonzero(np.diff(keys)) + 1, len(rows)]
        units: list[ReadUnit] = []
        for a, e in itertools.pairwise(bounds):
            units.extend(_split(coords, rows[a:e], downsample=downsample, read_size=read_size))
        batches.append(Batch(index=b, units=tuple(units)))
    return batches


def plan_hash(batches: list[Batch]) -> str:
    """sha256 (16 hex) of a plan: which rows each batch holds, in order."""
    h = hashlib.sha256()
    for batch in batches:
        h.update(np.int64(batch.index).tobytes())
        h.update(batch.rows.astype(np.int64).tobytes())
    return h.hexdigest()[:16]
