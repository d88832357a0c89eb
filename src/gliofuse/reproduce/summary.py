"""Scores of the reproduction: per-split metrics of every job and their summary next to the published values.

* ``metrics.tsv``: :data:`METRICS_COLUMNS`, one row per job and metric, on the split's test patients.
* ``summary.tsv``: :data:`SUMMARY_COLUMNS`, the mean over splits next to the published value.

Every metric comes from :mod:`gliofuse.evaluation.metrics`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from gliofuse.config import ValidationConfig
from gliofuse.io import read_table_
from gliofuse.reproduce.jobs import JOB_COLUMNS, ValidationJob, load_cohort_, protocol_config, roi_weighting
from gliofuse.reproduce.protocols import published_result
from gliofuse.reproduce.tables import PublishedCohort

METRICS_COLUMNS: tuple[str, ...] = (*JOB_COLUMNS, "metric", "value", "n_test", "train_seconds")
SUMMARY_COLUMNS: tuple[str, ...] = ("protocol", "model", "task", "cohort", "metric", "n_splits", "mean", "sd", "ci95",
                                    "min", "max", "published", "published_pm", "published_pm_kind", "delta",
                                    "status", "source")
GRADE_METRICS: tuple[str, ...] = ("auc_micro", "auc_macro", "accuracy", "f1_macro")


def split_metrics(test: pd.DataFrame, task: str, *, weight: Mapping[str, int] | None = None) -> dict[str, float]:
    """Metrics of one split's test rows (``predictions.tsv`` columns), from the project's metrics module.

    Survival: Harrell's C of ``risk`` per patient (PF averages a patient's ROI hazards before its C-index;
    MCAT scores patients). Grade: :data:`GRADE_METRICS`, each patient repeated ``weight[patient]`` times
    (PF computes the grade metrics on ROI rows); ``weight`` None: once.
    """
    from gliofuse.evaluation.metrics import classification_metrics, concordance_index

    if task == "survival":
        return {"c_index": concordance_index(test["event"].to_numpy(), test["time_days"].to_numpy(np.float64),
                                             test["risk"].to_numpy(np.float64))}
    probs = test[[c for c in test.columns if c.startswith("prob_")]].to_numpy(np.float64)
    y = test["y_true"].to_numpy(np.int64)
    reps = np.ones(len(test), dtype=np.int64) if weight is None else \
        np.asarray([int(weight.get(p, 1)) for p in test["patient_id"]], dtype=np.int64)
    return classification_metrics(np.repeat(y, reps), np.repeat(probs, reps, axis=0), names=GRADE_METRICS)


def _history_seconds(job_dir: Path) -> float:
    path = job_dir / "history.tsv"
    if not path.exists():
        return math.nan
    return float(pd.read_csv(path, sep="\t")["seconds"].sum())


def collect_metrics_(cfg: ValidationConfig, jobs: Sequence[ValidationJob], out_root: Path,
                     cohorts: Mapping[str, PublishedCohort] | None = None) -> pd.DataFrame:
    """Score every job's test rows (``<job>/predictions.tsv``) -> the ``metrics.tsv`` frame."""
    cohorts = dict(cohorts or {})
    records = []
    for job in jobs:
        job_dir = Path(out_root) / job.rel_dir
        pred = read_table_(job_dir / "predictions.tsv", required=["patient_id", "split"],
                           what="validation predictions", dtype={"patient_id": str})
        test = pred[pred["split"] == "test"]
        weight = None
        if job.task == "grade" and roi_weighting(protocol_config(cfg, job.protocol)):
            if job.protocol not in cohorts:
                cohorts[job.protocol] = load_cohort_(cfg, job.protocol)
            c = cohorts[job.protocol]
            weight = dict(zip(c.patients, c.weight.tolist(), strict=True))
        seconds = _history_seconds(job_dir)
        for metric, value in split_metrics(test, job.task, weight=weight).items():
            records.append((job.protocol, job.model, job.task, job.cohort, job.split, metric, value, len(test),
                            seconds))
    return pd.DataFrame(records, columns=list(METRICS_COLUMNS))


def summarise_metrics(metrics: pd.DataFrame, *, tolerance: float) -> pd.DataFrame:
    """Mean, SD and 95 % t-interval half-width over splits, next to the published value.

    ``status``: ``match`` when ``|mean - published| <= tolerance``, ``better`` when above it, ``gap`` when
    below; empty without a published value.
    """
    from scipy import stats

    records = []
    for (protocol, model, task, cohort, metric), g in metrics.groupby(["protocol", "model", "task", "cohort", "metric"],
                                                                     sort=False):
        v = pd.to_numeric(g["value"], errors="coerce").dropna().to_numpy(np.float64)
        n = v.size
        mean = float(v.mean()) if n else math.nan
        sd = float(v.std(ddof=1)) if n > 1 else math.nan
        ci = float(stats.t.ppf(0.975, n - 1) * sd / math.sqrt(n)) if n > 1 else math.nan
        pub = published_result(protocol, task, metric)
        delta, status = math.nan, ""
        if pub is not None and n:
            delta = mean - pub.value
            status = "match" if abs(delta) <= tolerance + 1e-12 else ("better" if delta > 0 else "gap")
        records.append((protocol, model, task, cohort, metric, n, mean, sd, ci, float(v.min()) if n else math.nan,
                        float(v.max()) if n else math.nan, pub.value if pub else math.nan,
                        pub.pm if pub else math.nan, pub.pm_kind if pub else "", delta, status,
                        pub.source if pub else ""))
    return pd.DataFrame(records, columns=list(SUMMARY_COLUMNS))
