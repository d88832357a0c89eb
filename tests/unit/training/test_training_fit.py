"""Fitting a fold end to end: subspace fusion learning, multi-task heads, resume, bag levels, optimisers, objectives."""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch

from gliofuse.config import OptimConfig
from gliofuse.evaluation.metrics import classification_metrics, concordance_index
from gliofuse.tasks import DIAGNOSIS4_CLASSES, diagnosis4_labels, get_task
from gliofuse.training import fit
from gliofuse.training.fold import train_fold_
from gliofuse.training.optim import lr_factor


def _train(make_config: Any, inp: Any, out: Path, *, model: str = "subspace_fusion", task: str = "survival",
           fold: int = 0, **training: Any) -> pd.DataFrame:
    train_fold_(cfg=make_config(**training), model_name=model, task=task, split_path=inp.split_paths[fold],
                labels_path=inp.labels_path, omics_path=inp.omics_path, feature_paths=inp.feature_paths,
                out_dir=out)
    return pd.read_csv(out / "predictions.tsv", sep="\t", dtype={"patient_id": str})


def test_subspace_fusion_learns_the_latent_signal(subspace_inputs: Any, tmp_path: Path, make_config: Any) -> None:
    """Out-of-fold test C-index and AUC beat chance by half the margin the ground truth allows."""
    truth = subspace_inputs.truth.set_index("patient_id")
    surv, diag = [], []
    for fold in range(3):
        kw = {"epochs": 12, "patience": 12, "lr": 3e-3, "max_patches": 64}
        df = _train(make_config, subspace_inputs, tmp_path / f"s{fold}", fold=fold, **kw)
        surv.append(df[df["split"] == "test"])
        df = _train(make_config, subspace_inputs, tmp_path / f"d{fold}", task="diagnosis", fold=fold, **kw)
        diag.append(df[df["split"] == "test"])
    s, d = pd.concat(surv), pd.concat(diag)
    oracle_c = concordance_index(s["event"], s["time_days"], truth.loc[s["patient_id"], "true_risk"].to_numpy())
    c = concordance_index(s["event"], s["time_days"], s["risk"])
    assert c > 0.5 + 0.5 * (oracle_c - 0.5), (c, oracle_c)
    # diagnosis = tertiles of z_tumour: the true factor separates the classes perfectly (oracle AUC 1)
    probs = d[[f"prob_{k}" for k in get_task("diagnosis").class_names]].to_numpy()
    auc = classification_metrics(d["y_true"], probs)["auc_macro"]
    assert auc > 0.5 + 0.5 * (1.0 - 0.5), auc
    gc = pd.read_csv(tmp_path / "d0" / "gc_dynamics.tsv", sep="\t")
    assert {"score_tumour", "score_microenvironment", "ratio", "cos", "adjusted"} <= set(gc.columns)
    assert len(gc) > 0 and set(gc["adjusted"]) <= {"none", "skipped", "tumour", "microenvironment"}
    # diagnosis follows z_tumour only: the microenvironment part is the weaker one in most conflicts
    conflicts = gc[gc["conflict"] == 1]
    assert (conflicts["weaker"] == "microenvironment").mean() > 0.5


def test_multitask_heads_train_jointly(subspace_inputs: Any, tmp_path: Path, make_config: Any) -> None:
    out = tmp_path / "mt"
    df = _train(make_config, subspace_inputs, out, task="grade", epochs=2, multitask=True,
                tasks=["survival", "grade", "diagnosis"], survival_loss="nll",
                loss_weights={"survival": 0.5})
    assert list(df.columns) == get_task("grade").prediction_columns
    history = pd.read_csv(out / "history.tsv", sep="\t")
    assert {"val_loss_survival", "val_loss_grade", "val_loss_diagnosis", "aux_consistency"} <= set(history.columns)
    np.testing.assert_allclose(history["val_loss"], history["val_loss_grade"])
    ckpt = torch.load(out / "checkpoint.pt", weights_only=False)
    assert ckpt["task"] == "grade" and ckpt["tasks"] == ["grade", "survival", "diagnosis"]
    assert ckpt["objectives"]["survival"]["weight"] == 0.5 and len(ckpt["objectives"]["survival"]["bin_edges_days"]) == 3
    assert set(pd.read_csv(out / "gc_dynamics.tsv", sep="\t")["task"]) == {"survival", "grade", "diagnosis"}


def test_resume_after_interruption_equals_an_uninterrupted_run(subspace_inputs: Any, tmp_path: Path,
                                                              make_config: Any,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    kw = {"epochs": 4, "survival_loss": "nll", "scheduler": "cosine", "optimizer": "adam"}
    full = _train(make_config, subspace_inputs, tmp_path / "full", **kw)
    save = fit.save_epoch_checkpoint_

    def killed_after_epoch_2(path: Path, state: dict[str, Any]) -> None:
        save(path, state)
        if state["epoch"] == 2:
            raise KeyboardInterrupt("simulated kill")

    monkeypatch.setattr(fit, "save_epoch_checkpoint_", killed_after_epoch_2)
    out = tmp_path / "resumed"
    with pytest.raises(KeyboardInterrupt):
        _train(make_config, subspace_inputs, out, **kw)
    assert (out / "last.pt").exists() and not (out / "predictions.tsv").exists()
    assert len(pd.read_csv(out / "history.tsv", sep="\t")) == 2  # per-epoch log written while training
    monkeypatch.setattr(fit, "save_epoch_checkpoint_", save)
    resumed = _train(make_config, subspace_inputs, out, **kw)
    pd.testing.assert_frame_equal(resumed, full)
    h_full, h_res = (pd.read_csv(p / "history.tsv", sep="\t") for p in (tmp_path / "full", out))
    pd.testing.assert_frame_equal(h_full.drop(columns="seconds"), h_res.drop(columns="seconds"))
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "full" / "gc_dynamics.tsv", sep="\t"),
                                  pd.read_csv(out / "gc_dynamics.tsv", sep="\t"))
    assert not (out / "last.pt").exists()


def test_resume_is_refused_for_another_configuration(subspace_inputs: Any, tmp_path: Path, make_config: Any,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    save = fit.save_epoch_checkpoint_

    def killed(path: Path, state: dict[str, Any]) -> None:
        save(path, state)
        raise KeyboardInterrupt

    monkeypatch.setattr(fit, "save_epoch_checkpoint_", killed)
    out = tmp_path / "x"
    with pytest.raises(KeyboardInterrupt):
        _train(make_config, subspace_inputs, out, model="snn", epochs=3)
    monkeypatch.setattr(fit, "save_epoch_checkpoint_", save)
    _train(make_config, subspace_inputs, out, model="snn", epochs=3, lr=1e-2)  # other lr: starts over
    assert len(pd.read_csv(out / "history.tsv", sep="\t")) == 3


def test_slide_level_bags_are_averaged_per_patient(subspace_inputs: Any, tmp_path: Path, make_config: Any) -> None:
    df = _train(make_config, subspace_inputs, tmp_path / "slide", model="abmil_snn_concat", epochs=1,
                bag_level="slide")
    split = json.loads(subspace_inputs.split_paths[0].read_text())
    assert df["patient_id"].is_unique
    assert sorted(df.loc[df["split"] == "test", "patient_id"]) == split["test"]
    ckpt = torch.load(tmp_path / "slide" / "checkpoint.pt", weights_only=False)
    assert ckpt["bag_level"] == "slide"


def test_optimizers_schedule_and_class_weights(subspace_inputs: Any, tmp_path: Path, make_config: Any) -> None:
    optim = OptimConfig(epochs=10, batch_size=4, lr=1.0, weight_decay=0.0, patience=3, scheduler="cosine",
                        min_lr=0.1, warmup_epochs=2)
    factors = [lr_factor(e, optim) for e in range(10)]
    assert factors[0] == pytest.approx(0.1) and factors[2] == pytest.approx(1.0)
    assert all(a >= b for a, b in itertools.pairwise(factors[2:])) and factors[-1] > 0.1
    for optimizer in ("sgd", "adam"):
        out = tmp_path / optimizer
        _train(make_config, subspace_inputs, out, model="snn", task="grade", epochs=3, optimizer=optimizer,
               class_weights="balanced", scheduler="cosine")
        history = pd.read_csv(out / "history.tsv", sep="\t")
        assert history["lr"].is_monotonic_decreasing and history["lr"].iloc[0] == pytest.approx(3e-3)
        ckpt = torch.load(out / "checkpoint.pt", weights_only=False)
        assert ckpt["fit"]["optimizer"] == optimizer and len(ckpt["objectives"]["grade"]["class_weights"]) == 3


def test_nll_survival_risk_and_train_only_bins(subspace_inputs: Any, tmp_path: Path, make_config: Any) -> None:
    out = tmp_path / "nll"
    df = _train(make_config, subspace_inputs, out, model="snn", epochs=2, survival_loss="nll", n_bins=4)
    base = get_task("survival").prediction_columns
    assert list(df.columns[: len(base)]) == base and len(df.columns) == len(base) + 4  # + hazard_<edge> per bin
    assert (df["risk"] <= 0).all() and (df["risk"] >= -4).all()  # risk = -sum of 4 bin survival probabilities
    ckpt = torch.load(out / "checkpoint.pt", weights_only=False)
    train = json.loads(subspace_inputs.split_paths[0].read_text())["train"]
    labels = pd.read_csv(subspace_inputs.labels_path, sep="\t").set_index("patient_id")
    expected = np.quantile(labels.loc[train, "time_days"], [0.25, 0.5, 0.75])
    np.testing.assert_allclose(ckpt["objectives"]["survival"]["bin_edges_days"], expected)
    assert ckpt["head_class"] == "DiscreteHazardHead"


def test_four_class_diagnosis(subspace_inputs: Any, tmp_path: Path, make_config: Any) -> None:
    assert diagnosis4_labels([0, 0, 0, 1, 2, -1], [2, 4, float("nan"), 3, 4, 2]) == [0, 1, -1, 2, 3, -1]
    df = _train(make_config, subspace_inputs, tmp_path / "d4", model="snn", task="diagnosis", epochs=1,
                diagnosis_classes=4)
    assert [c for c in df.columns if c.startswith("prob_")] == [f"prob_{c}" for c in DIAGNOSIS4_CLASSES]
    labels = pd.read_csv(subspace_inputs.labels_path, sep="\t").set_index("patient_id")
    expected = diagnosis4_labels(labels.loc[df["patient_id"], "diagnosis"].tolist(),
                                 labels.loc[df["patient_id"], "who2021_grade"].tolist())
    assert df["y_true"].tolist() == expected
