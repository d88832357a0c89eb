"""Read planning: batches of region reads (gliofuse.features.plan)."""

from __future__ import annotations

import numpy as np
import pytest

from gliofuse.features.plan import plan_batches, plan_hash
from gliofuse.wsi.grid import grid_coords


def _check_cover(batches: list, n: int, batch_size: int) -> None:
    rows = np.concatenate([b.rows for b in batches])
    assert sorted(rows.tolist()) == list(range(n))
    assert all(len(b.rows) <= batch_size for b in batches)
    assert [b.index for b in batches] == list(range(len(batches)))


def test_region_plan_groups_contiguous_patches() -> None:
    coords = grid_coords(8192, 4096, 512)  # 16 x 8 patches of 512 level-0 px (40x -> 20x at level 0)
    batches = plan_batches(coords, read_size=512, downsample=1.0, batch_size=64, strategy="region", region_px=2048)
    _check_cover(batches, len(coords), 64)
    units = [u for b in batches for u in b.units]
    assert len(units) == len(coords) // 16  # 4 x 4 patches per 2048² region
    for u in units:
        assert (u.width, u.height) == (2048, 2048)
        np.testing.assert_array_equal(u.corners, coords[u.rows])
        np.testing.assert_array_equal(u.offsets, coords[u.rows] - [u.x0, u.y0])
    patch = plan_batches(coords, read_size=512, downsample=1.0, batch_size=64, strategy="patch")
    _check_cover(patch, len(coords), 64)
    assert all(len(u.rows) == 1 for b in patch for u in b.units)
    assert plan_hash(patch) != plan_hash(batches)
    assert plan_hash(batches) == plan_hash(plan_batches(coords, read_size=512, downsample=1.0, batch_size=64))


def test_sparse_groups_fall_back_to_rows_and_patches() -> None:
    coords = np.array([[0, 0], [256, 0], [512, 0], [0, 1792], [1792, 1792], [2304, 2304]], np.int64)
    batches = plan_batches(coords, read_size=256, downsample=1.0, batch_size=5, strategy="region", region_px=2048)
    _check_cover(batches, len(coords), 5)
    units = [u for b in batches for u in b.units]
    sizes = sorted((u.width, u.height, len(u.rows)) for u in units)
    assert (768, 256, 3) in sizes  # the dense row is one read
    assert sum(n for *_, n in sizes) == len(coords) and max(w * h for w, h, _ in sizes) <= 768 * 256


def test_level_offsets_and_empty() -> None:
    coords = np.array([[0, 0], [1030, 0], [0, 1030], [1030, 1030]], np.int64)  # level-0 px, ds ~4.0235
    batches = plan_batches(coords, read_size=256, downsample=4.0235, batch_size=8)
    (u,) = batches[0].units
    assert u.offsets.tolist() == [[0, 0], [256, 0], [0, 256], [256, 256]] and (u.width, u.height) == (512, 512)
    assert plan_batches(np.zeros((0, 2), np.int64), read_size=256, downsample=1.0, batch_size=8) == []
    with pytest.raises(ValueError, match="read strategy"):
        plan_batches(coords, read_size=256, downsample=1.0, batch_size=8, strategy="tiles")
