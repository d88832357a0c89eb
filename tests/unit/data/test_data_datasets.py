"""Feature-bag and omics loading, train-only omics preprocessing, patch sampling."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import h5py
import numpy as np
import pytest
import torch

from gliofuse.data.collate import collate_bags
from gliofuse.data.datasets import (
    OmicsPreprocessor,
    PatientBagDataset,
    Targets,
    group_feature_files_,
    inspect_feature_file_,
    read_bag_,
    read_omics_,
)
from gliofuse.errors import InputDataError

D = 37


def _factory() -> ModuleType:
    name = "gliofuse_tests_fold_factory"
    if name not in sys.modules:
        path = Path(__file__).parents[1] / "training" / "fold_factory.py"
        spec = importlib.util.spec_from_file_location(name, path)
        assert spec is not None and spec.loader is not None
        sys.modules[name] = module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    return sys.modules[name]


@pytest.fixture
def slides(tmp_path: Path) -> dict[str, Path]:
    f = _factory()
    rng = np.random.default_rng(0)
    paths = {
        "a1": tmp_path / "TCGA-02-0001-01Z-00-DX1.AAAA.h5",
        "a2": tmp_path / "TCGA-02-0001-01Z-00-DX2.BBBB.h5",
        "b1": tmp_path / "TCGA-02-0002-01Z-00-DX1.CCCC.h5",
        "b_skip": tmp_path / "TCGA-02-0002-01Z-00-DX2.DDDD.h5",
    }
    f.write_feature_file(paths["a1"], rng.standard_normal((11, D)))
    f.write_feature_file(paths["a2"], rng.standard_normal((4, D)))
    f.write_feature_file(paths["b1"], rng.standard_normal((7, D)))
    f.write_feature_file(paths["b_skip"], np.zeros((0, D)), status="skipped")
    return paths


def test_bags_concatenate_ok_slides_per_patient(slides: dict[str, Path]) -> None:
    by_patient, dim = group_feature_files_(slides.values())
    assert dim == D and sorted(by_patient) == ["TCGA-02-0001", "TCGA-02-0002"]
    assert [i.path for i in by_patient["TCGA-02-0002"]] == [slides["b1"]]
    bag = read_bag_(by_patient["TCGA-02-0001"])
    with h5py.File(slides["a1"]) as f1, h5py.File(slides["a2"]) as f2:
        np.testing.assert_array_equal(bag, np.concatenate([f1["features"][...], f2["features"][...]]))


def test_feature_file_errors_name_the_file(tmp_path: Path, slides: dict[str, Path]) -> None:
    with pytest.raises(InputDataError, match="slide feature file not found: .*nope.h5"):
        inspect_feature_file_(tmp_path / "nope.h5")
    bad = tmp_path / "TCGA-02-0003-01Z-00-DX1.h5"
    with h5py.File(bad, "w") as fh:
        fh.create_dataset("feats", data=np.zeros((2, 3)))
    with pytest.raises(InputDataError, match=r"TCGA-02-0003-01Z-00-DX1.h5 has no 'features' dataset"):
        group_feature_files_([bad])
    _factory().write_feature_file(bad, np.zeros((2, 5)))
    with pytest.raises(InputDataError, match="disagree on the feature dimension"):
        group_feature_files_([*slides.values(), bad])


def test_read_omics_validates(tmp_path: Path) -> None:
    path = tmp_path / "expression.h5"
    _factory().write_omics(path, np.arange(6, dtype=float).reshape(2, 3), ["TCGA-02-0002", "TCGA-02-0001"],
                           ["ENSG1", "ENSG2", "ENSG3"])
    m = read_omics_(path)
    assert m.patients == ("TCGA-02-0001", "TCGA-02-0002") and m.genes[0] == "ENSG1"
    np.testing.assert_array_equal(m.rows(["TCGA-02-0002"]), [[0, 1, 2]])
    with pytest.raises(InputDataError, match="no omics profile"):
        m.rows(["TCGA-99-9999"])
    with h5py.File(path, "a") as fh:
        del fh["genes"]
    with pytest.raises(InputDataError, match=r"lacks dataset\(s\) \['genes'\]"):
        read_omics_(path)


def test_omics_preprocessor_uses_training_rows_only() -> None:
    rng = np.random.default_rng(1)
    train = rng.standard_normal((9, 23)) * np.linspace(0.1, 3, 23) + 4.0
    test = rng.standard_normal((5, 23)) * np.linspace(300, 1, 23)  # high variance on other genes
    pre = OmicsPreprocessor(n_top_genes=5).fit(train)
    expected = np.sort(np.argsort(-train.var(axis=0))[:5])
    assert pre.gene_index.tolist() == expected.tolist()
    assert pre.gene_index.tolist() != np.sort(np.argsort(-np.vstack([train, test]).var(axis=0))[:5]).tolist()
    np.testing.assert_allclose(pre.mean, train[:, expected].mean(axis=0), rtol=1e-5)
    z = pre.transform(train)
    assert z.shape == (9, 5) and z.dtype == np.float32
    np.testing.assert_allclose(z.mean(axis=0), 0, atol=1e-5)
    np.testing.assert_allclose(z.std(axis=0), 1, atol=1e-4)
    assert pre.transform(test).shape == (5, 5)
    assert OmicsPreprocessor(n_top_genes=100).fit(train).n_features == 23


def test_patch_sampling_is_seeded_and_inference_uses_all(slides: dict[str, Path]) -> None:
    by_patient, _ = group_feature_files_(slides.values())
    pids = ["TCGA-02-0001", "TCGA-02-0002"]
    ds = PatientBagDataset(patient_ids=pids, slide_files=by_patient, omics=np.ones((2, 3)),
                           targets=Targets(np.array([10.0, 20.0]), np.array([1.0, 0.0]), np.array([2, -1])),
                           max_patches=6, seed=3)
    first = ds[0]
    assert first.wsi.shape == (6, D) and ds[1].wsi.shape == (6, D)
    assert torch.equal(ds[0].wsi, first.wsi)  # same epoch, same sample
    ds.set_epoch(1)
    assert not torch.equal(ds[0].wsi, first.wsi)
    full = ds.inference_view()
    assert full[0].wsi.shape == (15, D) and ds.max_patches == 6
    assert (first.time_days, first.event, first.label) == (10.0, 1.0, 2)
    assert ds.wsi_dim == D and ds.omics_dim == 3


def test_dataset_requires_features_for_every_patient(slides: dict[str, Path]) -> None:
    by_patient, _ = group_feature_files_(slides.values())
    with pytest.raises(InputDataError, match=r"no usable slide feature file.*TCGA-02-0009"):
        PatientBagDataset(patient_ids=["TCGA-02-0001", "TCGA-02-0009"], slide_files=by_patient, omics=None)


def test_lazy_loading_matches_preloaded(slides: dict[str, Path]) -> None:
    by_patient, _ = group_feature_files_(slides.values())
    kw = {"patient_ids": ["TCGA-02-0001"], "slide_files": by_patient, "omics": None}
    assert torch.equal(PatientBagDataset(**kw, preload=False)[0].wsi, PatientBagDataset(**kw, preload=True)[0].wsi)


# ----------------------------------------------------------------------------- positions, bag levels, gene sets
def test_grid_positions_from_level0_coords() -> None:
    from gliofuse.data.datasets import grid_positions, raster_positions

    pitch = 512
    coords = np.array([[1000 + c * pitch, 3000 + r * pitch] for r, c in [(0, 0), (0, 1), (0, 3), (2, 1), (3, 3)]])
    assert grid_positions(coords).tolist() == [[0, 0], [0, 1], [0, 3], [2, 1], [3, 3]]
    # two tissue regions on grids with different origins still snap to one pitch
    shifted = np.vstack([coords, [[1000 + 7 * pitch + 37, 3000 + 37]]])
    assert grid_positions(shifted)[-1].tolist() == [0, 7]
    assert grid_positions(np.zeros((5, 2))).tolist() == raster_positions(5).tolist()  # degenerate coords
    assert raster_positions(5).tolist() == [[0, 0], [0, 1], [0, 2], [1, 0], [1, 1]]


def test_layout_slides_side_by_side_keeps_the_map_square() -> None:
    from gliofuse.data.datasets import layout_slides

    a = np.array([[0, 0], [3, 5]])  # 4 x 6
    b = np.array([[0, 0], [2, 5]])  # 3 x 6: below (8 x 6) is squarer than right (4 x 13)
    out = layout_slides([a, b])
    assert out[:2].tolist() == a.tolist() and out[2:].tolist() == [[5, 0], [7, 5]]
    c = np.array([[0, 0], [7, 1]])  # 8 x 2: goes right of the 8 x 6 block
    assert layout_slides([a, b, c])[4:].tolist() == [[0, 7], [7, 8]]


def test_dataset_items_carry_positions_and_slide_level_items(slides: dict[str, Path]) -> None:
    by_patient, _ = group_feature_files_(slides.values())
    pids = ["TCGA-02-0001", "TCGA-02-0002"]
    targets = Targets(np.array([10.0, 20.0]), np.array([1.0, 0.0]), np.array([2, 1]),
                      labels={"grade": np.array([0, 2])})
    sets = {"tumour": np.array([[1.0, 2.0], [3.0, 4.0]])}
    ds = PatientBagDataset(patient_ids=pids, slide_files=by_patient, omics=None, targets=targets, omics_sets=sets)
    s = ds[0]
    assert s.wsi.shape == (15, D) and s.wsi_pos.shape == (15, 2) and s.wsi_pos.dtype == torch.long
    assert s.labels == {"grade": 0} and s.omics_sets["tumour"].tolist() == [1.0, 2.0]
    # the two slides of patient 1 (4 x 4 and 1 x 4 raster grids) are laid out without overlap
    assert len({tuple(p) for p in s.wsi_pos.tolist()}) == 15
    per_slide = PatientBagDataset(patient_ids=pids, slide_files=by_patient, omics=None, targets=targets,
                                  omics_sets=sets, bag_level="slide")
    assert len(per_slide) == 3 and [per_slide.item_patient(i) for i in range(3)] == [pids[0], pids[0], pids[1]]
    assert per_slide[1].wsi.shape == (4, D) and per_slide[1].label == 2
    batch = collate_bags([per_slide[i] for i in range(3)])
    assert batch.wsi_pos.shape == (3, 11, 2) and int(batch.wsi_pos[1, 4:].max()) == -1
    assert batch.omics_sets["tumour"].shape == (3, 2) and batch.labels["grade"].tolist() == [0, 0, 2]


def test_gene_set_vectors_use_training_rows_only() -> None:
    from gliofuse.data.datasets import GeneSetPreprocessor
    from gliofuse.omics.genesets import gene_set

    names = [*gene_set("tumour")[:4], *gene_set("microenvironment")[:3], "NOT_A_MARKER"]
    rng = np.random.default_rng(2)
    train = rng.standard_normal((9, len(names))) * 2 + 5
    test = rng.standard_normal((4, len(names))) * 50
    pre = GeneSetPreprocessor(["tumour", "microenvironment"]).fit(train, names)
    assert pre.dims == {"tumour": 4, "microenvironment": 3}
    np.testing.assert_allclose(pre.mean["tumour"], train[:, :4].mean(axis=0), rtol=1e-5)
    z = pre.transform(train)
    np.testing.assert_allclose(z["microenvironment"].mean(axis=0), 0, atol=1e-5)
    assert pre.transform(test)["tumour"].shape == (4, 4)
    with pytest.raises(InputDataError, match="gene set 'tumour'"):
        GeneSetPreprocessor(["tumour"], min_genes=5).fit(train, names)
