"""Validation runner on the published tables: job list, metrics, summary and a fast end-to-end run."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from gliofuse.config import parse_config
from gliofuse.errors import ConfigError
from gliofuse.training.validation import (
    METRICS_COLUMNS,
    SUMMARY_COLUMNS,
    ValidationJob,
    split_metrics,
    summarise_metrics,
    validation_jobs,
)


def _cfg(shared_data: Path, **validation):
    v = {"pf_dir": str(shared_data / "pathomic_fusion_gbmlgg"), "mcat_dir": str(shared_data / "mcat_porpoise_gbmlgg")}
    v.update(validation)
    return parse_config({"seed": 7, "validation": v})


def test_jobs_of_the_example_config(shared_data: Path) -> None:
    repo = Path(__file__).resolve().parents[3]
    data = yaml.safe_load((repo / "config" / "real_gbmlgg_omics.yaml").read_text())
    assert data["validation"]["pf_dir"].startswith("../shared/data")  # only the example points at ../shared
    jobs = validation_jobs(parse_config(data).validation)
    kinds = pd.Series([(j.protocol, j.task, j.cohort) for j in jobs]).value_counts().to_dict()
    assert kinds == {("pf", "survival", "rnaseq"): 15, ("pf", "survival", "all"): 15, ("pf", "grade", "all"): 15,
                     ("mcat", "survival", "all"): 5}
    assert ValidationJob("pf", "snn", "grade", 3).rel_dir == "pf/snn/grade/all/split_3"
    assert validation_jobs(parse_config({}).validation) == []  # nothing configured: nothing to run


def test_job_errors_name_the_key(shared_data: Path) -> None:
    with pytest.raises(ConfigError, match="mcat_dir"):
        validation_jobs(_cfg(shared_data, mcat_dir=None).validation)  # pf rnaseq cohort needs the MCAT table
    with pytest.raises(ConfigError, match="splits"):
        validation_jobs(_cfg(shared_data, mcat={"splits": [7]}).validation)
    with pytest.raises(ConfigError, match="grade"):
        validation_jobs(_cfg(shared_data, mcat={"tasks": ["grade"]}).validation)


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


def test_validation_run_end_to_end(shared_data: Path, tmp_path: Path) -> None:
    """1 PF split (survival + grade) and 1 MCAT fold, 2 epochs each, through the CLI; report columns written."""
    from gliofuse.cli import main

    cfg = {"seed": 7, "validation": {
        "pf_dir": str(shared_data / "pathomic_fusion_gbmlgg"), "mcat_dir": str(shared_data / "mcat_porpoise_gbmlgg"),
        "pf": {"splits": [1], "epochs": 2, "survival_cohorts": ["all"]},
        "mcat": {"splits": [0], "epochs": 2}}}
    cfg_path = tmp_path / "validation.yaml"
    cfg_path.write_text(yaml.safe_dump(cfg))
    out = tmp_path / "validation"
    assert main(["validate", "run", "--config", str(cfg_path), "--out-dir", str(out), "--threads", "1"]) == 0

    summary = pd.read_csv(out / "summary.tsv", sep="\t")
    assert list(summary.columns) == list(SUMMARY_COLUMNS)
    got = {(r.protocol, r.task, r.metric) for r in summary.itertuples()}
    assert {("pf", "survival", "c_index"), ("pf", "grade", "auc_micro"), ("pf", "grade", "accuracy"),
            ("mcat", "survival", "c_index")} <= got
    assert (summary["n_splits"] == 1).all()
    assert summary["mean"].between(0, 1).all()
    pub = summary.set_index(["protocol", "task", "metric"])["published"]
    assert pub[("pf", "survival", "c_index")] == pytest.approx(0.808)
    assert pub[("mcat", "survival", "c_index")] == pytest.approx(0.598)
    assert set(summary["status"].dropna()) <= {"match", "better", "gap"}

    metrics = pd.read_csv(out / "metrics.tsv", sep="\t")
    assert list(metrics.columns) == list(METRICS_COLUMNS)
    n_test = metrics.drop_duplicates(["protocol", "task"]).set_index(["protocol", "task"])["n_test"]
    # PF split 1 test patients with a molecular subtype (survival) / and a grade (grade); MCAT fold 0 val = 114
    from gliofuse.data.published import load_pathomic_fusion_

    pf = load_pathomic_fusion_(shared_data / "pathomic_fusion_gbmlgg")
    test_idx = pf.index_of(pf.split(1).test)
    assert n_test[("pf", "survival")] == int(pf.task_mask("survival")[test_idx].sum())
    assert n_test[("pf", "grade")] == int(pf.task_mask("grade")[test_idx].sum())
    assert n_test[("mcat", "survival")] == 114

    job = out / "pf" / "snn" / "grade" / "all" / "split_1"
    history = pd.read_csv(job / "history.tsv", sep="\t")
    assert history["epoch"].tolist() == [1, 2]
    pred = pd.read_csv(job / "predictions.tsv", sep="\t")
    assert set(pred["split"]) == {"train", "test"}
    # PF trains on ROI rows: more training rows than training patients
    assert (pred["split"] == "train").sum() > pred.loc[pred["split"] == "train", "patient_id"].nunique()
    mcat_pred = pd.read_csv(out / "mcat" / "snn" / "survival" / "all" / "split_0" / "predictions.tsv", sep="\t")
    assert {"risk", "time_days", "event"} <= set(mcat_pred.columns)

    report = (out / "report.md").read_text()
    assert "| protocol | model | task | patients | metric |" in report and "0.808" in report and "0.598" in report
    assert (out / "validation.png").stat().st_size > 1000
