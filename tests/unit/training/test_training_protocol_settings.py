"""Protocol departures as settings (issue 14, item 4): bin convention and edges, fixed class weights, the
histologic grade label, per-task weight decay and the inference bag size."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch

from gliofuse.config import TrainingConfig
from gliofuse.data.batch import Targets
from gliofuse.data.datasets import PatientBagDataset
from gliofuse.errors import ConfigError
from gliofuse.features.store import inspect_feature_file_
from gliofuse.tasks import get_task
from gliofuse.training.assemble import _objective
from gliofuse.training.inputs import read_task_targets_
from gliofuse.training.losses import survival_bins
from gliofuse.training.objectives import build_objective


def test_bin_convention_moves_only_times_on_an_edge() -> None:
    edges = torch.tensor([10.0, 20.0, 30.0], dtype=torch.float64)
    t = torch.tensor([5.0, 10.0, 15.0, 20.0, 30.0, 31.0], dtype=torch.float64)
    assert survival_bins(t, edges).tolist() == [0, 0, 1, 1, 2, 3]  # (q, q]
    assert survival_bins(t, edges, closed="left").tolist() == [0, 1, 1, 2, 3, 3]  # [q, q)


def _targets(times: list[float]) -> Targets:
    n = len(times)
    return Targets(time_days=np.asarray(times, dtype=np.float64), event=np.ones(n), label=np.full(n, -1),
                   labels={})


def test_bin_edges_sources() -> None:
    spec = get_task("survival")
    targets = _targets([100.0, 200.0, 300.0, 400.0, 5000.0, 6000.0, 7000.0, 8000.0])
    train = np.arange(4)
    fold = _objective(spec, targets, train, TrainingConfig(survival_loss="nll"), None)
    cohort = _objective(spec, targets, train, TrainingConfig(survival_loss="nll", bin_edges="cohort"), None)
    fixed = _objective(spec, targets, train, TrainingConfig(survival_loss="nll", bin_edges=[233.5, 511, 929],
                                                            bin_closed="left"), None)
    assert fold.edges.max() < 400 < cohort.edges.max()  # cohort quantiles see the test times
    assert fixed.edges.tolist() == [233.5, 511.0, 929.0] and fixed.closed == "left"
    assert fixed.state_dict()["bin_closed"] == "left"
    with pytest.raises(ValueError, match="increasing"):
        TrainingConfig(bin_edges=[5.0, 3.0, 9.0])


def test_fixed_class_weights_in_class_order() -> None:
    obj = build_objective(get_task("grade"), train_time_days=np.zeros(3), train_labels=np.array([0, 1, 2]),
                          class_weights={"grade": [1.47, 1.51, 1.0]})
    assert obj.class_weights.tolist() == pytest.approx([1.47, 1.51, 1.0])
    with pytest.raises(ConfigError, match="one weight per class"):
        build_objective(get_task("diagnosis", diagnosis_classes=4), train_time_days=np.zeros(3),
                        train_labels=None, class_weights={"diagnosis": [1.0, 2.0, 3.0]})


def test_weight_decay_by_task() -> None:
    cfg = TrainingConfig(weight_decay=0.1, weight_decay_by_task={"diagnosis": 0.01})
    assert cfg.for_task("diagnosis").weight_decay == 0.01
    assert cfg.for_task("grade").weight_decay == 0.1


def test_histologic_grade_label(tmp_path: Path) -> None:
    path = tmp_path / "labels.tsv"
    pd.DataFrame({"patient_id": ["a", "b", "c", "d"], "time_days": [1.0] * 4, "event": [1] * 4,
                  "grade": [2, 2, 1, -1], "histologic_grade": [4, 3, 2, None]}).to_csv(path, sep="\t", index=False)
    who = read_task_targets_(path, ["a", "b", "c", "d"], get_task("grade"))[0].label
    hist = read_task_targets_(path, ["a", "b", "c", "d"], get_task("grade", grade_label="histologic"))[0].label
    assert who.tolist() == [2, 2, 1, -1]
    assert hist.tolist() == [2, 1, 0, -1]


def test_inference_bag_is_a_fixed_subsample(tmp_path: Path) -> None:
    feats = np.arange(40 * 4, dtype=np.float32).reshape(40, 4)
    from tests.unit.training.conftest import load_fold_factory

    h5 = tmp_path / "TCGA-AA-0001-01Z-00-DX1.h5"
    load_fold_factory().write_feature_file(h5, feats)
    info = inspect_feature_file_(h5)
    ds = PatientBagDataset(patient_ids=["p"], slide_files={"p": [info]}, omics=None, max_patches=8,
                           inference_max_patches=16, seed=3)
    view = ds.inference_view()
    a, b = view[0].wsi, view[0].wsi
    assert a.shape[0] == 16 and torch.equal(a, b)
    assert PatientBagDataset(patient_ids=["p"], slide_files={"p": [info]}, omics=None).inference_view()[0].wsi \
        .shape[0] == 40


@pytest.mark.parametrize("task", ["survival", "grade"])
def test_protocol_settings_train_a_fold(task: str, subspace_inputs: Any, make_config: Any, tmp_path: Path) -> None:
    """An ablation trained under the original's settings (leaky cohort bins, [q, q), fixed inference bags,
    per-task weight decay, fixed class weights, histologic grade) writes predictions for every test patient."""
    from gliofuse.training.fold import train_fold_

    cfg = make_config(epochs=2, survival_loss="nll", bin_edges="cohort", bin_closed="left", inference_max_patches=5,
                      weight_decay=0.1, weight_decay_by_task={"grade": 0.01}, grade_label="histologic",
                      class_weights={"grade": [1.47, 1.51, 1.0]}, tasks=["survival", "grade"],
                      model_training={"subspace_fusion": {"lr": 1e-3}})
    assert cfg.training.for_model("subspace_fusion_no_gc").lr == 1e-3
    out = tmp_path / "fold_0"
    train_fold_(cfg=cfg, model_name="subspace_fusion_no_gc", task=task, split_path=subspace_inputs.split_paths[0],
                labels_path=subspace_inputs.labels_path, omics_path=subspace_inputs.omics_path,
                feature_paths=subspace_inputs.feature_paths, out_dir=out)
    pred = pd.read_csv(out / "predictions.tsv", sep="\t")
    assert set(pred["split"]) >= {"test"} and pred.notna().all().all()
    if task == "survival":
        assert any(c.startswith("hazard_") for c in pred.columns)
