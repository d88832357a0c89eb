"""Repeated cross-validation (k folds x r repeats): per-repeat metrics, repeat means, repeat-aware comparisons."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from gliofuse.errors import InputDataError
from gliofuse.evaluation.compare import compare_models, read_oof_
from gliofuse.evaluation.evaluate import evaluate_model_
from gliofuse.evaluation.metrics import classification_metrics, concordance_index
from gliofuse.evaluation.repeats import corrected_resampled_ttest, repeat_blocks
from gliofuse.evaluation.summary import summarise_

K, R, N = 3, 2, 30
CLASSES = ("G2", "G3", "G4")


def _fold_tables(root: Path, task: str, *, model: str = "m1", noise: float = 0.7, seed: int = 0) -> list[Path]:
    """Fold prediction tables of R repeats of a K-fold CV over the same N patients (other partitions)."""
    truth = np.random.default_rng(100)
    pids = np.array([f"TCGA-02-{i:04d}" for i in range(N)])
    z = truth.standard_normal(N)
    time, event = np.exp(-z) * 400 + 1, (truth.random(N) < 0.7).astype(int)
    y = truth.integers(0, 3, N)
    rng = np.random.default_rng(seed)
    paths = []
    for repeat in range(R):
        order = np.random.default_rng(repeat).permutation(N)
        for k in range(K):
            fold = repeat * K + k
            test = np.sort(order[k::K])
            train = np.setdiff1d(np.arange(N), test)
            rows = []
            for split, idx in (("train", train), ("test", test)):
                base = {"patient_id": pids[idx], "model": model, "task": task, "fold": fold, "split": split}
                if task == "survival":
                    rows.append(pd.DataFrame({**base, "time_days": time[idx], "event": event[idx],
                                              "risk": z[idx] + noise * rng.standard_normal(idx.size)}))
                else:
                    logits = (2.0 / (noise + 0.1)) * np.eye(3)[y[idx]] + rng.standard_normal((idx.size, 3))
                    prob = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
                    df = pd.DataFrame({**base, "y_true": y[idx], "y_pred": prob.argmax(1)})
                    for c, name in enumerate(CLASSES):
                        df[f"prob_{name}"] = prob[:, c]
                    rows.append(df)
            path = root / model / task / f"fold_{fold}" / "predictions.tsv"
            path.parent.mkdir(parents=True, exist_ok=True)
            pd.concat(rows).to_csv(path, sep="\t", index=False)
            paths.append(path)
    return paths


FOLD_REPEATS = {f: f // K for f in range(K * R)}


def _evaluate(tmp_path: Path, task: str, model: str = "m1", **kw) -> tuple[pd.DataFrame, pd.DataFrame, Path]:
    paths = _fold_tables(tmp_path / "training", task, model=model, **kw)
    out = tmp_path / "evaluation" / model / task
    evaluate_model_(prediction_paths=paths, model=model, task=task, n_bootstrap=40, seed=1,
                    out_predictions=out / "predictions_oof.tsv", out_metrics=out / "metrics.tsv",
                    fold_repeats=FOLD_REPEATS)
    return (pd.read_csv(out / "predictions_oof.tsv", sep="\t", dtype={"patient_id": str}),
            pd.read_csv(out / "metrics.tsv", sep="\t", dtype={"fold": str}), out / "metrics.tsv")


def test_survival_metrics_are_pooled_per_repeat_and_averaged(tmp_path: Path) -> None:
    oof, metrics, _ = _evaluate(tmp_path, "survival")
    assert list(oof.columns[:6]) == ["patient_id", "model", "task", "fold", "repeat", "split"]
    assert len(oof) == R * N and (oof.groupby("repeat")["patient_id"].nunique() == N).all()
    assert (oof["repeat"] == oof["fold"] // K).all()
    assert sorted(set(metrics["fold"])) == [*map(str, range(K * R)), "pooled", "repeat_0", "repeat_1"]
    c = metrics[metrics["metric"] == "c_index"].set_index("fold")
    per_repeat = []
    for j in range(R):
        part = oof[oof["repeat"] == j]
        per_repeat.append(concordance_index(part["event"], part["time_days"], part["risk"]))
        assert c.loc[f"repeat_{j}", "value"] == pytest.approx(per_repeat[-1], abs=1e-6)
        assert np.isnan(c.loc[f"repeat_{j}", "ci_low"])
    assert per_repeat[0] != pytest.approx(per_repeat[1], abs=1e-9)
    pooled = c.loc["pooled"]
    assert pooled["value"] == pytest.approx(np.mean(per_repeat), abs=1e-6)
    # the CI of the repeat mean brackets it, and pooling across repeats would give another value
    assert pooled["ci_low"] < pooled["value"] < pooled["ci_high"]
    assert concordance_index(oof["event"], oof["time_days"], oof["risk"]) != pytest.approx(pooled["value"], abs=1e-9)
    for name in ("c_index_uno", "td_auc", "ibs", "logrank_p"):
        reps = metrics[(metrics["metric"] == name) & metrics["fold"].str.startswith("repeat_")]["value"]
        row = metrics[(metrics["metric"] == name) & (metrics["fold"] == "pooled")].iloc[0]
        assert row["value"] == pytest.approx(reps.mean(), abs=1e-6), name


def test_classification_repeats_and_summary_report_mean_and_sd(tmp_path: Path) -> None:
    oof, metrics, mpath = _evaluate(tmp_path, "grade")
    values = []
    for j in range(R):
        part = oof[oof["repeat"] == j]
        values.append(classification_metrics(part["y_true"], part[[f"prob_{c}" for c in CLASSES]].to_numpy())
                      ["auc_macro"])
    surv = _evaluate(tmp_path, "survival")[2]
    out = tmp_path / "summary.tsv"
    summarise_(metrics_paths=[mpath, surv], out_summary=out)
    summary = pd.read_csv(out, sep="\t", dtype={"repeat_values": str})
    assert list(summary.columns) == ["model", "task", "metric", "mean", "sd", "pooled", "ci_low", "ci_high",
                                     "n_repeats", "repeat_sd", "repeat_values"]
    row = summary[(summary["task"] == "grade") & (summary["metric"] == "auc_macro")].iloc[0]
    assert row["n_repeats"] == R
    assert row["pooled"] == pytest.approx(np.mean(values), abs=1e-6)
    assert row["repeat_sd"] == pytest.approx(np.std(values, ddof=1), abs=1e-5)
    assert [float(x) for x in row["repeat_values"].split(";")] == pytest.approx(values, abs=1e-5)
    per_fold = metrics[(metrics["metric"] == "auc_macro") & metrics["fold"].str.fullmatch(r"\d+")]["value"]
    assert len(per_fold) == K * R and row["mean"] == pytest.approx(per_fold.mean(), abs=1e-6)


def test_fold_without_a_repeat_and_overlapping_tests_are_errors(tmp_path: Path) -> None:
    paths = _fold_tables(tmp_path / "training", "survival")
    out = tmp_path / "evaluation"
    with pytest.raises(InputDataError, match=r"fold\(s\) \[5\] but no split file names them"):
        evaluate_model_(prediction_paths=paths, model="m1", task="survival", n_bootstrap=0, seed=1,
                        out_predictions=out / "o.tsv", out_metrics=out / "m.tsv",
                        fold_repeats={f: f // K for f in range(K * R - 1)})
    # without the split map every fold is repeat 0: the repeats' test rows overlap
    with pytest.raises(InputDataError, match="test rows of several folds"):
        evaluate_model_(prediction_paths=paths, model="m1", task="survival", n_bootstrap=0, seed=1,
                        out_predictions=out / "o.tsv", out_metrics=out / "m.tsv")


def test_repeat_blocks_need_the_same_patients_in_every_repeat() -> None:
    df = pd.DataFrame({"patient_id": ["a", "b", "a", "c"], "repeat": [0, 0, 1, 1], "fold": [0, 1, 2, 3]})
    with pytest.raises(InputDataError, match="repeat 1 lacks patient"):
        repeat_blocks(df, what="t")


def test_corrected_resampled_ttest_is_more_conservative_than_the_paired_t() -> None:
    from scipy.stats import ttest_1samp

    d = np.array([0.02, 0.03, 0.01, 0.04, 0.02, 0.03, 0.015, 0.025, 0.035, 0.02])
    plain = ttest_1samp(d, 0).pvalue
    corrected = corrected_resampled_ttest(d, test_train_ratio=1 / 4)
    assert plain < 1e-4 and corrected > plain
    # by hand: t = mean / sqrt((1/n + 1/4) var), n - 1 degrees of freedom
    from scipy.stats import t as student_t
    stat = d.mean() / np.sqrt((1 / d.size + 0.25) * d.var(ddof=1))
    assert corrected == pytest.approx(2 * student_t.sf(stat, d.size - 1))
    assert np.isnan(corrected_resampled_ttest([0.1], test_train_ratio=0.25))
    assert corrected_resampled_ttest([0.0, 0.0, 0.0], test_train_ratio=0.25) == 1.0


def test_comparisons_average_repeats_and_use_the_corrected_test(tmp_path: Path) -> None:
    oofs = {}
    for model, noise in (("ref", 0.3), ("other", 2.0)):
        oof, _, _ = _evaluate(tmp_path, "survival", model=model, noise=noise, seed=len(model))
        path = tmp_path / f"{model}.tsv"
        oof.to_csv(path, sep="\t", index=False)
        oofs[(model, "survival")] = read_oof_(path)
    comp, _ = compare_models(oofs, reference="ref", n_bootstrap=60, seed=0)
    assert "n_repeats" in comp.columns and (comp["n_repeats"] == R).all()
    row = comp[comp["model"] == "other"].iloc[0]
    df = oofs[("other", "survival")]
    per_repeat = [concordance_index(p["event"], p["time_days"], p["risk"]) for _, p in df.groupby("repeat")]
    assert row["value"] == pytest.approx(np.mean(per_repeat), abs=1e-6)
    assert row["n_folds"] == K * R and row["diff"] < 0
    ref = oofs[("ref", "survival")]
    diffs = []
    for fold in range(K * R):
        a, b = df[df["fold"] == fold], ref[ref["fold"] == fold]
        diffs.append(concordance_index(a["event"], a["time_days"], a["risk"])
                     - concordance_index(b["event"], b["time_days"], b["risk"]))
    assert row["p_folds"] == pytest.approx(corrected_resampled_ttest(diffs, test_train_ratio=1 / (K - 1)))


def test_duplicate_patient_within_a_repeat_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "oof.tsv"
    pd.DataFrame({"patient_id": ["a", "a", "b"], "model": "m", "task": "survival", "fold": [0, 1, 2],
                  "repeat": [0, 0, 1], "time_days": 1.0, "event": 1, "risk": 0.0}).to_csv(path, sep="\t", index=False)
    with pytest.raises(InputDataError, match="duplicate patient\\(s\\) \\['a'\\] within one repeat"):
        read_oof_(path)


def test_cli_maps_folds_to_repeats_with_the_split_files(tmp_path: Path) -> None:
    from gliofuse.cli import main
    from gliofuse.data.splits import Split, write_splits_

    paths = _fold_tables(tmp_path / "training", "survival")
    splits = []
    for fold, path in enumerate(paths):
        df = pd.read_csv(path, sep="\t", dtype={"patient_id": str})
        part = {s: tuple(sorted(df.loc[df["split"] == s, "patient_id"])) for s in ("train", "test")}
        splits.append(Split(fold=fold, n_folds=K, seed=3, stratify_by="none", val=(), **part,
                            repeat=fold // K, n_repeats=R, repeat_seed=None if fold < K else 77))
    split_paths = [tmp_path / "splits" / f"fold_{i}.json" for i in range(K * R)]
    write_splits_(splits, out_paths=split_paths)
    cfg = tmp_path / "config.yaml"
    cfg.write_text("seed: 3\nevaluation: {n_bootstrap: 20}\n")
    out = tmp_path / "evaluation"
    args = ["evaluate", "model", "--config", str(cfg), "--model", "m1", "--task", "survival",
            "--predictions", *map(str, paths), "--out-predictions", str(out / "oof.tsv"),
            "--out-metrics", str(out / "metrics.tsv")]
    assert main([*args, "--splits", *map(str, split_paths)]) == 0
    oof = pd.read_csv(out / "oof.tsv", sep="\t")
    assert (oof["repeat"] == oof["fold"] // K).all()
    assert main([*args, "--splits", *map(str, split_paths[:-1])]) == 1  # an incomplete repeat is named
    assert main(args) == 1  # without the split files the repeats' test sets overlap
