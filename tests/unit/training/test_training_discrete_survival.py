"""``survival_loss: nll`` writes per-bin ``hazard_<edge>`` columns, and evaluation scores their survival curves."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch

from gliofuse.evaluation.evaluate import evaluate_model_
from gliofuse.evaluation.metrics import integrated_brier_score
from gliofuse.evaluation.survival import discrete_hazard_survival, hazard_columns, time_grid
from gliofuse.tasks import get_task
from gliofuse.training.fold import train_fold_
from gliofuse.training.objectives import build_objective


def test_hazard_columns_name_the_upper_bin_edges() -> None:
    obj = build_objective(get_task("survival"), train_time_days=np.array([10.0, 20.25, 30.0, 40.5, 50.0]),
                          train_labels=None, survival_loss="nll", n_bins=4)  # quartiles 20.25, 30, 40.5
    cols = obj.hazard_columns
    assert cols == ["hazard_20.25", "hazard_30", "hazard_40.5", "hazard_inf"]
    assert obj.prediction_columns == [*get_task("survival").prediction_columns, *cols]
    _, edges = hazard_columns(cols)
    np.testing.assert_array_equal(edges[:-1], obj.edges.numpy())  # read back exactly
    logits = torch.tensor([[0.0, 1.0, -1.0, 3.0], [2.0, -2.0, 0.5, 0.0]])
    values = obj.prediction_values(logits)
    h = torch.sigmoid(logits.double()).numpy()
    assert list(values) == ["risk", *cols]
    np.testing.assert_allclose(np.stack([values[c] for c in cols], axis=1), h)
    np.testing.assert_allclose(values["risk"], -np.cumprod(1 - h, axis=1).sum(axis=1))
    cox = build_objective(get_task("survival"), train_time_days=np.ones(3), train_labels=None, survival_loss="cox")
    assert cox.prediction_columns == get_task("survival").prediction_columns


def test_nll_model_writes_hazards_and_evaluation_uses_them(fold_inputs: Any, tmp_path: Path,
                                                           make_config: Any) -> None:
    paths = []
    for fold, split_path in enumerate(fold_inputs.split_paths):
        out = tmp_path / "training" / f"fold_{fold}"
        train_fold_(cfg=make_config(epochs=2, survival_loss="nll", n_bins=4), model_name="snn", task="survival",
                    split_path=split_path, labels_path=fold_inputs.labels_path, omics_path=fold_inputs.omics_path,
                    feature_paths=[], out_dir=out)
        paths.append(out / "predictions.tsv")
        df = pd.read_csv(out / "predictions.tsv", sep="\t")
        cols, edges = hazard_columns(list(df.columns))
        assert len(cols) == 4 and cols[-1] == "hazard_inf"
        ckpt = torch.load(out / "checkpoint.pt", weights_only=False)
        np.testing.assert_array_equal(edges[:-1], ckpt["objectives"]["survival"]["bin_edges_days"])
        h = df[cols].to_numpy()
        assert ((h > 0) & (h < 1)).all()
        np.testing.assert_allclose(df["risk"], -np.cumprod(1 - h, axis=1).sum(axis=1), rtol=1e-4)

    evaluate_model_(prediction_paths=paths, model="snn", task="survival", n_bootstrap=0, seed=1,
                    out_predictions=tmp_path / "oof.tsv", out_metrics=tmp_path / "metrics.tsv")
    oof = pd.read_csv(tmp_path / "oof.tsv", sep="\t")
    cols, edges = hazard_columns(list(oof.columns))
    # the out-of-fold table keeps them; each fold has its own bins, so its own columns (NaN in other folds' rows)
    assert len(cols) > 4 and cols[-1] == "hazard_inf"
    assert (oof[cols].notna().sum(axis=1) == 4).all()
    times = time_grid(oof["time_days"].to_numpy())
    surv = np.vstack([discrete_hazard_survival(part[[c for c in cols if part[c].notna().all()]].to_numpy(),
                                               [e for c, e in zip(cols, edges, strict=True) if part[c].notna().all()],
                                               times) for _, part in oof.groupby("fold", sort=True)])
    expected = integrated_brier_score(oof["event"], oof["time_days"], surv, times, train_event=oof["event"],
                                      train_time=oof["time_days"])
    metrics = pd.read_csv(tmp_path / "metrics.tsv", sep="\t", dtype={"fold": str})
    ibs = metrics.set_index(["fold", "metric"])["value"][("pooled", "ibs")]
    assert ibs == pytest.approx(expected, rel=1e-5)
