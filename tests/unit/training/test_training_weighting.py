"""Multi-task loss combination: fixed weights, learned uncertainty weights, and the harness using them."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import torch

from gliofuse.training.fold import train_fold_
from gliofuse.training.weighting import FixedWeighting, UncertaintyWeighting, build_task_weighting

M2F_SMALL = {"gene_sets": ["tumour", "microenvironment"], "dim": 16, "heads": 2, "ff_dim": 24}


def test_fixed_weighting_is_the_weighted_sum() -> None:
    w = FixedWeighting({"survival": 1.0, "grade": 0.25})
    out = w({"survival": torch.tensor(2.0), "grade": torch.tensor(4.0)})
    assert float(out) == pytest.approx(3.0)
    assert list(w.parameters()) == [] and w.log_values() == {}


def test_uncertainty_weighting_value_and_gradients() -> None:
    w = UncertaintyWeighting(["survival", "grade"])
    with torch.no_grad():
        w.log_vars["survival"].fill_(0.5)
        w.log_vars["grade"].fill_(-1.0)
    ls, lg = torch.tensor(2.0, requires_grad=True), torch.tensor(3.0, requires_grad=True)
    total = w({"survival": ls, "grade": lg})
    expect = math.exp(-0.5) * 2.0 + 0.5 + math.exp(1.0) * 3.0 - 1.0
    assert float(total.detach()) == pytest.approx(expect)
    total.backward()
    # dL/ds_t = 1 - exp(-s_t) L_t ; dL/dL_t = exp(-s_t)
    assert float(w.log_vars["survival"].grad) == pytest.approx(1 - math.exp(-0.5) * 2.0)
    assert float(w.log_vars["grade"].grad) == pytest.approx(1 - math.exp(1.0) * 3.0)
    assert float(ls.grad) == pytest.approx(math.exp(-0.5))
    assert w.log_values() == {"log_var_survival": pytest.approx(0.5), "log_var_grade": pytest.approx(-1.0)}


def test_uncertainty_weights_settle_at_the_inverse_loss() -> None:
    """With constant losses, minimising over s_t gives exp(s_t) = L_t."""
    w = UncertaintyWeighting(["a", "b"])
    opt = torch.optim.Adam(w.parameters(), lr=0.05)
    for _ in range(600):
        loss = w({"a": torch.tensor(4.0), "b": torch.tensor(0.5)})
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert math.exp(float(w.log_vars["a"].detach())) == pytest.approx(4.0, rel=0.02)
    assert math.exp(float(w.log_vars["b"].detach())) == pytest.approx(0.5, rel=0.02)


def test_unknown_declared_weighting_is_rejected() -> None:
    class Model:
        def loss_weighting(self) -> str:
            return "gradnorm"

    with pytest.raises(ValueError, match="unknown loss weighting 'gradnorm'"):
        build_task_weighting(Model(), {})


def _train(make_config: Any, inp: Any, out: Path, model: str, **training: Any) -> None:
    train_fold_(cfg=make_config(**training), model_name=model, task="survival", split_path=inp.split_paths[0],
                labels_path=inp.labels_path, omics_path=inp.omics_path, feature_paths=inp.feature_paths,
                out_dir=out)


def test_harness_learns_the_log_variances_of_m2f_uncertainty(subspace_inputs: Any, tmp_path: Path,
                                                             make_config: Any) -> None:
    kw = {"epochs": 2, "multitask": True, "tasks": ["survival", "grade"],
          "model_overrides": {"m2f_uncertainty": M2F_SMALL, "m2f": M2F_SMALL}}
    _train(make_config, subspace_inputs, tmp_path / "u", "m2f_uncertainty", **kw)
    history = pd.read_csv(tmp_path / "u" / "history.tsv", sep="\t")
    assert {"log_var_survival", "log_var_grade", "val_loss_grade"} <= set(history.columns)
    assert (history[["log_var_survival", "log_var_grade"]].abs() > 0).all().all()  # moved away from 0
    # fixed lambda: no log-variance columns; train_loss = L_surv + 0.5 L_grade differs from the task loss
    _train(make_config, subspace_inputs, tmp_path / "f", "m2f", loss_weights={"grade": 0.5}, **kw)
    fixed = pd.read_csv(tmp_path / "f" / "history.tsv", sep="\t")
    assert not any(c.startswith("log_var_") for c in fixed.columns)
    ckpt = torch.load(tmp_path / "f" / "checkpoint.pt", weights_only=False)
    assert ckpt["tasks"] == ["survival", "grade"] and ckpt["objectives"]["grade"]["weight"] == 0.5
