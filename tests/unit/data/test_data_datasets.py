"""PatientBagDataset: seeded patch sampling, lazy vs preloaded bags, positions and slide-level items."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from gliofuse.data.bags import group_feature_files_
from gliofuse.data.batch import Targets
from gliofuse.data.collate import collate_bags
from gliofuse.data.datasets import PatientBagDataset
from gliofuse.errors import InputDataError
from gliofuse.features.store import read_slide_features_


def test_patch_sampling_is_seeded_and_inference_uses_all(slides: dict[str, Path], feature_dim: int) -> None:
    by_patient, _ = group_feature_files_(slides.values())
    pids = ["TCGA-02-0001", "TCGA-02-0002"]
    ds = PatientBagDataset(patient_ids=pids, slide_files=by_patient, omics=np.ones((2, 3)),
                           targets=Targets(np.array([10.0, 20.0]), np.array([1.0, 0.0]), np.array([2, -1])),
                           max_patches=6, seed=3)
    first = ds[0]
    assert first.wsi.shape == (6, feature_dim) and ds[1].wsi.shape == (6, feature_dim)
    assert torch.equal(ds[0].wsi, first.wsi)  # same epoch, same sample
    ds.set_epoch(1)
    assert not torch.equal(ds[0].wsi, first.wsi)
    full = ds.inference_view()
    assert full[0].wsi.shape == (15, feature_dim) and ds.max_patches == 6
    assert (first.time_days, first.event, first.label) == (10.0, 1.0, 2)
    assert ds.wsi_dim == feature_dim and ds.omics_dim == 3


def test_dataset_requires_features_for_every_patient(slides: dict[str, Path]) -> None:
    by_patient, _ = group_feature_files_(slides.values())
    with pytest.raises(InputDataError, match=r"no usable slide feature file.*TCGA-02-0009"):
        PatientBagDataset(patient_ids=["TCGA-02-0001", "TCGA-02-0009"], slide_files=by_patient, omics=None)


def test_lazy_loading_matches_preloaded(slides: dict[str, Path]) -> None:
    by_patient, _ = group_feature_files_(slides.values())
    kw = {"patient_ids": ["TCGA-02-0001"], "slide_files": by_patient, "omics": None}
    assert torch.equal(PatientBagDataset(**kw, preload=False)[0].wsi, PatientBagDataset(**kw, preload=True)[0].wsi)


def test_dataset_items_carry_positions_and_slide_level_items(slides: dict[str, Path], feature_dim: int) -> None:
    by_patient, _ = group_feature_files_(slides.values())
    pids = ["TCGA-02-0001", "TCGA-02-0002"]
    targets = Targets(np.array([10.0, 20.0]), np.array([1.0, 0.0]), np.array([2, 1]),
                      labels={"grade": np.array([0, 2])})
    sets = {"tumour": np.array([[1.0, 2.0], [3.0, 4.0]])}
    ds = PatientBagDataset(patient_ids=pids, slide_files=by_patient, omics=None, targets=targets, omics_sets=sets)
    s = ds[0]
    assert s.wsi.shape == (15, feature_dim) and s.wsi_pos.shape == (15, 2) and s.wsi_pos.dtype == torch.long
    assert s.labels == {"grade": 0} and s.omics_sets["tumour"].tolist() == [1.0, 2.0]
    # the two slides of patient 1 (4 x 4 and 1 x 4 raster grids) are laid out without overlap
    assert len({tuple(p) for p in s.wsi_pos.tolist()}) == 15
    per_slide = PatientBagDataset(patient_ids=pids, slide_files=by_patient, omics=None, targets=targets,
                                  omics_sets=sets, bag_level="slide")
    assert len(per_slide) == 3 and [per_slide.item_patient(i) for i in range(3)] == [pids[0], pids[0], pids[1]]
    assert per_slide[1].wsi.shape == (4, feature_dim) and per_slide[1].label == 2
    batch = collate_bags([per_slide[i] for i in range(3)])
    assert batch.wsi_pos.shape == (3, 11, 2) and int(batch.wsi_pos[1, 4:].max()) == -1
    assert batch.omics_sets["tumour"].shape == (3, 2) and batch.labels["grade"].tolist() == [0, 0, 2]


@pytest.mark.parametrize("bag_level", ["patient", "slide"])
def test_lazy_sampled_read_matches_preloaded_sample(slides: dict[str, Path], bag_level: str,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """A bag not kept in memory reads only its sampled rows, and they equal the preloaded bag's sample (features
    and map cells, the cells laid out from every patch of the patient's slides)."""
    by_patient, _ = group_feature_files_(slides.values())
    kw = {"patient_ids": ["TCGA-02-0001", "TCGA-02-0002"], "slide_files": by_patient, "omics": None,
          "max_patches": 5, "seed": 7, "bag_level": bag_level}
    eager = PatientBagDataset(**kw, preload=True)
    rows_read: list[int] = []

    def counting_read(path: Path, rows: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray | None]:
        feats, coords = read_slide_features_(path, rows)
        rows_read.append(feats.shape[0])
        return feats, coords

    monkeypatch.setattr("gliofuse.data.bags.read_slide_features_", counting_read)
    lazy = PatientBagDataset(**kw, preload=False)
    for epoch in (0, 3):
        lazy.set_epoch(epoch)
        eager.set_epoch(epoch)
        for i in range(len(lazy)):
            a, b = lazy[i], eager[i]
            assert a.wsi.shape[0] == min(5, sum(f.n_patches for f in lazy.items[i][1]))
            assert torch.equal(a.wsi, b.wsi) and torch.equal(a.wsi_pos, b.wsi_pos)
    assert rows_read and sum(rows_read) == sum(min(5, sum(f.n_patches for f in files)) for _, files in lazy.items) * 2


def test_patch_cap_is_per_bag_at_both_bag_levels(slides: dict[str, Path], feature_dim: int) -> None:
    """``patient``: the cap holds over all of a patient's slides together (11 + 4 patches -> 6, drawn from both);
    ``slide``: it holds per slide item, and a padded batch never exceeds batch x max_patches patches."""
    by_patient, _ = group_feature_files_(slides.values())
    kw = {"patient_ids": ["TCGA-02-0001", "TCGA-02-0002"], "slide_files": by_patient, "omics": None,
          "max_patches": 6, "seed": 0}
    per_patient = PatientBagDataset(**kw)
    rows_drawn = set()
    for epoch in range(10):
        per_patient.set_epoch(epoch)
        assert per_patient[0].wsi.shape == (6, feature_dim)
        rows_drawn.update(per_patient.sampled_rows(0).tolist())
    assert any(r < 11 for r in rows_drawn) and any(r >= 11 for r in rows_drawn)  # both slides are sampled
    per_slide = PatientBagDataset(**kw, bag_level="slide")
    sizes = [per_slide[i].wsi.shape[0] for i in range(len(per_slide))]
    assert sizes == [6, 4, 6]  # slides of 11, 4 and 7 patches
    batch = collate_bags([per_slide[i] for i in range(len(per_slide))])
    assert batch.wsi.shape[1] == 6


def test_read_slide_features_reads_only_the_given_rows(slides: dict[str, Path]) -> None:
    full, coords = read_slide_features_(slides["a1"])
    part, part_coords = read_slide_features_(slides["a1"], np.array([1, 4, 10]))
    assert np.array_equal(part, full[[1, 4, 10]]) and np.array_equal(part_coords, coords)
    assert read_slide_features_(slides["a1"], np.array([], dtype=np.int64))[0].shape == (0, full.shape[1])
    with pytest.raises(ValueError, match=r"AAAA.h5: rows must be strictly increasing in \[0, 11\)"):
        read_slide_features_(slides["a1"], np.array([4, 1]))
    with pytest.raises(ValueError, match="strictly increasing"):
        read_slide_features_(slides["a1"], np.array([11]))
