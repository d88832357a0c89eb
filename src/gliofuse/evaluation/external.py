"""External validation of the development models on one external cohort (contract §12).

Reads the cohort's ``gliofuse predict`` outputs (one per model × task), its label table and, for the
survival risk groups, the development fold predictions; writes under ``out_dir``:

* ``metrics.tsv``: the development evaluation's metrics (:mod:`gliofuse.evaluation.evaluate`, same functions,
  percentile bootstrap CIs over patients) plus ``logrank_p`` between the risk groups;
* ``cutoffs.tsv``: each survival model's risk cut-off, from the DEVELOPMENT cohort only: the median, over the
  development patients, of the ensemble risk (the mean of the fold models' risks on every split — what the
  bundle gives a development patient). External risks are the same fold models' mean, so on the same scale;
* ``km.tsv``: Kaplan-Meier curves of the external patients split at that cut-off (high = risk above it);
* ``calibration.tsv``: mean predicted vs observed (KM) survival at 1, 2 and 5 years per risk group.

Given a simulated cohort's ground truth (the demo site's ``truth/ground_truth.tsv``), each survival model also gets
the metric ``c_index_true_risk`` (:mod:`gliofuse.evaluation.truth`): the concordance of its risk with the true risk.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from gliofuse.errors import InputDataError
from gliofuse.evaluation.bootstrap import bootstrap_cis
from gliofuse.evaluation.calibration import (
    CALIBRATION_HORIZONS_YEARS,
    calibration_table,
    horizon_days,
    km_table,
    survival_at,
)
from gliofuse.evaluation.evaluate import CLASSIFICATION_METRICS, SURVIVAL_METRICS, survival_metrics
from gliofuse.evaluation.metrics import classification_metrics, logrank_p
from gliofuse.evaluation.survival import time_grid
from gliofuse.evaluation.truth import TRUE_RISK_COLUMN, read_true_risk_, true_risk_concordance
from gliofuse.io import provenance, read_table_, write_table_
from gliofuse.tasks import TaskSpec, class_indices, get_task

logger = logging.getLogger(__name__)

EXTERNAL_METRICS_COLUMNS: tuple[str, ...] = ("cohort", "model", "task", "metric", "value", "ci_low", "ci_high",
                                             "n_patients")
CUTOFF_COLUMNS: tuple[str, ...] = ("model", "task", "cutoff", "n_development_patients", "n_folds")
RISK_GROUPS: tuple[str, str] = ("low", "high")


def bundle_task(bundle_json: Path) -> tuple[str, TaskSpec]:
    """(model, task spec) of a bundle, from its ``bundle.json`` (class map of the development training)."""
    meta = json.loads(Path(bundle_json).read_text())
    training = meta.get("training", {})
    spec = get_task(meta["task"], diagnosis_classes=training.get("diagnosis_classes", 3),
                    grade_label=training.get("grade_label", "who2021"))
    if list(spec.class_names) != list(meta.get("class_names", [])):
        raise InputDataError(f"bundle {bundle_json}: class_names {meta.get('class_names')} differ from the task's "
                             f"{list(spec.class_names)}; re-export the bundle.")
    return str(meta["model"]), spec


def development_cutoffs(fold_prediction_paths: Sequence[Path]) -> pd.DataFrame:
    """Risk cut-off of each survival model from its development fold predictions (contract §8 files).

    Cut-off = median over the development patients of the mean of the fold models' risks (every split).
    """
    frames = [read_table_(p, required=["patient_id", "model", "task", "fold", "risk"], what="fold prediction table",
                          dtype={"patient_id": str}) for p in fold_prediction_paths]
    if not frames:
        return pd.DataFrame(columns=list(CUTOFF_COLUMNS))
    df = pd.concat(frames, ignore_index=True)
    rows = []
    for (model, task), part in df.groupby(["model", "task"], sort=True):
        ensemble = part.groupby("patient_id")["risk"].mean()
        rows.append((model, task, float(np.median(ensemble.to_numpy(np.float64))), len(ensemble),
                     part["fold"].nunique()))
    return pd.DataFrame(rows, columns=list(CUTOFF_COLUMNS))


def _truth(labels: pd.DataFrame, patients: list[str], spec: TaskSpec, labels_path: Path) -> pd.DataFrame:
    """time_days, event and (classification) y_true of ``patients``; NaN / -1 where unknown (also for a patient
    without a row in the label table: left out of the metrics, as in the development cohort, and logged)."""
    absent = [p for p in patients if p not in labels.index]
    if absent:
        logger.warning("external label table %s: no row for %d predicted patient(s), left out of the metrics: %s",
                       labels_path, len(absent), absent[:5])
    rows = labels.reindex(patients)
    out = pd.DataFrame({"time_days": pd.to_numeric(rows["time_days"], errors="coerce").to_numpy(np.float64),
                        "event": pd.to_numeric(rows["event"], errors="coerce").to_numpy(np.float64)}, index=patients)
    if spec.kind == "classification":
        raw = pd.to_numeric(rows[spec.label_column], errors="coerce").fillna(-1).tolist()
        grade = pd.to_numeric(rows["who2021_grade"], errors="coerce").tolist() if "who2021_grade" in rows else None
        y, bad = class_indices(spec, raw, grade)
        if bad:
            raise InputDataError(f"external label table {labels_path}: column {spec.label_column!r} has values "
                                 f"that are no class index for patients {[patients[i] for i in bad[:5]]}.")
        out["y_true"] = y
    return out


def _survival_block(cohort: str, model: str, task: str, df: pd.DataFrame, curves: pd.DataFrame | None,
                    cutoff: float, *, n_bootstrap: int, seed: int, time_quantiles: tuple[float, float],
                    n_times: int) -> tuple[list[tuple], pd.DataFrame, pd.DataFrame]:
    ev = df["event"].to_numpy(np.int64)
    t = df["time_days"].to_numpy(np.float64)
    r = df["risk"].to_numpy(np.float64)
    times = time_grid(t, quantiles=time_quantiles, n_times=n_times)
    if curves is not None:
        curves = curves.set_index("patient_id").loc[df.index].reset_index()
        surv = survival_at(curves, times)
        keep = np.isfinite(surv).all(axis=0)  # the grid within the bundle's curve
        times, surv = times[keep], surv[:, keep]
        at_horizons = survival_at(curves, [horizon_days(y) for y in CALIBRATION_HORIZONS_YEARS])
    else:
        surv = np.zeros((len(df), 0))
        at_horizons = np.full((len(df), len(CALIBRATION_HORIZONS_YEARS)), np.nan)
    values = survival_metrics(ev, t, r, surv, times)
    cis = bootstrap_cis(lambda e, tt, rr, ss: survival_metrics(e, tt, rr, ss, times, quiet=True), [ev, t, r, surv],
                        n_bootstrap=n_bootstrap, seed=seed)
    high = r > cutoff
    try:
        values["logrank_p"] = logrank_p(t, ev, high)
    except InputDataError as exc:
        logger.warning("%s/%s on %s: logrank_p is undefined: %s", model, task, cohort, exc)
        values["logrank_p"] = float("nan")
    nan2 = (float("nan"), float("nan"))
    rows = [(cohort, model, task, m, values[m], *cis.get(m, nan2), len(df)) for m in SURVIVAL_METRICS]
    groups = {"low": ~high, "high": high}
    return (rows, km_table(model, task, groups, t, ev),
            calibration_table(model, task, groups, t, ev, at_horizons))


def _true_risk_row(cohort: str, model: str, task: str, df: pd.DataFrame, true_risk: pd.Series, *,
                   n_bootstrap: int, seed: int) -> tuple:
    """The ``c_index_true_risk`` metric row of a survival model: its risk vs ``true_risk`` over the patients that
    have one (others left out, with a warning), percentile bootstrap CI over patients."""
    known = df.index.isin(true_risk.index)
    if not known.all():
        logger.warning("%s/%s on %s: %d patient(s) have no true risk; the true-risk C-index leaves them out",
                       model, task, cohort, int((~known).sum()))
    r = df["risk"].to_numpy(np.float64)[known]
    tr = true_risk.loc[df.index[known]].to_numpy(np.float64)

    def stat(rr: np.ndarray, tt: np.ndarray) -> dict[str, float]:
        return {TRUE_RISK_COLUMN: true_risk_concordance(rr, tt)}

    value = stat(r, tr)[TRUE_RISK_COLUMN] if len(r) else float("nan")
    low, high = (bootstrap_cis(stat, [r, tr], n_bootstrap=n_bootstrap, seed=seed).get(TRUE_RISK_COLUMN)
                 if len(r) else None) or (float("nan"), float("nan"))
    return (cohort, model, task, TRUE_RISK_COLUMN, value, low, high, int(known.sum()))


def _classification_block(cohort: str, model: str, task: str, df: pd.DataFrame, spec: TaskSpec, *,
                          n_bootstrap: int, seed: int) -> list[tuple]:
    y = df["y_true"].to_numpy(np.int64)
    prob = df[spec.prob_columns].to_numpy(np.float64)
    values = classification_metrics(y, prob)
    cis = bootstrap_cis(classification_metrics, [y, prob], n_bootstrap=n_bootstrap, seed=seed)
    nan2 = (float("nan"), float("nan"))
    return [(cohort, model, task, m, values[m], *cis.get(m, nan2), len(df)) for m in CLASSIFICATION_METRICS]


def evaluate_external_(*, cohort: str, prediction_paths: Sequence[Path], bundle_paths: Sequence[Path],
                       labels_path: Path, development_predictions: Sequence[Path], n_bootstrap: int, seed: int,
                       out_dir: Path, time_quantiles: tuple[float, float] = (0.05, 0.8), n_times: int = 15,
                       truth_path: Path | None = None) -> None:
    """Score every model × task on the external cohort; write the tables of the module docstring to ``out_dir``.

    ``prediction_paths``: the cohort's ``predictions.tsv`` (``survival.tsv`` beside it is read for survival);
    ``bundle_paths``: each model × task's ``bundle.json`` (task class map); ``development_predictions``: the
    development fold ``predictions.tsv`` of the survival models (the cut-offs). Patients without the task's
    outcome are left out of that task (``n_patients`` counts the rest). ``truth_path``: a ground-truth table with
    ``true_risk`` (simulated cohorts only); given, survival models also get the metric ``c_index_true_risk``.
    """
    true_risk = read_true_risk_(Path(truth_path)) if truth_path is not None else None
    specs: dict[tuple[str, str], TaskSpec] = {}
    for p in bundle_paths:
        model, spec = bundle_task(Path(p))
        specs[(model, spec.name)] = spec
    labels = read_table_(labels_path, required=["patient_id", "time_days", "event"], what="external label table",
                         dtype={"patient_id": str}).set_index("patient_id")
    cutoffs = development_cutoffs([Path(p) for p in development_predictions])
    cut = {(m, t): c for m, t, c in cutoffs[["model", "task", "cutoff"]].itertuples(index=False)}
    records, kms, cals = [], [], []
    for path in map(Path, prediction_paths):
        pred = read_table_(path, required=["patient_id", "model", "task"], what="external prediction table",
                           dtype={"patient_id": str})
        model, task = str(pred["model"].iloc[0]), str(pred["task"].iloc[0])
        spec = specs.get((model, task))
        if spec is None:
            raise InputDataError(f"{path}: no bundle.json of {model}/{task} given (--bundles).")
        df = pred.set_index("patient_id").join(_truth(labels, list(pred["patient_id"]), spec, Path(labels_path)))
        if spec.kind == "survival":
            df = df[np.isfinite(df["time_days"]) & np.isfinite(df["event"])]
            if (model, task) not in cut:
                raise InputDataError(f"no development fold predictions of {model}/{task} given: the risk cut-off "
                                     "comes from the development cohort (--development-predictions).")
            curves_path = path.parent / "survival.tsv"
            curves = read_table_(curves_path, required=["patient_id"], what="survival curve table",
                                 dtype={"patient_id": str}) if curves_path.exists() else None
            rows, km, cal = _survival_block(cohort, model, task, df, curves, cut[(model, task)],
                                            n_bootstrap=n_bootstrap, seed=seed, time_quantiles=time_quantiles,
                                            n_times=n_times)
            records += rows
            if true_risk is not None:
                records.append(_true_risk_row(cohort, model, task, df, true_risk, n_bootstrap=n_bootstrap,
                                              seed=seed))
            kms.append(km)
            cals.append(cal)
        else:
            records += _classification_block(cohort, model, task, df[df["y_true"] >= 0], spec,
                                             n_bootstrap=n_bootstrap, seed=seed)
    out_dir = Path(out_dir)
    prov = provenance(config={"n_bootstrap": n_bootstrap, "seed": seed, "time_quantiles": list(time_quantiles),
                              "n_times": n_times, "horizons_years": list(CALIBRATION_HORIZONS_YEARS)},
                      inputs={str(p): p for p in [*prediction_paths, labels_path, *development_predictions,
                                                  *([truth_path] if truth_path is not None else [])]},
                      extra={"cohort": cohort, "cutoff": "median development ensemble risk"})
    write_table_(out_dir / "metrics.tsv", pd.DataFrame(records, columns=list(EXTERNAL_METRICS_COLUMNS)), prov=prov)
    write_table_(out_dir / "cutoffs.tsv", cutoffs, prov=prov)
    write_table_(out_dir / "km.tsv", pd.concat(kms, ignore_index=True) if kms else
                 pd.DataFrame(columns=["model", "task", "group", "time_days", "survival", "n_at_risk"]), prov=prov)
    write_table_(out_dir / "calibration.tsv", pd.concat(cals, ignore_index=True) if cals else
                 calibration_table("", "", {}, np.zeros(0), np.zeros(0), np.zeros((0, 3))), prov=prov)
    logger.info("external cohort %s: %d metric row(s) of %d prediction table(s) -> %s", cohort, len(records),
                len(prediction_paths), out_dir)
