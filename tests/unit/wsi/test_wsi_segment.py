"""Tissue segmentation on synthetic and real slides."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from wsi_synthetic import HOLE, SPECK, tissue_image

from gliofuse.config import WsiConfig
from gliofuse.wsi.reader import open_slide
from gliofuse.wsi.segment import fill_small_holes, otsu_threshold, remove_small_regions, segment_tissue


def test_otsu_bimodal() -> None:
    values = np.concatenate([np.full(500, 5, np.uint8), np.full(300, 120, np.uint8)])
    t = otsu_threshold(values)
    assert 5 <= t < 120


def test_small_regions_and_holes() -> None:
    m = np.zeros((31, 37), bool)
    m[5:25, 5:25] = True
    m[10:12, 10:12] = False  # 4-px hole
    m[1:3, 33:35] = True  # 4-px speck
    out = fill_small_holes(remove_small_regions(m, 10), 10)
    assert not out[1:3, 33:35].any()
    assert out[10:12, 10:12].all()
    assert out.sum() == 400


def _truth_at(mask_shape: tuple[int, int], mpp: float) -> np.ndarray:
    _, truth = tissue_image(mpp)
    img = Image.fromarray(truth.astype(np.uint8) * 255).resize(mask_shape[::-1], Image.Resampling.BOX)
    return np.asarray(img) > 127


@pytest.mark.parametrize("key,mpp", [("20x", 0.5), ("40x", 0.25)])
def test_synthetic_mask_matches_truth(synthetic_slides: dict[str, Path], key: str, mpp: float) -> None:
    cfg = WsiConfig()
    with open_slide(synthetic_slides[key]) as s:
        t = segment_tissue(s, mpp_level0=mpp, cfg=cfg)
    assert t.mpp == pytest.approx(cfg.seg_mpp, rel=0.02)
    truth = _truth_at(t.mask.shape, mpp)
    iou = (truth & t.mask).sum() / (truth | t.mask).sum()
    assert iou > 0.9
    dx, dy = t.downsample
    # the small fleck is dropped and the small hole is filled (both below min_tissue_area_um2)
    sx, sy, _ = SPECK
    hx, hy, _ = HOLE
    assert not t.mask[int(sy / mpp / dy), int(sx / mpp / dx)]
    assert t.mask[int(hy / mpp / dy), int(hx / mpp / dx)]


def test_same_mask_at_20x_and_40x(synthetic_slides: dict[str, Path]) -> None:
    cfg = WsiConfig()
    with open_slide(synthetic_slides["20x"]) as s20, open_slide(synthetic_slides["40x"]) as s40:
        m20 = segment_tissue(s20, mpp_level0=0.5, cfg=cfg)
        m40 = segment_tissue(s40, mpp_level0=0.25, cfg=cfg)
    assert m20.mask.shape == m40.mask.shape
    assert (m20.mask != m40.mask).mean() < 0.02
    assert m20.tissue_fraction == pytest.approx(m40.tissue_fraction, abs=0.02)


def test_blank_slide_has_no_tissue(synthetic_slides: dict[str, Path]) -> None:
    with open_slide(synthetic_slides["blank"]) as s:
        t = segment_tissue(s, mpp_level0=0.5, cfg=WsiConfig())
    assert not t.mask.any()


def test_cmu_tissue_fraction(cmu_slide: Path) -> None:
    with open_slide(cmu_slide) as s:
        t = segment_tissue(s, mpp_level0=0.499, cfg=WsiConfig())
    # the slide's README: about 33 % of level-0 pixels are non-background
    assert 0.25 < t.tissue_fraction < 0.45
    assert t.mask.shape == (round(2967 / (8 / 0.499)), round(2220 / (8 / 0.499)))


def test_fixed_threshold(cmu_slide: Path) -> None:
    with open_slide(cmu_slide) as s:
        loose = segment_tissue(s, mpp_level0=0.499, cfg=WsiConfig(saturation_threshold=5))
        strict = segment_tissue(s, mpp_level0=0.499, cfg=WsiConfig(saturation_threshold=200))
    assert loose.threshold == 5 and strict.threshold == 200
    assert loose.tissue_fraction > strict.tissue_fraction
