"""Feature files grouped into per-patient bags; grid cells and the side-by-side slide layout."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import h5py
import numpy as np
import pytest

from gliofuse.data.bags import (
    grid_positions,
    group_feature_files_,
    layout_slides,
    raster_positions,
    read_bag_with_positions_,
)
from gliofuse.errors import InputDataError
from gliofuse.features.store import inspect_feature_file_, read_slide_coords_


def test_bags_concatenate_ok_slides_per_patient(slides: dict[str, Path], feature_dim: int) -> None:
    by_patient, dim = group_feature_files_(slides.values())
    assert dim == feature_dim and sorted(by_patient) == ["TCGA-02-0001", "TCGA-02-0002"]
    assert [i.path for i in by_patient["TCGA-02-0002"]] == [slides["b1"]]
    feats, cells = read_bag_with_positions_(by_patient["TCGA-02-0001"])
    with h5py.File(slides["a1"]) as f1, h5py.File(slides["a2"]) as f2:
        np.testing.assert_array_equal(feats, np.concatenate([f1["features"][...], f2["features"][...]]))
    assert cells.shape == (15, 2) and cells.dtype == np.int64


def test_feature_file_errors_name_the_file(tmp_path: Path, slides: dict[str, Path], fold_factory: ModuleType) -> None:
    with pytest.raises(InputDataError, match="slide feature file not found: .*nope.h5"):
        inspect_feature_file_(tmp_path / "nope.h5")
    bad = tmp_path / "TCGA-02-0003-01Z-00-DX1.h5"
    with h5py.File(bad, "w") as fh:
        fh.create_dataset("feats", data=np.zeros((2, 3)))
    with pytest.raises(InputDataError, match=r"TCGA-02-0003-01Z-00-DX1.h5 lacks dataset 'features'"):
        group_feature_files_([bad])
    fold_factory.write_feature_file(bad, np.zeros((2, 5)))
    with pytest.raises(InputDataError, match="disagree on the feature dimension"):
        group_feature_files_([*slides.values(), bad])


def test_grid_positions_from_level0_coords() -> None:
    pitch = 512
    coords = np.array([[1000 + c * pitch, 3000 + r * pitch] for r, c in [(0, 0), (0, 1), (0, 3), (2, 1), (3, 3)]])
    assert grid_positions(coords).tolist() == [[0, 0], [0, 1], [0, 3], [2, 1], [3, 3]]
    # two tissue regions on grids with different origins still snap to one pitch
    shifted = np.vstack([coords, [[1000 + 7 * pitch + 37, 3000 + 37]]])
    assert grid_positions(shifted)[-1].tolist() == [0, 7]
    assert grid_positions(np.zeros((5, 2))).tolist() == raster_positions(5).tolist()  # degenerate coords
    assert raster_positions(5).tolist() == [[0, 0], [0, 1], [0, 2], [1, 0], [1, 1]]


def test_layout_slides_side_by_side_keeps_the_map_square() -> None:
    a = np.array([[0, 0], [3, 5]])  # 4 x 6
    b = np.array([[0, 0], [2, 5]])  # 3 x 6: below (8 x 6) is squarer than right (4 x 13)
    out = layout_slides([a, b])
    assert out[:2].tolist() == a.tolist() and out[2:].tolist() == [[5, 0], [7, 5]]
    c = np.array([[0, 0], [7, 1]])  # 8 x 2: goes right of the 8 x 6 block
    assert layout_slides([a, b, c])[4:].tolist() == [[0, 7], [7, 8]]


def test_file_without_coords_is_laid_out_in_raster_order(tmp_path: Path, fold_factory: ModuleType) -> None:
    path = tmp_path / "TCGA-02-0004-01Z-00-DX1.h5"
    fold_factory.write_feature_file(path, np.ones((5, 3)))
    with h5py.File(path, "a") as fh:
        del fh["coords"]
    assert read_slide_coords_(path) is None
    feats, cells = read_bag_with_positions_([inspect_feature_file_(path)])
    assert feats.shape == (5, 3) and cells.tolist() == raster_positions(5).tolist()
