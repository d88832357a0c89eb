"""End-to-end reproduction run through the CLI: 1 PF split and 1 MCAT fold, 2 epochs each."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import yaml

from gliofuse.reproduce.summary import METRICS_COLUMNS, SUMMARY_COLUMNS
from gliofuse.reproduce.tables import load_pathomic_fusion_


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
