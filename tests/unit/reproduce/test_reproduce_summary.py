"""Metrics and summary of the reproduction: status against the published values, ROI-weighted grade metrics."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from gliofuse.reproduce.summary import METRICS_COLUMNS, SUMMARY_COLUMNS, split_metrics, summarise_metrics


def test_summary_status_against_published() -> None:
    rows = []
    for k, (c_pf, c_mcat) in enumerate([(0.80, 0.70), (0.81, 0.72), (0.82, 0.74)]):
        rows.append(("pf", "snn", "survival", "all", k + 1, "c_index", c_pf, 150, 1.0))
        rows.append(("mcat", "snn", "survival", "all", k, "c_index", c_mcat, 114, 1.0))
        rows.append(("pf", "snn", "grade", "all", k + 1, "auc_micro", 0.80, 150, 1.0))
    summary = summarise_metrics(pd.DataFrame(rows, columns=list(METRICS_COLUMNS)), tolerance=0.015)
    assert list(summary.columns) == list(SUMMARY_COLUMNS)
    by = summary.set_index(["protocol", "task"])
    assert by.loc[("pf", "survival"), "mean"] == pytest.approx(0.81)
    assert by.loc[("pf", "survival"), "status"] == "match"  # 0.81 vs 0.808
    assert by.loc[("mcat", "survival"), "status"] == "better"  # 0.72 vs 0.598
    assert by.loc[("pf", "grade"), "status"] == "gap"  # 0.80 vs 0.872
    sd = np.std([0.80, 0.81, 0.82], ddof=1)
    assert by.loc[("pf", "survival"), "sd"] == pytest.approx(sd)
    assert by.loc[("pf", "survival"), "ci95"] == pytest.approx(4.302653 * sd / math.sqrt(3), rel=1e-5)


def test_grade_metrics_weight_patients_by_roi() -> None:
    test = pd.DataFrame({"patient_id": ["a", "b", "c"], "y_true": [0, 1, 2],
                         "prob_G2": [0.8, 0.1, 0.1], "prob_G3": [0.1, 0.8, 0.1], "prob_G4": [0.6, 0.3, 0.1]})
    flat = split_metrics(test, "grade")
    weighted = split_metrics(test, "grade", weight={"c": 5})
    assert flat["accuracy"] == pytest.approx(2 / 3)
    assert weighted["accuracy"] == pytest.approx(2 / 7)  # the wrong patient counts 5 times
    assert weighted["auc_micro"] < flat["auc_micro"]
