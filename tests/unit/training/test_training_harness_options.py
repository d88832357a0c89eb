"""Harness options used by the published protocols: L1 penalty, last-epoch selection, linear decay, balanced sampling."""

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
from gliofuse.models.registry import create_model
from gliofuse.tasks import get_task
from gliofuse.training.harness import (
    FitConfig,
    FitResult,
    balanced_weights,
    fit_fold_,
    l1_penalty,
    lr_factor,
    sampling_strata,
    seed_fold,
)
from gliofuse.training.objectives import DiscreteHazardObjective, build_objective

N, G = 24, 6


def _dataset(rows: np.ndarray, seed: int = 0) -> PatientBagDataset:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(len(rows), G)).astype(np.float32)
    time = 100.0 + 900.0 * rng.random(len(rows))
    event = (np.arange(len(rows)) % 3 != 0).astype(np.float64)
    label = (np.arange(len(rows)) % 3).astype(np.int64)
    return PatientBagDataset(patient_ids=[f"P{i:03d}" for i in rows], slide_files=None, omics=x,
                             targets=Targets(time_days=time, event=event, label=label), seed=seed)


def _fit(tmp: Path, *, task: str = "grade", datasets: dict[str, PatientBagDataset] | None = None,
         **fit_kw: Any) -> tuple[FitResult, torch.nn.Module, dict[str, torch.Tensor]]:
    """Train a tiny SNN; returns the result, the trained model and the initial (model + head) state."""
    datasets = datasets or {"train": _dataset(np.arange(N))}
    spec = get_task(task)
    train = datasets["train"].targets
    objective = build_objective(spec, train_time_days=train.time_days, train_labels=train.label)
    seed_fold(7)
    model = create_model("snn", input_dims={"omics": G}, tasks=(task,), hidden_dims=[5, 4], dropout=0.0)
    heads = {task: objective.build_head(model.embed_dim)}
    init = {**{f"model.{k}": v.clone() for k, v in model.state_dict().items()},
            **{f"head.{k}": v.clone() for k, v in heads[task].state_dict().items()}}
    kw = {"epochs": 1, "batch_size": 64, "lr": 1e-2, "weight_decay": 0.0, "patience": 100, "device": "cpu",
          "seed": 7, "optimizer": "sgd", "momentum": 0.0, "amp": False, **fit_kw}
    result = fit_fold_(model=model, heads=heads, objectives={task: objective}, primary=task, datasets=datasets,
                       fit=FitConfig(**kw), out_dir=tmp, model_name="snn", fold=0, prov={"test": True})
    return result, model, init


def test_l1_penalty_is_the_sum_of_absolute_values() -> None:
    lin = torch.nn.Linear(2, 2)
    with torch.no_grad():
        lin.weight.copy_(torch.tensor([[1.5, -2.0], [0.0, 0.25]]))
        lin.bias.copy_(torch.tensor([-0.5, 3.0]))
    assert float(l1_penalty(list(lin.parameters())).detach()) == pytest.approx(1.5 + 2.0 + 0.0 + 0.25 + 0.5 + 3.0)


def test_l1_adds_l1_times_sum_abs_w_to_loss_and_gradient(tmp_path: Path) -> None:
    """One full-batch SGD step: the L1 run moves every parameter by exactly -lr * l1 * sign(w0) more."""
    lr, l1 = 1e-2, 0.05
    r0, _, init = _fit(tmp_path / "plain", lr=lr)
    r1, _, init1 = _fit(tmp_path / "l1", lr=lr, l1=l1)
    assert all(torch.equal(init[k], init1[k]) for k in init)
    ck0 = torch.load(tmp_path / "plain" / "checkpoint.pt", weights_only=False)
    ck1 = torch.load(tmp_path / "l1" / "checkpoint.pt", weights_only=False)
    after0 = {**{f"model.{k}": v for k, v in ck0["model_state"].items()},
              **{f"head.{k}": v for k, v in ck0["head_state"].items()}}
    after1 = {**{f"model.{k}": v for k, v in ck1["model_state"].items()},
              **{f"head.{k}": v for k, v in ck1["head_state"].items()}}
    assert set(after0) == set(init)
    for k, w0 in init.items():  # head included (PF/MCAT penalise every parameter)
        expected = -lr * l1 * torch.sign(w0)
        torch.testing.assert_close(after1[k] - after0[k], expected, atol=1e-6, rtol=0, msg=k)
    # history: train_loss = task loss + l1 * sum |w| (at the initial weights: one step per epoch)
    hand = l1 * sum(float(v.abs().sum()) for v in init.values())
    row = r1.history.iloc[0]
    assert row["train_l1_loss"] == pytest.approx(hand, rel=1e-6)
    assert row["train_loss"] == pytest.approx(row["train_task_loss"] + row["train_aux_loss"] + hand, rel=1e-6)
    assert row["train_task_loss"] == pytest.approx(r0.history.iloc[0]["train_task_loss"], rel=1e-6)
    assert "train_l1_loss" not in r0.history.columns  # default off: history unchanged
    written = pd.read_csv(tmp_path / "l1" / "history.tsv", sep="\t")
    assert written["train_l1_loss"].iloc[0] == pytest.approx(hand, rel=1e-6)


def _epoch_states(out: Path, epochs: int) -> list[dict[str, torch.Tensor]]:
    return [torch.load(out / f"epoch_{e:03d}.pt", weights_only=False)["model"] for e in range(1, epochs + 1)]


def test_select_epoch_last_keeps_the_final_weights_best_the_lowest_loss(tmp_path: Path) -> None:
    # a huge constant Adam lr makes the training loss jump around, so the best epoch is not the last
    kw = {"epochs": 6, "lr": 5.0, "optimizer": "adam", "batch_size": 8, "keep_epoch_checkpoints": True}
    best, _, _ = _fit(tmp_path / "best", **kw)
    last, _, _ = _fit(tmp_path / "last", select_epoch="last", **kw)
    pd.testing.assert_frame_equal(best.history.drop(columns="seconds"), last.history.drop(columns="seconds"))
    losses = best.history["train_task_loss"].to_numpy()
    argmin = int(np.argmin(losses)) + 1
    assert argmin != kw["epochs"], losses  # precondition of the test (deterministic on CPU)
    assert best.best_epoch == argmin and last.best_epoch == kw["epochs"]
    assert last.best_loss == pytest.approx(losses[-1]) and best.best_loss == pytest.approx(losses.min())
    states = _epoch_states(tmp_path / "best", kw["epochs"])
    for run, epoch in (("best", argmin), ("last", kw["epochs"])):
        ck = torch.load(tmp_path / run / "checkpoint.pt", weights_only=False)
        assert ck["best_epoch"] == epoch and ck["select_epoch"] == run
        for k, v in ck["model_state"].items():
            assert torch.equal(v, states[epoch - 1][k]), (run, k)
    prob = [c for c in best.predictions.columns if c.startswith("prob_")]
    assert not np.allclose(best.predictions[prob].to_numpy(), last.predictions[prob].to_numpy())


def test_select_epoch_rejects_unknown_values(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="select_epoch"):
        _fit(tmp_path, select_epoch="median")


def test_linear_schedule_follows_pathomic_fusion() -> None:
    fit = FitConfig(epochs=50, batch_size=1, lr=2e-3, weight_decay=0.0, patience=1, scheduler="linear")
    assert [lr_factor(e, fit) for e in (0, 1, 49)] == pytest.approx([1 - 1 / 51, 1 - 2 / 51, 1 / 51])
    floor = FitConfig(epochs=4, batch_size=1, lr=1.0, weight_decay=0.0, patience=1, scheduler="linear", min_lr=0.5)
    assert lr_factor(3, floor) == pytest.approx(0.5 + 0.5 * (1 - 4 / 5))


def test_balanced_weights_and_strata() -> None:
    assert balanced_weights(np.array([0, 0, 0, 1])).tolist() == pytest.approx([4 / 3, 4 / 3, 4 / 3, 4.0])
    ds = _dataset(np.arange(8))
    edges = torch.tensor([300.0, 600.0], dtype=torch.float64)
    objective = DiscreteHazardObjective(get_task("survival"), edges=edges)
    strata = sampling_strata(objective, ds)
    t, e = ds.targets.time_days, ds.targets.event.astype(int)
    expected = np.digitize(t, [300.0, 600.0], right=True) * 3 + e + 1
    assert strata.tolist() == expected.tolist()
    grade = build_objective(get_task("grade"), train_time_days=t, train_labels=ds.targets.label)
    assert sampling_strata(grade, ds).tolist() == ds.targets.label.tolist()


def test_weighted_sampler_draws_with_replacement_and_trains(tmp_path: Path) -> None:
    labels = np.array([0] * 20 + [1] * 2 + [2] * 2)
    ds = _dataset(np.arange(N))
    ds.targets = Targets(time_days=ds.targets.time_days, event=ds.targets.event, label=labels)
    seen: list[int] = []
    original = PatientBagDataset.__getitem__

    def spy(self: PatientBagDataset, index: int) -> Any:
        if self is ds:
            seen.append(int(index))
        return original(self, index)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(PatientBagDataset, "__getitem__", spy)
        result, _, _ = _fit(tmp_path, datasets={"train": ds}, epochs=3, weighted_sampler=True)
    assert len(result.history) == 3
    train_draws = np.array(seen[: 3 * N])
    assert len(np.unique(train_draws)) < 3 * N  # replacement
    minority = np.isin(train_draws, np.flatnonzero(labels > 0)).mean()
    assert minority > 0.4  # 4 of 24 patients, about 2/3 of the draws when balanced


def test_fit_config_from_training_carries_the_new_options() -> None:
    training = TrainingConfig(l1=3e-4, select_epoch="last", weighted_sampler=True, scheduler="linear")
    fit = FitConfig.from_training(training, seed=1)
    assert (fit.l1, fit.select_epoch, fit.weighted_sampler, fit.scheduler) == (3e-4, "last", True, "linear")
    default = FitConfig.from_training(TrainingConfig(), seed=1)
    assert (default.l1, default.select_epoch, default.weighted_sampler) == (0.0, "best", False)

