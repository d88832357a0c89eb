"""Integrated Brier score from the survival functions of discrete-time hazard heads (``hazard_<edge>`` columns)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from gliofuse.evaluation.evaluate import evaluate_model_
from gliofuse.evaluation.metrics import integrated_brier_score
from gliofuse.evaluation.survival import discrete_hazard_survival, hazard_columns, time_grid

EDGES = np.array([100.0, 250.0, np.inf])


def test_ibs_of_discrete_survival_matches_a_hand_computation_and_sksurv() -> None:
    """Five patients, three bins; the only censoring is after the grid, so every IPC weight is 1."""
    from sksurv.metrics import integrated_brier_score as sksurv_ibs
    from sksurv.util import Surv

    hazards = np.array([[0.5, 0.5, 1.0], [0.1, 0.2, 1.0], [0.3, 0.6, 1.0], [0.05, 0.1, 1.0], [0.2, 0.3, 1.0]])
    time = np.array([80.0, 300.0, 200.0, 400.0, 120.0])
    event = np.array([1, 1, 1, 0, 1])
    times = np.array([90.0, 150.0, 260.0])
    surv = discrete_hazard_survival(hazards, EDGES, times)
    # by hand: S(90) = 1 (no bin finished), S(150) = 1 - h0, S(260) = (1 - h0)(1 - h1)
    expected_surv = np.stack([np.ones(5), 1 - hazards[:, 0], (1 - hazards[:, 0]) * (1 - hazards[:, 1])], axis=1)
    np.testing.assert_allclose(surv, expected_surv)
    brier = []
    for j, t in enumerate(times):
        died = (time <= t) & (event == 1)
        alive = time > t
        brier.append(np.mean(died * surv[:, j] ** 2 + alive * (1 - surv[:, j]) ** 2))
    brier = np.asarray(brier)
    by_hand = np.sum(np.diff(times) * (brier[1:] + brier[:-1]) / 2) / (times[-1] - times[0])
    y = Surv.from_arrays(event=event.astype(bool), time=time)
    assert sksurv_ibs(y, y, surv, times) == pytest.approx(by_hand, rel=1e-12)
    assert integrated_brier_score(event, time, surv, times) == pytest.approx(by_hand, rel=1e-12)


def _fold_tables(root: Path, *, n_folds: int = 2, n: int = 15, seed: int = 0) -> list[Path]:
    """Prediction tables of a discrete-time head: risk and hazards from one latent score per patient."""
    rng = np.random.default_rng(seed)
    cols = [f"hazard_{e:g}" for e in EDGES]
    paths = []
    for k in range(n_folds):
        rows = []
        for split in ("train", "val", "test"):
            m = 4 if split == "val" else n
            z = rng.standard_normal(m)
            h = 1 / (1 + np.exp(-(z[:, None] + np.array([-1.5, -0.5, 0.0]))))
            h[:, -1] = 1.0
            df = pd.DataFrame({"patient_id": [f"TCGA-{k:02d}-{split[:2]}{i:02d}" for i in range(m)], "model": "m",
                               "task": "survival", "fold": k, "split": split,
                               "time_days": np.round(np.exp(-z) * 200 + rng.uniform(1, 300, m), 1),
                               "event": (rng.random(m) < 0.7).astype(int),
                               "risk": -np.cumprod(1 - h, axis=1).sum(axis=1)})
            for c, name in enumerate(cols):
                df[name] = h[:, c]
            rows.append(df)
        p = root / f"fold_{k}" / "predictions.tsv"
        p.parent.mkdir(parents=True, exist_ok=True)
        pd.concat(rows).to_csv(p, sep="\t", index=False)
        paths.append(p)
    return paths


def _metrics(paths: list[Path], out: Path) -> pd.DataFrame:
    evaluate_model_(prediction_paths=paths, model="m", task="survival", n_bootstrap=0, seed=1,
                    out_predictions=out / "predictions_oof.tsv", out_metrics=out / "metrics.tsv")
    return pd.read_csv(out / "metrics.tsv", sep="\t", dtype={"fold": str}).set_index(["fold", "metric"])["value"]


def test_evaluation_uses_the_hazard_columns_not_breslow(tmp_path: Path) -> None:
    paths = _fold_tables(tmp_path / "training")
    metrics = _metrics(paths, tmp_path / "hazards")
    oof = pd.concat([pd.read_csv(p, sep="\t") for p in paths]).query("split == 'test'")
    oof = oof.sort_values(["fold", "patient_id"], kind="stable")
    cols, edges = hazard_columns(list(oof.columns))
    np.testing.assert_array_equal(edges, EDGES)
    times = time_grid(oof["time_days"].to_numpy())
    surv = discrete_hazard_survival(oof[cols].to_numpy(), edges, times)
    censoring = {"train_event": oof["event"].to_numpy(), "train_time": oof["time_days"].to_numpy()}
    expected_pooled = integrated_brier_score(oof["event"], oof["time_days"], surv, times, **censoring)
    assert metrics[("pooled", "ibs")] == pytest.approx(expected_pooled, rel=1e-5)  # metrics.tsv: 6 digits
    fold0 = (oof["fold"] == 0).to_numpy()
    expected_fold0 = integrated_brier_score(oof["event"][fold0], oof["time_days"][fold0], surv[fold0], times,
                                            **censoring)
    assert metrics[("0", "ibs")] == pytest.approx(expected_fold0, rel=1e-5)

    # the same risks without the hazard columns: Breslow curves, another IBS (C-index unchanged)
    for p in paths:
        df = pd.read_csv(p, sep="\t")
        df.drop(columns=cols).to_csv(p, sep="\t", index=False)
    breslow = _metrics(paths, tmp_path / "breslow")
    assert np.isfinite(breslow[("pooled", "ibs")])
    assert breslow[("pooled", "ibs")] != pytest.approx(expected_pooled, rel=1e-3)
    assert breslow[("pooled", "c_index")] == pytest.approx(metrics[("pooled", "c_index")])
