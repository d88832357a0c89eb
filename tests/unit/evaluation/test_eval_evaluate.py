"""evaluate_model_ and summarise_: contract §9 files from §8 prediction tables."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from gliofuse.errors import InputDataError
from gliofuse.evaluation.evaluate import evaluate_model_
from gliofuse.evaluation.metrics import classification_metrics, concordance_index
from gliofuse.evaluation.summary import summarise_

CLASSES = ("astrocytoma_idhmut", "oligodendroglioma_idhmut_codel", "glioblastoma_idhwt")


def _fold_tables(root: Path, task: str, *, model: str = "m1", n_folds: int = 3, n: int = 13,
                 seed: int = 0) -> list[Path]:
    rng = np.random.default_rng(seed)
    paths = []
    for k in range(n_folds):
        rows = []
        for split, m in (("train", n), ("val", 3), ("test", n)):
            pids = [f"TCGA-{k:02d}-{split[:2]}{i:02d}" if split != "test" else f"TCGA-T{k}-{i:04d}"
                    for i in range(m)]
            z = rng.standard_normal(m)
            base = {"patient_id": pids, "model": model, "task": task, "fold": k, "split": split}
            if task == "survival":
                rows.append(pd.DataFrame({**base, "time_days": np.exp(-z) * 500 + rng.random(m),
                                          "event": (rng.random(m) < 0.7).astype(int),
                                          "risk": z + 0.5 * rng.standard_normal(m)}))
            else:
                y = rng.integers(0, 3, m)
                logits = 2.0 * np.eye(3)[y] + rng.standard_normal((m, 3))
                prob = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
                df = pd.DataFrame({**base, "y_true": y, "y_pred": prob.argmax(1)})
                for c, name in enumerate(CLASSES):
                    df[f"prob_{name}"] = prob[:, c]
                rows.append(df)
        p = root / model / task / f"fold_{k}" / "predictions.tsv"
        p.parent.mkdir(parents=True, exist_ok=True)
        pd.concat(rows).to_csv(p, sep="\t", index=False)
        paths.append(p)
    return paths


def _evaluate(tmp_path: Path, task: str, paths: list[Path], model: str = "m1",
              n_bootstrap: int = 50) -> tuple[pd.DataFrame, pd.DataFrame, Path]:
    out = tmp_path / "evaluation" / model / task
    evaluate_model_(prediction_paths=paths, model=model, task=task, n_bootstrap=n_bootstrap, seed=1,
                    out_predictions=out / "predictions_oof.tsv", out_metrics=out / "metrics.tsv")
    oof = pd.read_csv(out / "predictions_oof.tsv", sep="\t")
    metrics = pd.read_csv(out / "metrics.tsv", sep="\t", dtype={"fold": str})
    return oof, metrics, out / "metrics.tsv"


def test_survival_evaluation_contract(tmp_path: Path) -> None:
    paths = _fold_tables(tmp_path / "training", "survival")
    oof, metrics, _ = _evaluate(tmp_path, "survival", paths)
    assert set(oof["split"]) == {"test"} and oof["patient_id"].is_unique and len(oof) == 3 * 13
    assert list(metrics.columns) == ["model", "task", "fold", "metric", "value", "ci_low", "ci_high"]
    assert sorted(set(metrics["fold"])) == ["0", "1", "2", "pooled"]
    assert set(metrics["metric"]) == {"c_index", "c_index_uno", "td_auc", "ibs", "logrank_p"}
    pooled = metrics[(metrics["fold"] == "pooled") & (metrics["metric"] == "c_index")].iloc[0]
    expected = concordance_index(oof["event"], oof["time_days"], oof["risk"])
    assert pooled["value"] == pytest.approx(expected, abs=1e-5)
    assert 0 <= pooled["ci_low"] < pooled["ci_high"] <= 1
    fold0 = metrics[(metrics["fold"] == "0") & (metrics["metric"] == "c_index")].iloc[0]
    t0 = oof[oof["fold"] == 0]
    assert fold0["value"] == pytest.approx(concordance_index(t0["event"], t0["time_days"], t0["risk"]), abs=1e-5)
    assert np.isnan(fold0["ci_low"])
    assert (tmp_path / "evaluation" / "m1" / "survival" / "metrics.tsv.prov.json").exists()
    pooled_all = metrics[metrics["fold"] == "pooled"].set_index("metric")
    for name in ("c_index_uno", "td_auc", "ibs"):
        row = pooled_all.loc[name]
        assert np.isfinite(row["value"]) and row["ci_low"] <= row["value"] <= row["ci_high"], name
    assert 0 < pooled_all.loc["ibs", "value"] < 0.5


def test_classification_evaluation_and_summary(tmp_path: Path) -> None:
    paths = _fold_tables(tmp_path / "training", "diagnosis")
    oof, metrics, mpath = _evaluate(tmp_path, "diagnosis", paths)
    assert set(metrics["metric"]) == {"auc_macro", "auc_micro", "average_precision", "balanced_accuracy",
                                      "f1_macro", "accuracy"}
    prob = oof[[f"prob_{c}" for c in CLASSES]].to_numpy()
    expected = classification_metrics(oof["y_true"], prob)
    pooled = metrics[metrics["fold"] == "pooled"].set_index("metric")["value"]
    for name, value in expected.items():
        assert pooled[name] == pytest.approx(value, abs=1e-5)
    surv = _evaluate(tmp_path, "survival", _fold_tables(tmp_path / "training", "survival"))[2]
    out = tmp_path / "evaluation" / "summary.tsv"
    summarise_(metrics_paths=[mpath, surv], out_summary=out)
    summary = pd.read_csv(out, sep="\t")
    assert list(summary.columns) == ["model", "task", "metric", "mean", "sd", "pooled", "ci_low", "ci_high"]
    assert len(summary) == 6 + 5
    acc = summary[(summary["task"] == "diagnosis") & (summary["metric"] == "accuracy")].iloc[0]
    folds = metrics[(metrics["metric"] == "accuracy") & (metrics["fold"] != "pooled")]["value"]
    assert acc["mean"] == pytest.approx(folds.mean(), abs=1e-5)
    assert acc["sd"] == pytest.approx(folds.std(ddof=1), abs=1e-5)
    assert acc["pooled"] == pytest.approx(pooled["accuracy"], abs=1e-5)


def test_shuffled_rows_give_same_metrics(tmp_path: Path) -> None:
    paths = _fold_tables(tmp_path / "a", "survival", seed=4)
    _, m1, _ = _evaluate(tmp_path / "r1", "survival", paths)
    for p in paths:
        df = pd.read_csv(p, sep="\t")
        df.sample(frac=1.0, random_state=0).to_csv(p, sep="\t", index=False)
    _, m2, _ = _evaluate(tmp_path / "r2", "survival", paths)
    pd.testing.assert_frame_equal(m1, m2)


def test_bad_prediction_files_are_named(tmp_path: Path) -> None:
    paths = _fold_tables(tmp_path / "training", "survival")
    df = pd.read_csv(paths[1], sep="\t").drop(columns="risk")
    df.to_csv(paths[1], sep="\t", index=False)
    with pytest.raises(InputDataError, match=r"fold_1/predictions.tsv lacks required column\(s\) \['risk'\]"):
        _evaluate(tmp_path, "survival", paths)
    with pytest.raises(InputDataError, match=r"column 'model' holds \['m1'\], expected only 'other'"):
        _evaluate(tmp_path, "survival", paths[:1], model="other")
    with pytest.raises(InputDataError, match="are both for fold 0"):
        _evaluate(tmp_path, "survival", [paths[0], paths[0]])
    cls = _fold_tables(tmp_path / "cls", "grade")
    df = pd.read_csv(cls[0], sep="\t")
    df[f"prob_{CLASSES[0]}"] = 0.9
    df.to_csv(cls[0], sep="\t", index=False)
    with pytest.raises(InputDataError, match="summing to 1"):
        _evaluate(tmp_path, "grade", cls)


def test_survival_curves_from_discrete_hazards_are_used(tmp_path: Path) -> None:
    """A discrete-time head's hazard_<edge> columns replace Breslow; a better-calibrated curve has a lower IBS."""
    paths = _fold_tables(tmp_path / "training", "survival", seed=2)
    edges = [200.0, 400.0, 800.0, np.inf]
    for p in paths:
        df = pd.read_csv(p, sep="\t")
        for k, e in enumerate(edges):  # constant hazards: the same curve for everybody
            df[f"hazard_{e:g}"] = 0.25 if k < 3 else 1.0
        df.to_csv(p, sep="\t", index=False)
    _, metrics, _ = _evaluate(tmp_path / "a", "survival", paths)
    pooled = metrics[metrics["fold"] == "pooled"].set_index("metric")["value"]
    assert np.isfinite(pooled["ibs"])
    # identical curves for all patients carry no ranking: the time-dependent AUC is 0.5
    assert pooled["td_auc"] == pytest.approx(0.5)


def test_breslow_fails_softly_without_training_events(tmp_path: Path) -> None:
    paths = _fold_tables(tmp_path / "training", "survival", seed=3)
    df = pd.read_csv(paths[0], sep="\t")
    df.loc[df["split"] == "train", "event"] = 0
    df.to_csv(paths[0], sep="\t", index=False)
    _, metrics, _ = _evaluate(tmp_path, "survival", paths)
    by = metrics.set_index(["fold", "metric"])["value"]
    assert np.isnan(by[("0", "ibs")]) and np.isnan(by[("pooled", "ibs")])
    assert np.isfinite(by[("1", "ibs")]) and np.isfinite(by[("pooled", "td_auc")])


def test_evaluation_does_not_import_torch() -> None:
    code = ("import sys, gliofuse.evaluation.evaluate, gliofuse.evaluation.compare, gliofuse.report.figures, "
            "gliofuse.report.training, gliofuse.report.forest, gliofuse.report.attention, gliofuse.report.tables; "
            "assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], check=True)
