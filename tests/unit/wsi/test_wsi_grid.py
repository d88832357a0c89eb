"""Patch geometry, grid and tissue fractions (gliofuse.wsi.grid)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from gliofuse.wsi.grid import grid_coords, patch_geometry, tissue_fractions
from gliofuse.wsi.reader import open_slide
from gliofuse.wsi.segment import TissueMask


def test_grid_row_major_inside_slide() -> None:
    c = grid_coords(1001, 517, 100)
    assert c.dtype == np.int64 and c.shape == (10 * 5, 2)
    assert (c[:, 0] + 100 <= 1001).all() and (c[:, 1] + 100 <= 517).all()
    order = np.lexsort((c[:, 0], c[:, 1]))
    assert (order == np.arange(len(c))).all()
    assert c[1].tolist() == [100, 0] and c[10].tolist() == [0, 100]


def test_tissue_fraction_is_exact_area() -> None:
    rng = np.random.default_rng(3)
    mask = rng.random((23, 31)) > 0.5
    t = TissueMask(mask=mask, downsample=(7.0, 5.0), mpp=1.0, threshold=0)
    coords = np.array([[0, 0], [3, 2], [50, 40], [180, 90], [13, 17]], np.int64)
    ps = 23
    # brute force on a level-0 raster: each level-0 pixel takes the value of its mask pixel
    raster = mask.repeat(5, axis=0).repeat(7, axis=1)
    expected = [raster[y:y + ps, x:x + ps].mean() for x, y in coords]
    np.testing.assert_allclose(tissue_fractions(t, coords, ps), expected, atol=1e-6)
    assert tissue_fractions(t, np.zeros((0, 2), np.int64), ps).shape == (0,)


def test_geometry_cmu(cmu_slide: Path) -> None:
    with open_slide(cmu_slide) as s:
        g = patch_geometry(s, mpp_level0=0.499, target_mpp=0.5, patch_px=256)
    assert g.patch_size_level0 == pytest.approx(256, abs=1)
    assert (g.read_level, g.read_size) == (0, g.patch_size_level0)
    assert g.level0_magnification == pytest.approx(20.04, abs=0.01)
    assert g.target_magnification == 20.0


def test_geometry_uses_pyramid(tcga_no_mpp_slide: Path, synthetic_slides: dict[str, Path]) -> None:
    with open_slide(tcga_no_mpp_slide) as s:  # levels 1, 2.0005
        g = patch_geometry(s, mpp_level0=0.25, target_mpp=0.5, patch_px=255)
    assert (g.patch_size_level0, g.read_level, g.read_size) == (510, 1, 255)
    with open_slide(synthetic_slides["40x"]) as s:  # levels 1, ~4.002
        g = patch_geometry(s, mpp_level0=0.25, target_mpp=2.0, patch_px=129)
        ds1 = s.level_downsamples[1]
    assert (g.patch_size_level0, g.read_level) == (1032, 1)
    assert g.read_size == round(1032 / ds1)
