"""Paired model comparisons, Holm adjustment, the ablation table and the reference-model choice."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from gliofuse.config import EvaluationConfig, resolve_reference_model
from gliofuse.errors import ConfigError, InputDataError
from gliofuse.evaluation.bootstrap import paired_bootstrap
from gliofuse.evaluation.compare import COMPARISON_COLUMNS, compare_models, compare_models_, holm
from gliofuse.evaluation.metrics import classification_metrics, concordance_index

N = 90


def _survival(model: str, noise: float, seed: int, *, n: int = N) -> pd.DataFrame:
    truth = np.random.default_rng(0)
    z = truth.standard_normal(n)
    time = np.exp(-z) * 300 + 1
    event = (truth.random(n) < 0.7).astype(int)
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"patient_id": [f"TCGA-02-{i:04d}" for i in range(n)], "model": model, "task": "survival",
                         "fold": np.arange(n) % 3, "split": "test", "time_days": time, "event": event,
                         "risk": z + noise * rng.standard_normal(n)})


def _classification(model: str, signal: float, seed: int, *, n: int = N) -> pd.DataFrame:
    y = np.random.default_rng(0).integers(0, 3, n)
    rng = np.random.default_rng(seed)
    logits = signal * np.eye(3)[y] + rng.standard_normal((n, 3))
    prob = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    df = pd.DataFrame({"patient_id": [f"TCGA-02-{i:04d}" for i in range(n)], "model": model, "task": "grade",
                       "fold": np.arange(n) % 3, "split": "test", "y_true": y, "y_pred": prob.argmax(1)})
    for k, c in enumerate(("G2", "G3", "G4")):
        df[f"prob_{c}"] = prob[:, k]
    return df


def test_paired_bootstrap_self_comparison_and_clear_difference() -> None:
    df, worse = _survival("a", 0.3, 1), _survival("b", 3.0, 2)
    arrays = [df["event"].to_numpy(), df["time_days"].to_numpy(), df["risk"].to_numpy()]
    other = [worse["event"].to_numpy(), worse["time_days"].to_numpy(), worse["risk"].to_numpy()]

    def stat(e, t, r):
        return {"c_index": concordance_index(e, t, r)}

    same = paired_bootstrap(stat, arrays, arrays, n_bootstrap=50, seed=0)["c_index"]
    assert same.diff == 0 and same.diff_ci == (0.0, 0.0) and same.p_value == 1.0
    res = paired_bootstrap(stat, arrays, other, n_bootstrap=200, seed=0)["c_index"]
    assert res.value == pytest.approx(concordance_index(*arrays))
    assert res.reference_value == pytest.approx(concordance_index(*other))
    assert res.diff_ci[0] > 0 and res.p_value == pytest.approx(2 / 201)
    assert res.value_ci[0] < res.value < res.value_ci[1]
    assert paired_bootstrap(stat, arrays, other, n_bootstrap=200, seed=0) == \
        paired_bootstrap(stat, arrays, other, n_bootstrap=200, seed=0)
    none = paired_bootstrap(stat, arrays, other, n_bootstrap=0, seed=0)["c_index"]
    assert np.isnan(none.p_value) and np.isnan(none.diff_ci[0]) and none.diff == pytest.approx(res.diff)
    with pytest.raises(InputDataError, match="same length"):
        paired_bootstrap(stat, arrays, [a[:-1] for a in other], n_bootstrap=5, seed=0)


def test_holm_adjustment() -> None:
    assert holm([0.01, 0.04, float("nan"), 0.03]) == pytest.approx([0.03, 0.06, float("nan"), 0.06], nan_ok=True)
    assert holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])
    assert holm([0.2, 0.01]) == pytest.approx([0.2, 0.02])
    assert holm([]) == []


def test_compare_models_reference_rows_ablation_and_fold_test() -> None:
    oofs = {("full", "survival"): _survival("full", 0.3, 1), ("weak", "survival"): _survival("weak", 3.0, 2),
            ("full_no_x", "survival"): _survival("full_no_x", 0.35, 3),
            ("full", "grade"): _classification("full", 2.5, 4), ("weak", "grade"): _classification("weak", 0.2, 5)}
    cards = {"full_no_x": {"ablation_of": "full"}, "weak": {"ablation_of": "not_trained"}}
    comp, abl = compare_models(oofs, reference="full", cards=cards, n_bootstrap=60, seed=0)
    assert list(comp.columns) == list(COMPARISON_COLUMNS)
    assert set(comp["kind"]) == {"vs_reference"} and set(abl["kind"]) == {"ablation"}
    surv = comp[comp["task"] == "survival"].set_index("model")
    assert surv.index.tolist()[0] == "full" and np.isnan(surv.loc["full", "diff"])
    assert np.isfinite(surv.loc["full", "value_ci_low"])
    weak = surv.loc["weak"]
    assert weak["diff"] < 0 and weak["diff_ci_high"] < 0 and weak["p_value"] < 0.05
    assert weak["n_folds"] == 3 and np.isfinite(weak["p_folds"])
    folds = oofs[("weak", "survival")]
    per_fold = [concordance_index(g["event"], g["time_days"], g["risk"]) for _, g in folds.groupby("fold")]
    ref_fold = [concordance_index(g["event"], g["time_days"], g["risk"])
                for _, g in oofs[("full", "survival")].groupby("fold")]
    assert weak["fold_diff_mean"] == pytest.approx(np.mean(np.subtract(per_fold, ref_fold)), abs=1e-9)
    grade = comp[comp["task"] == "grade"]
    assert set(grade["metric"]) == {"auc_macro", "balanced_accuracy"}
    g_full = grade[(grade["model"] == "full") & (grade["metric"] == "auc_macro")].iloc[0]
    prob = oofs[("full", "grade")][["prob_G2", "prob_G3", "prob_G4"]].to_numpy()
    assert g_full["value"] == pytest.approx(classification_metrics(oofs[("full", "grade")]["y_true"], prob)["auc_macro"])
    # the ablation of 'full' is in the ablation table; 'weak' ablates an untrained model and is not
    assert abl["model"].tolist() == ["full_no_x"] and abl["reference"].tolist() == ["full"]
    # Holm over the two non-reference survival models
    sub = comp[(comp["task"] == "survival") & (comp["model"] != "full")]
    assert sub["p_holm"].tolist() == pytest.approx(holm(sub["p_value"].tolist()))


def test_compare_models_on_shared_patients_and_missing_reference(caplog: pytest.LogCaptureFixture) -> None:
    a = _survival("a", 0.3, 1)
    b = _survival("b", 1.0, 2).iloc[5:]
    comp, _ = compare_models({("a", "survival"): a, ("b", "survival"): b}, reference="a", n_bootstrap=20, seed=0)
    assert comp.set_index("model").loc["b", "n_patients"] == N - 5
    assert "share 85 patients" in caplog.text
    with pytest.raises(InputDataError, match="reference model 'c' has no out-of-fold table"):
        compare_models({("a", "survival"): a}, reference="c", n_bootstrap=0, seed=0)
    # a task the reference was not trained for (per-model task lists) is skipped with a warning
    g = _survival("b", 1.0, 2).assign(task="grade")
    comp, _ = compare_models({("a", "survival"): a, ("b", "survival"): b, ("b", "grade"): g}, reference="a",
                             n_bootstrap=10, seed=0)
    assert set(comp["task"]) == {"survival"}
    assert "reference model a was not trained for it" in caplog.text


def test_compare_models_files_and_cli(tmp_path: Path) -> None:
    paths = []
    for df in (_survival("full", 0.3, 1), _survival("abl", 1.0, 2)):
        p = tmp_path / f"{df['model'].iloc[0]}.tsv"
        df.to_csv(p, sep="\t", index=False)
        paths.append(p)
    cards = tmp_path / "cards.json"
    cards.write_text(json.dumps({"full": {"ablation_of": None}, "abl": {"ablation_of": "full"}}))
    compare_models_(oof_paths=paths, reference="full", cards_path=cards, n_bootstrap=30, seed=1,
                    out_comparisons=tmp_path / "c.tsv", out_ablation=tmp_path / "a.tsv")
    abl = pd.read_csv(tmp_path / "a.tsv", sep="\t")
    assert abl["model"].tolist() == ["abl"] and (tmp_path / "c.tsv.prov.json").exists()
    with pytest.raises(InputDataError, match="two out-of-fold tables for model 'full'"):
        compare_models_(oof_paths=[paths[0], paths[0]], reference="full", cards_path=None, n_bootstrap=0, seed=1,
                        out_comparisons=tmp_path / "c.tsv", out_ablation=tmp_path / "a.tsv")
    cfg = tmp_path / "config.yaml"
    cfg.write_text("evaluation:\n  n_bootstrap: 10\n")
    proc = subprocess.run([sys.executable, "-m", "gliofuse", "evaluate", "compare", "--config", str(cfg), "--oof",
                           *map(str, paths), "--reference", "full", "--out-comparisons", str(tmp_path / "c2.tsv"),
                           "--out-ablation", str(tmp_path / "a2.tsv")], check=False, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert len(pd.read_csv(tmp_path / "c2.tsv", sep="\t")) == 2
    assert pd.read_csv(tmp_path / "a2.tsv", sep="\t").empty  # no cards given: no ablation rows
    # the cards from the training provenance: the sidecars of fold prediction tables (as in the workflow)
    preds = []
    for model, card in (("full", {"ablation_of": None}), ("abl", {"ablation_of": "full"})):
        pred = tmp_path / "training" / model / "predictions.tsv"
        pred.parent.mkdir(parents=True)
        pred.write_text("patient_id\n")
        (pred.parent / "predictions.tsv.prov.json").write_text(json.dumps({"extra": {"model": model, "card": card}}))
        preds.append(str(pred))
    proc = subprocess.run([sys.executable, "-m", "gliofuse", "evaluate", "compare", "--config", str(cfg), "--oof",
                           *map(str, paths), "--reference", "full", "--predictions", *preds, "--out-comparisons",
                           str(tmp_path / "c3.tsv"), "--out-ablation", str(tmp_path / "a3.tsv")],
                          check=False, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert pd.read_csv(tmp_path / "a3.tsv", sep="\t")["model"].tolist() == ["abl"]


def test_reference_model_resolution() -> None:
    ev = EvaluationConfig()
    assert resolve_reference_model(ev, ["abmil", "snn"]) == "abmil"
    assert resolve_reference_model(ev, ["abmil", "subspace_fusion"]) == "subspace_fusion"
    assert resolve_reference_model(EvaluationConfig(reference_model="snn"), ["abmil", "snn"]) == "snn"
    with pytest.raises(ConfigError, match=r"evaluation.reference_model = 'snm' is not one of training.models"):
        resolve_reference_model(EvaluationConfig(reference_model="snm"), ["abmil", "snn"])
    with pytest.raises(ValueError, match="lower < upper"):
        EvaluationConfig(time_quantiles=(0.9, 0.2))
