"""Patch grid at a target resolution, filtered by the tissue mask.

Coordinates are level-0 px ``(x, y)`` of each patch's top-left corner (CLAM/TRIDENT convention).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import openslide

from gliofuse.wsi.reader import best_level, magnification
from gliofuse.wsi.segment import TissueMask


@dataclass(frozen=True)
class PatchGeometry:
    """How a patch of ``patch_size`` px at ``target_mpp`` maps onto the slide.

    Attributes
    ----------
    patch_size : patch side in px at ``target_mpp`` (what the encoder stage resizes to).
    patch_size_level0 : patch side in level-0 px (also the grid step: patches do not overlap).
    read_level : pyramid level to read from.
    read_size : patch side in px of ``read_level``.
    mpp_level0, target_mpp : µm per px.
    """

    patch_size: int
    patch_size_level0: int
    read_level: int
    read_size: int
    mpp_level0: float
    target_mpp: float

    @property
    def level0_magnification(self) -> float:
        return magnification(self.mpp_level0)

    @property
    def target_magnification(self) -> float:
        return magnification(self.target_mpp)


def patch_geometry(slide: openslide.AbstractSlide, *, mpp_level0: float, target_mpp: float,
                   patch_px: int) -> PatchGeometry:
    """Patch size at level 0 and the pyramid level/size to read it from.

    ``patch_size_level0 = round(patch_px * target_mpp / mpp_level0)``; the read level is the one with
    the largest downsample ≤ the needed one; ``read_size = round(patch_size_level0 / level_downsample)``.
    """
    ps0 = max(1, round(patch_px * target_mpp / mpp_level0))
    level = best_level(slide, ps0 / patch_px)
    read_size = max(1, round(ps0 / slide.level_downsamples[level]))
    return PatchGeometry(patch_size=int(patch_px), patch_size_level0=int(ps0), read_level=int(level),
                         read_size=int(read_size), mpp_level0=float(mpp_level0), target_mpp=float(target_mpp))


def grid_coords(width0: int, height0: int, patch_size_level0: int) -> np.ndarray:
    """Non-overlapping grid from (0, 0) of patches fully inside the slide → (N, 2) int64 level-0 (x, y), row-major."""
    nx, ny = width0 // patch_size_level0, height0 // patch_size_level0
    xs = np.arange(nx, dtype=np.int64) * patch_size_level0
    ys = np.arange(ny, dtype=np.int64) * patch_size_level0
    yy, xx = np.meshgrid(ys, xs, indexing="ij")
    return np.stack([xx.ravel(), yy.ravel()], axis=1)


def _bilinear(table: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    h, w = table.shape
    x = np.clip(x, 0, w - 1)
    y = np.clip(y, 0, h - 1)
    x0 = np.minimum(np.floor(x).astype(np.int64), w - 2)
    y0 = np.minimum(np.floor(y).astype(np.int64), h - 2)
    fx, fy = x - x0, y - y0
    return ((1 - fy) * ((1 - fx) * table[y0, x0] + fx * table[y0, x0 + 1])
            + fy * ((1 - fx) * table[y0 + 1, x0] + fx * table[y0 + 1, x0 + 1]))


def tissue_fractions(tissue: TissueMask, coords: np.ndarray, patch_size_level0: int) -> np.ndarray:
    """Exact area fraction of each patch covered by the (piecewise-constant) tissue mask.

    Parameters
    ----------
    coords : (N, 2) level-0 (x, y) top-left corners.

    Returns
    -------
    (N,) float32 in [0, 1].
    """
    if len(coords) == 0:
        return np.zeros(0, dtype=np.float32)
    m = tissue.mask.astype(np.float64)
    integral = np.zeros((m.shape[0] + 1, m.shape[1] + 1))
    integral[1:, 1:] = m.cumsum(0).cumsum(1)
    dx, dy = tissue.downsample
    x0 = coords[:, 0] / dx
    y0 = coords[:, 1] / dy
    x1 = (coords[:, 0] + patch_size_level0) / dx
    y1 = (coords[:, 1] + patch_size_level0) / dy
    area = (_bilinear(integral, x1, y1) - _bilinear(integral, x0, y1)
            - _bilinear(integral, x1, y0) + _bilinear(integral, x0, y0))
    frac = area / ((x1 - x0) * (y1 - y0))
    return np.clip(frac, 0.0, 1.0).astype(np.float32)


def tissue_patches(slide: openslide.AbstractSlide, tissue: TissueMask, geom: PatchGeometry,
                   *, min_tissue_fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """Grid patches with tissue fraction ≥ ``min_tissue_fraction``.

    Returns
    -------
    coords : (N, 2) int64 level-0 (x, y), row-major.
    fraction : (N,) float32 tissue fraction of each kept patch.
    """
    w0, h0 = slide.dimensions
    coords = grid_coords(w0, h0, geom.patch_size_level0)
    frac = tissue_fractions(tissue, coords, geom.patch_size_level0)
    keep = (frac >= min_tissue_fraction) & (frac > 0)
    return coords[keep], frac[keep]
