"""Tissue segmentation on a low-resolution image (CLAM-class HSV-saturation method, written from scratch).

Pipeline: read the slide at ≈ ``seg_mpp`` µm/px → HSV saturation → median filter → Otsu (or fixed)
threshold → morphological closing (radius in µm) → drop tissue regions and fill holes smaller than
``min_tissue_area_um2``. All sizes in the config are physical, so 20x and 40x scans of the same tissue
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
    if max_px <= 0 or mask.all() or not mask.any():
        return mask
    labels, n = ndimage.label(~mask)
    sizes = np.bincount(labels.ravel(), minlength=n + 1)
    border = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
    fill = sizes < max_px
    fill[0] = False
    fill[border] = False
    return mask | fill[labels]


def segment_image(rgb: np.ndarray, *, mpp: float, cfg: WsiConfig) -> tuple[np.ndarray, int]:
    """Tissue mask of an (H, W, 3) uint8 image at ``mpp`` µm/px → ((H, W) bool, threshold)."""
    sat = saturation(rgb)
    k = max(1, int(cfg.median_blur_px))
    if k % 2 == 0:
        k += 1
    if k > 1 and min(sat.shape) >= k:
        sat = np.asarray(Image.fromarray(sat).filter(ImageFilter.MedianFilter(k)))
    if cfg.saturation_threshold is None:
        thr = max(otsu_threshold(sat), MIN_SATURATION_THRESHOLD)
    else:
        thr = int(cfg.saturation_threshold)
    mask = sat > thr
    mask = close_mask(mask, round(cfg.close_um / mpp))
    min_px = cfg.min_tissue_area_um2 / (mpp * mpp)
    mask = remove_small_regions(mask, min_px)
    mask = fill_small_holes(mask, min_px)
    return mask, thr


def segment_tissue(slide: openslide.AbstractSlide, *, mpp_level0: float, cfg: WsiConfig,
                   path: str | os.PathLike[str] = "") -> TissueMask:
    """Segment tissue at ≈ ``cfg.seg_mpp`` µm/px (never finer than level 0).

    Parameters
    ----------
    slide : open OpenSlide handle.
    mpp_level0 : µm per level-0 px.
    cfg : ``seg_mpp``, ``median_blur_px``, ``saturation_threshold``, ``close_um``, ``min_tissue_area_um2``.
    """
    downsample = max(1.0, cfg.seg_mpp / mpp_level0)
    rgb, (dx, dy) = read_downsampled(slide, downsample, path=path)
    mpp = mpp_level0 * math.sqrt(dx * dy)
    mask, thr = segment_image(rgb, mpp=mpp, cfg=cfg)
    return TissueMask(mask=mask, downsample=(dx, dy), mpp=mpp, threshold=thr)
