"""External evaluation: the KM risk cut-off comes from the development fold predictions only (the median of the
patients' mean fold risk; external labels never move it), the KM estimate matches lifelines, calibration compares
the mean predicted with the observed survival at the horizons, and classification tasks use the bundle's class map
(a predicted patient without a clinical row is left out of the metrics)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from gliofuse.errors import InputDataError
from gliofuse.evaluation.calibration import calibration_table, horizon_days, kaplan_meier, km_at, survival_at
from gliofuse.evaluation.external import development_cutoffs, evaluate_external_
from gliofuse.io import provenance, write_table_

PROV = provenance(config={})


def _fold(path: Path, fold: int, risks: dict[str, float]) -> Path:
    df = pd.DataFrame({"patient_id": list(risks), "model": "m", "task": "survival", "fold": fold, "split": "train",
                       "time_days": 100.0, "event": 1, "risk": list(risks.values())})
    write_table_(path, df, prov=PROV)
    return path


def _development(tmp_path: Path) -> list[Path]:
    # mean fold risk per patient: A 1.0, B 2.0, C 4.0, D 10.0 -> median 3.0
    return [_fold(tmp_path / "f0.tsv", 0, {"A": 0.5, "B": 1.0, "C": 5.0, "D": 12.0}),
            _fold(tmp_path / "f1.tsv", 1, {"A": 1.5, "B": 3.0, "C": 3.0, "D": 8.0})]


def _external(tmp_path: Path, seed: int) -> tuple[Path, Path, Path]:
    rng = np.random.default_rng(seed)
    n = 40
    pids = [f"X{i:02d}" for i in range(n)]
    risk = np.linspace(0.0, 6.0, n)
    pred_dir = tmp_path / "predict" / "m" / "survival"
    write_table_(pred_dir / "predictions.tsv", pd.DataFrame({"patient_id": pids, "model": "m", "task": "survival",
                                                             "n_models": 2, "risk": risk}), prov=PROV)
    curve_days = np.linspace(0, 1500, 11)
    surv = np.exp(-np.outer(np.exp(risk - 3.0), curve_days) / 1500.0)
    write_table_(pred_dir / "survival.tsv", pd.DataFrame(
        {"patient_id": pids, **{f"surv_{d:g}": surv[:, k] for k, d in enumerate(curve_days)}}), prov=PROV)
    time = rng.uniform(50, 3000, n)
    labels = pd.DataFrame({"patient_id": pids, "time_days": time, "event": (rng.random(n) < 0.6).astype(int),
                           "grade": -1, "diagnosis": -1, "who2021_grade": np.nan})
    write_table_(tmp_path / "labels.tsv", labels, prov=PROV)
    bundle = tmp_path / "bundle.json"
    bundle.write_text(json.dumps({"model": "m", "task": "survival", "class_names": [], "training": {}}))
    return pred_dir / "predictions.tsv", tmp_path / "labels.tsv", bundle


def test_the_cutoff_is_the_median_of_the_development_mean_fold_risk(tmp_path: Path) -> None:
    cut = development_cutoffs(_development(tmp_path))
    assert cut.to_dict("records") == [{"model": "m", "task": "survival", "cutoff": 3.0,
                                       "n_development_patients": 4, "n_folds": 2}]


def test_external_labels_do_not_move_the_cutoff_and_split_the_km_groups_at_it(tmp_path: Path) -> None:
    dev = _development(tmp_path)
    outs = []
    for seed in (0, 1):  # two different sets of external outcomes
        pred, labels, bundle = _external(tmp_path / f"ext{seed}", seed)
        out = tmp_path / f"eval{seed}"
        evaluate_external_(cohort="siteB", prediction_paths=[pred], bundle_paths=[bundle], labels_path=labels,
                           development_predictions=dev, n_bootstrap=20, seed=3, out_dir=out)
        outs.append(out)
    assert (outs[0] / "cutoffs.tsv").read_bytes() == (outs[1] / "cutoffs.tsv").read_bytes()
    km = pd.read_csv(outs[0] / "km.tsv", sep="\t")
    at_zero = km[km["time_days"] == 0].set_index("group")["n_at_risk"].to_dict()
    risk = np.linspace(0.0, 6.0, 40)
    assert at_zero == {"high": int((risk > 3.0).sum()), "low": int((risk <= 3.0).sum())}
    metrics = pd.read_csv(outs[0] / "metrics.tsv", sep="\t")
    assert set(metrics["metric"]) == {"c_index", "c_index_uno", "td_auc", "ibs", "logrank_p"}
    c = metrics.set_index("metric").loc["c_index"]
    assert c["ci_low"] <= c["value"] <= c["ci_high"] and c["n_patients"] == 40 and c["cohort"] == "siteB"
    cal = pd.read_csv(outs[0] / "calibration.tsv", sep="\t")
    assert sorted(cal["horizon_years"].unique()) == [1.0, 2.0, 5.0] and set(cal["group"]) == {"low", "high"}
    assert cal.loc[cal["horizon_years"] == 5.0, "predicted"].isna().all()  # beyond the 1500-day curve
    # the high-risk group is predicted to survive less at 1 year
    one = cal[cal["horizon_years"] == 1.0].set_index("group")["predicted"]
    assert one["high"] < one["low"]


def test_no_development_predictions_means_no_cutoff_and_a_clear_error(tmp_path: Path) -> None:
    pred, labels, bundle = _external(tmp_path, 0)
    with pytest.raises(InputDataError, match="development"):
        evaluate_external_(cohort="siteB", prediction_paths=[pred], bundle_paths=[bundle], labels_path=labels,
                           development_predictions=[], n_bootstrap=0, seed=0, out_dir=tmp_path / "out")


def test_a_ground_truth_adds_the_true_risk_c_index_of_each_survival_model(tmp_path: Path) -> None:
    """The demo site's truth/ground_truth.tsv: risk vs true risk, over the patients with a true risk only."""
    pred, labels, bundle = _external(tmp_path, 0)
    pids = [f"X{i:02d}" for i in range(40)]  # predicted risk rises with the index
    true = np.linspace(0.0, 6.0, 40)
    true[[0, 1]] = true[[1, 0]]  # one discordant pair out of the 38*37/2 pairs with a true risk
    truth = tmp_path / "truth.tsv"  # X38 and X39 have no true risk: left out
    pd.DataFrame({"patient_id": pids[:-2], "true_risk": true[:-2]}).to_csv(truth, sep="\t", index=False)
    evaluate_external_(cohort="SITEB", prediction_paths=[pred], bundle_paths=[bundle], labels_path=labels,
                       development_predictions=_development(tmp_path), n_bootstrap=50, seed=3,
                       out_dir=tmp_path / "out", truth_path=truth)
    metrics = pd.read_csv(tmp_path / "out" / "metrics.tsv", sep="\t").set_index("metric")
    row = metrics.loc["c_index_true_risk"]
    assert row["value"] == pytest.approx(1 - 1 / (38 * 37 / 2)) and row["n_patients"] == 38
    assert row["ci_low"] <= row["value"] <= row["ci_high"] and row["cohort"] == "SITEB"
    # without a ground truth (a real cohort) there is no such row
    evaluate_external_(cohort="SITEB", prediction_paths=[pred], bundle_paths=[bundle], labels_path=labels,
                       development_predictions=_development(tmp_path), n_bootstrap=0, seed=3,
                       out_dir=tmp_path / "real")
    assert "c_index_true_risk" not in set(pd.read_csv(tmp_path / "real" / "metrics.tsv", sep="\t")["metric"])


def test_kaplan_meier_matches_lifelines_and_its_ci_brackets_the_estimate() -> None:
    from lifelines import KaplanMeierFitter

    rng = np.random.default_rng(5)
    t = np.round(rng.uniform(1, 100, 60))
    e = (rng.random(60) < 0.7).astype(int)
    km = kaplan_meier(t, e)
    ref = KaplanMeierFitter().fit(t, e)
    for q in (10.0, 35.5, 80.0):
        s, lo, hi = km_at(km, q)
        assert s == pytest.approx(float(ref.predict(q)), abs=1e-12)
        assert lo <= s <= hi
    assert np.isnan(km_at(km, 1000.0)[0])  # beyond the follow-up


def test_calibration_of_perfect_predictions_matches_the_observed_survival() -> None:
    t = np.array([100.0, 200, 300, 400, 500, 600, 700, 800])
    e = np.ones(8, dtype=int)
    km = kaplan_meier(t, e)
    h = [horizon_days(1.0)]
    predicted = np.full((8, 1), km_at(km, h[0])[0])
    cal = calibration_table("m", "survival", {"all": np.ones(8, bool)}, t, e, predicted, horizons_years=(1.0,))
    assert cal["predicted"].iloc[0] == pytest.approx(cal["observed"].iloc[0]) == pytest.approx(5 / 8)  # 3 deaths by day 365


def test_survival_at_interpolates_the_curve_and_is_nan_beyond_it() -> None:
    curves = pd.DataFrame({"patient_id": ["a"], "surv_0": [1.0], "surv_100": [0.5]})
    np.testing.assert_allclose(survival_at(curves, [50.0, 100.0, 150.0]), [[0.75, 0.5, np.nan]])


def test_classification_uses_the_bundle_class_map(tmp_path: Path) -> None:
    pids = [f"X{i}" for i in range(12)]
    y = np.array([0, 1, 2] * 4)
    prob = np.eye(3)[y] * 0.7 + 0.1
    pred = tmp_path / "predict" / "m" / "grade" / "predictions.tsv"
    write_table_(pred, pd.DataFrame({"patient_id": pids, "model": "m", "task": "grade", "n_models": 2,
                                     "y_pred": y, **{f"prob_G{k + 2}": prob[:, k] for k in range(3)}}), prov=PROV)
    labels = tmp_path / "labels.tsv"
    write_table_(labels, pd.DataFrame({"patient_id": pids[:-1], "time_days": 10.0, "event": 0, "grade": -1,
                                       "histologic_grade": y[:-1] + 2}), prov=PROV)  # X11: no clinical row
    bundle = tmp_path / "bundle.json"
    bundle.write_text(json.dumps({"model": "m", "task": "grade", "class_names": ["G2", "G3", "G4"],
                                  "training": {"grade_label": "histologic"}}))
    evaluate_external_(cohort="c", prediction_paths=[pred], bundle_paths=[bundle], labels_path=labels,
                       development_predictions=[], n_bootstrap=10, seed=0, out_dir=tmp_path / "out")
    metrics = pd.read_csv(tmp_path / "out" / "metrics.tsv", sep="\t").set_index("metric")
    assert metrics.loc["accuracy", "value"] == 1.0 and metrics.loc["accuracy", "n_patients"] == 11
