"""Tissue segmentation on a low-resolution image (CLAM-class HSV-saturation method, written from scratch).

Pipeline: read the slide at ≈ ``seg_mpp`` µm/px → HSV saturation → median filter → Otsu (or fixed)
threshold → morphological closing (radius in µm) → drop tissue regions smaller than
``min_tissue_area_um2`` → fill holes smaller than ``min_hole_area_um2`` and all but the
``max_n_holes`` largest holes of each region → remove diagonal-only pixel contacts. All sizes in the config are physical, so 20x and 40x scans of the same tissue
give the same mask.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import numpy as np
import openslide
from PIL import Image, ImageFilter
from scipy import ndimage

from gliofuse.config import WsiConfig
from gliofuse.wsi.reader import read_downsampled

#: Otsu thresholds below this saturation are raised to it, so a blank slide (JPEG noise only)
#: does not turn into "tissue" (CLAM's fixed default threshold is 8).
MIN_SATURATION_THRESHOLD = 8


@dataclass(frozen=True)
class TissueMask:
    """Boolean tissue mask of a slide.

    Attributes
    ----------
    mask : (H_m, W_m) bool, True = tissue.
    downsample : (dx, dy) level-0 px per mask px along x and y.
    mpp : µm per mask px (geometric mean of the two axes).
    threshold : the saturation threshold used (0–255).
    """

    mask: np.ndarray
    downsample: tuple[float, float]
    mpp: float
    threshold: int

    @property
    def tissue_fraction(self) -> float:
        """Fraction of the slide area covered by tissue."""
        return float(self.mask.mean()) if self.mask.size else 0.0


def otsu_threshold(values: np.ndarray) -> int:
    """Otsu's threshold of uint8 values: pixels ``> t`` are foreground."""
    hist = np.bincount(values.ravel(), minlength=256).astype(np.float64)
    total = hist.sum()
    if total == 0:
        return 0
    levels = np.arange(256, dtype=np.float64)
    w0 = np.cumsum(hist)
    w1 = total - w0
    m0 = np.cumsum(hist * levels)
    mu0 = np.divide(m0, w0, out=np.zeros(256), where=w0 > 0)
    mu1 = np.divide(m0[-1] - m0, w1, out=np.zeros(256), where=w1 > 0)
    between = w0 * w1 * (mu0 - mu1) ** 2
    return int(np.argmax(between))


def saturation(rgb: np.ndarray) -> np.ndarray:
    """HSV saturation (0–255 uint8) of an (H, W, 3) uint8 RGB image."""
    return np.asarray(Image.fromarray(rgb).convert("HSV"))[..., 1]


def _disk(radius: int) -> np.ndarray:
    r = np.arange(-radius, radius + 1)
    return (r[:, None] ** 2 + r[None, :] ** 2) <= radius**2


def close_mask(mask: np.ndarray, radius_px: int) -> np.ndarray:
    """Morphological closing with a disk of ``radius_px`` mask px (padded, so borders are not eroded)."""
    if radius_px < 1:
        return mask
    padded = np.pad(mask, radius_px, mode="constant")
    closed = ndimage.binary_closing(padded, structure=_disk(radius_px))
    return closed[radius_px:-radius_px, radius_px:-radius_px]


def remove_small_regions(mask: np.ndarray, min_px: float) -> np.ndarray:
    """Drop 8-connected True regions with fewer than ``min_px`` pixels."""
    if min_px <= 1 or not mask.any():
        return mask
    labels, n = ndimage.label(mask, structure=np.ones((3, 3), bool))
    sizes = np.bincount(labels.ravel(), minlength=n + 1)
    keep = sizes >= min_px
    keep[0] = False
    return keep[labels]


def fill_small_holes(mask: np.ndarray, max_px: float) -> np.ndarray:
    """Fill holes (4-connected background not touching the border) with fewer than ``max_px`` pixels."""
    return fill_holes(mask, min_hole_px=max_px, max_n_holes=None)


def fill_holes(mask: np.ndarray, *, min_hole_px: float, max_n_holes: int | None) -> np.ndarray:
    """Fill the holes of each tissue region that are too small or beyond the ``max_n_holes`` largest.

    A hole is a 4-connected background component that does not touch the image border; it belongs
    to the 8-connected tissue region just above its first pixel in raster order (the region that
    encloses it). ``max_n_holes`` None: no limit; 0: every hole is filled (holes count as tissue).
    """
    if not mask.any() or mask.all():
        return mask
    bg, n = ndimage.label(~mask)
    if n == 0:
        return mask
    sizes = np.bincount(bg.ravel(), minlength=n + 1)
    border = np.unique(np.concatenate([bg[0], bg[-1], bg[:, 0], bg[:, -1]]))
    is_hole = np.ones(n + 1, bool)
    is_hole[0] = False
    is_hole[border] = False
    fill = is_hole & (sizes < min_hole_px)
    if max_n_holes is not None:
        kept = np.flatnonzero(is_hole & ~fill)
        if len(kept):
            fg, _ = ndimage.label(mask, structure=np.ones((3, 3), bool))
            ids, first = np.unique(bg.ravel(), return_index=True)
            first_of = dict(zip(ids.tolist(), first.tolist(), strict=True))
            w = mask.shape[1]
            owner = np.array([fg.ravel()[first_of[h] - w] for h in kept])  # pixel above the hole's first pixel
            order = np.lexsort((-sizes[kept], owner))  # by owner, largest hole first
            rank = np.empty(len(kept), np.int64)
            starts = np.r_[0, np.flatnonzero(np.diff(owner[order])) + 1]
            for a, b in zip(starts, np.r_[starts[1:], len(order)], strict=True):
                rank[order[a:b]] = np.arange(b - a)
            fill[kept[rank >= max_n_holes]] = True
    return mask | fill[bg]


def fill_saddles(mask: np.ndarray) -> np.ndarray:
    """Remove diagonal-only contacts: in every 2x2 block ``[[1, 0], [0, 1]]`` (or its mirror) set a 0 to 1.

    Afterwards 4- and 8-connectivity agree for tissue and background, so every tissue boundary is a
    simple closed pixel-edge ring (what :mod:`gliofuse.wsi.contours` traces). Adds very few pixels.
    """
    m = mask.copy()
    for _ in range(max(m.shape) + 1):
        a, b, c, d = m[:-1, :-1], m[:-1, 1:], m[1:, :-1], m[1:, 1:]
        s1 = a & d & ~b & ~c
        s2 = b & c & ~a & ~d
        if not (s1.any() or s2.any()):
            break
        m[:-1, 1:] |= s1
        m[:-1, :-1] |= s2
    return m


def segment_image(rgb: np.ndarray, *, mpp: float, cfg: WsiConfig) -> tuple[np.ndarray, int]:
    """Tissue mask of an (H, W, 3) uint8 image at ``mpp`` µm/px → ((H, W) bool, threshold).

    The mask has no diagonal-only contacts (:func:`fill_saddles`), so it converts exactly to polygons.
    """
    sat = saturation(rgb)
    k = max(1, int(cfg.median_blur_px))
    if k % 2 == 0:
        k += 1
    if k > 1 and min(sat.shape) >= k:
        sat = np.asarray(Image.fromarray(sat).filter(ImageFilter.MedianFilter(k)))
    if cfg.saturation_threshold == "otsu":
        thr = max(otsu_threshold(sat), MIN_SATURATION_THRESHOLD)
    else:
        thr = int(cfg.saturation_threshold)
    mask = sat > thr
    mask = close_mask(mask, round(cfg.close_um / mpp))
    mask = remove_small_regions(mask, cfg.min_tissue_area_um2 / (mpp * mpp))
    hole_px = cfg.min_hole_area_um2 / (mpp * mpp)
    for _ in range(10):  # filling saddles can split a hole; repeat until stable
        new = fill_saddles(fill_holes(mask, min_hole_px=hole_px, max_n_holes=cfg.max_n_holes))
        if np.array_equal(new, mask):
            break
        mask = new
    return mask, thr


def segment_tissue(slide: openslide.AbstractSlide, *, mpp_level0: float, cfg: WsiConfig,
                   path: str | os.PathLike[str] = "") -> TissueMask:
    """Segment tissue at ≈ ``cfg.seg_mpp`` µm/px (never finer than level 0).

    Parameters
    ----------
    slide : open OpenSlide handle.
    mpp_level0 : µm per level-0 px.
    cfg : ``seg_mpp``, ``median_blur_px``, ``saturation_threshold``, ``close_um``, ``min_tissue_area_um2``,
        ``min_hole_area_um2``, ``max_n_holes`` (all filled in by :class:`WsiConfig`).
    """
    downsample = max(1.0, cfg.seg_mpp / mpp_level0)
    rgb, (dx, dy) = read_downsampled(slide, downsample, path=path)
    mpp = mpp_level0 * math.sqrt(dx * dy)
    mask, thr = segment_image(rgb, mpp=mpp, cfg=cfg)
    return TissueMask(mask=mask, downsample=(dx, dy), mpp=mpp, threshold=thr)
