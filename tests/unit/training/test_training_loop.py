"""Loop options used by the published protocols: L1 in the loss, last-epoch selection, balanced sampling."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch

from gliofuse.config import OptimConfig
from gliofuse.data.batch import Targets
from gliofuse.data.datasets import PatientBagDataset
from gliofuse.models.registry import create_model
from gliofuse.seed import seed_everything
from gliofuse.tasks import get_task
from gliofuse.training.assemble import FoldRun
from gliofuse.training.fit import FitResult, fit_fold_
from gliofuse.training.objectives import build_objective

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
    seed_everything(7)
    model = create_model("snn", input_dims={"omics": G}, tasks=(task,), hidden_dims=[5, 4], dropout=0.0)
    heads = {task: objective.build_head(model.embed_dim)}
    init = {**{f"model.{k}": v.clone() for k, v in model.state_dict().items()},
            **{f"head.{k}": v.clone() for k, v in heads[task].state_dict().items()}}
    kw = {"epochs": 1, "batch_size": 64, "lr": 1e-2, "weight_decay": 0.0, "patience": 100, "device": "cpu",
          "optimizer": "sgd", "momentum": 0.0, "amp": False, "scheduler": "none", "resume": False, **fit_kw}
    run = FoldRun(model_name="snn", model=model, heads=heads, objectives={task: objective}, primary=task,
                  datasets=datasets, input_dims={"omics": G})
    result = fit_fold_(run, optim=OptimConfig(**kw), seed=7, out_dir=tmp, fold=0, prov={"test": True})
    return result, model, init


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
