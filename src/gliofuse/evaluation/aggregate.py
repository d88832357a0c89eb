"""Fold prediction tables -> out-of-fold predictions, metrics and the cross-model summary.

Contracts: reads §8 ``predictions.tsv`` files, writes §9 ``predictions_oof.tsv``,
``metrics.tsv`` and ``summary.tsv``. Works from tables only, so external predictions in the
same format can be scored too.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from gliofuse.errors import InputDataError
from gliofuse.evaluation.bootstrap import bootstrap_ci, bootstrap_cis
from gliofuse.evaluation.metrics import classification_metrics, concordance_index, logrank_p
from gliofuse.evaluation.survival import median_risk_groups
from gliofuse.io import provenance, read_table_, write_table_

logger = logging.getLogger(__name__)

ID_COLUMNS: tuple[str, ...] = ("patient_id", "model", "task", "fold", "split")
SURVIVAL_COLUMNS: tuple[str, ...] = ("time_days", "event", "risk")
CLASSIFICATION_COLUMNS: tuple[str, ...] = ("y_true", "y_pred")
SURVIVAL_METRICS: tuple[str, ...] = ("c_index", "logrank_p")
CLASSIFICATION_METRICS: tuple[str, ...] = ("auc_macro", "balanced_accuracy", "f1_macro", "accuracy")
METRICS_COLUMNS: tuple[str, ...] = ("model", "task", "fold", "metric", "value", "ci_low", "ci_high")
SUMMARY_COLUMNS: tuple[str, ...] = ("model", "task", "metric", "mean", "sd", "pooled", "ci_low", "ci_high")
PROB_TOL = 1e-3


def task_kind(task: str) -> str:
    """``"survival"`` for the survival task, ``"classification"`` otherwise."""
    return "survival" if task == "survival" else "classification"


def prob_columns(df: pd.DataFrame) -> list[str]:
    """The ``prob_<class>`` columns in file order (= class-index order)."""
    return [c for c in df.columns if c.startswith("prob_")]


def read_predictions_(path: Path, *, model: str, task: str) -> pd.DataFrame:
    """Read and validate one fold's ``predictions.tsv`` (contract §8).

    Raises
    ------
    InputDataError
        Missing file or column, another model/task, several folds, unknown split, NaN values,
        bad event coding, class indices out of range or probabilities not summing to 1.
    """
    kind = task_kind(task)
    required = [*ID_COLUMNS, *(SURVIVAL_COLUMNS if kind == "survival" else CLASSIFICATION_COLUMNS)]
    df = read_table_(path, required=required, what=f"{task} prediction table", dtype={"patient_id": str})
    for col, want in (("model", model), ("task", task)):
        got = sorted(set(df[col].astype(str)))
        if got != [want]:
            raise InputDataError(f"prediction table {path}: column {col!r} holds {got[:4]}, expected only {want!r}. "
                                 "Pass the files of one model and task.")
    folds = sorted(set(df["fold"].tolist()))
    if len(folds) != 1:
        raise InputDataError(f"prediction table {path}: column 'fold' must hold one fold, got {folds[:6]}.")
    bad_split = sorted(set(df["split"].astype(str)) - {"train", "val", "test"})
    if bad_split:
        raise InputDataError(f"prediction table {path}: column 'split' has unknown value(s) {bad_split}; "
                             "expected train/val/test.")
    value_cols = list(SURVIVAL_COLUMNS) if kind == "survival" else ["y_true", "y_pred", *prob_columns(df)]
    if kind == "classification" and len(value_cols) < 4:
        raise InputDataError(f"prediction table {path}: needs at least two 'prob_<class>' columns, has "
                             f"{prob_columns(df)}.")
    for col in value_cols:
        values = pd.to_numeric(df[col], errors="coerce")
        if values.isna().any():
            first = df.loc[values.isna(), "patient_id"].tolist()[:5]
            raise InputDataError(f"prediction table {path}: column {col!r} has missing or non-numeric values "
                                 f"(patients {first}).")
        df[col] = values
    if kind == "survival":
        if not set(df["event"].unique()) <= {0, 1}:
            raise InputDataError(f"prediction table {path}: column 'event' must be 0/1 (1 = death observed), got "
                                 f"{sorted(set(df['event'].unique()))[:6]}.")
        df["event"] = df["event"].astype(np.int64)
    else:
        k = len(prob_columns(df))
        for col in ("y_true", "y_pred"):
            v = df[col]
            if not ((v == v.round()) & (v >= 0) & (v < k)).all():
                raise InputDataError(f"prediction table {path}: column {col!r} must hold class indices 0..{k - 1}.")
            df[col] = v.astype(np.int64)
        prob = df[prob_columns(df)].to_numpy()
        if (prob < -PROB_TOL).any() or (np.abs(prob.sum(axis=1) - 1) > PROB_TOL).any():
            raise InputDataError(f"prediction table {path}: the prob_* columns must be probabilities summing to 1 "
                                 "per row.")
    return df


def _oof(prediction_paths: Sequence[Path], *, model: str, task: str) -> pd.DataFrame:
    frames, classes, seen = [], None, {}
    for path in prediction_paths:
        df = read_predictions_(Path(path), model=model, task=task)
        fold = int(df["fold"].iloc[0])
        if fold in seen:
            raise InputDataError(f"evaluate {model}/{task}: {path} and {seen[fold]} are both for fold {fold}.")
        seen[fold] = path
        if task_kind(task) == "classification":
            cols = prob_columns(df)
            if classes is None:
                classes = cols
            elif cols != classes:
                raise InputDataError(f"prediction table {path}: prob columns {cols} differ from {classes} of "
                                     f"{prediction_paths[0]}.")
        frames.append(df[df["split"] == "test"])
    if not frames:
        raise InputDataError(f"evaluate {model}/{task}: no prediction files given.")
    oof = pd.concat(frames, ignore_index=True)
    dup = oof["patient_id"][oof["patient_id"].duplicated()].tolist()
    if dup:
        raise InputDataError(f"evaluate {model}/{task}: patient(s) in the test rows of several folds: {dup[:5]}. "
                             "The test sets of the folds must partition the cohort (rerun `data_splits`).")
    if oof.empty:
        raise InputDataError(f"evaluate {model}/{task}: the prediction files have no test rows.")
    return oof.sort_values(["fold", "patient_id"], kind="stable").reset_index(drop=True)


def _safe(fn: Callable[[], float], what: str) -> float:
    try:
        return float(fn())
    except InputDataError as exc:
        logger.warning("%s is undefined: %s", what, exc)
        return float("nan")


def _survival_rows(df: pd.DataFrame, *, pooled: bool, n_bootstrap: int, seed: int) -> list[tuple[str, float, float, float]]:
    ev = df["event"].to_numpy()
    t = df["time_days"].to_numpy(dtype=np.float64)
    r = df["risk"].to_numpy(dtype=np.float64)
    high = median_risk_groups(r, df["fold"].to_numpy())
    c = _safe(lambda: concordance_index(ev, t, r), "c_index")
    lo = hi = float("nan")
    if pooled and np.isfinite(c):
        lo, hi = bootstrap_ci(lambda e, tt, rr: concordance_index(e, tt, rr), [ev, t, r],
                              n_bootstrap=n_bootstrap, seed=seed)
    p = _safe(lambda: logrank_p(t, ev, high), "logrank_p")
    return [("c_index", c, lo, hi), ("logrank_p", p, float("nan"), float("nan"))]


def _classification_rows(df: pd.DataFrame, *, pooled: bool, n_bootstrap: int,
                         seed: int) -> list[tuple[str, float, float, float]]:
    y = df["y_true"].to_numpy()
    prob = df[prob_columns(df)].to_numpy(dtype=np.float64)
    values = classification_metrics(y, prob)
    cis = bootstrap_cis(classification_metrics, [y, prob], n_bootstrap=n_bootstrap if pooled else 0, seed=seed)
    return [(name, values[name], *cis.get(name, (float("nan"), float("nan")))) for name in CLASSIFICATION_METRICS]


def evaluate_model_(*, prediction_paths: list[Path], model: str, task: str, n_bootstrap: int, seed: int,
                    out_predictions: Path, out_metrics: Path) -> None:
    """Score one model on one task from its fold prediction tables.

    Writes ``out_predictions`` (the ``test`` rows of all folds, sorted by fold then patient) and
    ``out_metrics`` (contract §9): one row per fold and metric on that fold's test rows, plus
    ``fold = pooled`` rows on all out-of-fold rows with a percentile bootstrap CI
    (``n_bootstrap`` resamples, ``seed``). Survival: ``c_index`` and ``logrank_p`` (high vs low
    risk, median split within each fold); classification: ``auc_macro``, ``balanced_accuracy``,
    ``f1_macro``, ``accuracy``. A metric undefined on a fold (e.g. no comparable pair) is NaN.

    Raises
    ------
    InputDataError
        A prediction file violates contract §8 (the message names the file and column), or the
        test rows of the folds overlap.
    """
    paths = [Path(p) for p in prediction_paths]
    oof = _oof(paths, model=model, task=task)
    rows_fn = _survival_rows if task_kind(task) == "survival" else _classification_rows
    records = []
    for fold, part in oof.groupby("fold", sort=True):
        for name, value, lo, hi in rows_fn(part, pooled=False, n_bootstrap=0, seed=seed):
            records.append((model, task, str(int(fold)), name, value, lo, hi))
    for name, value, lo, hi in rows_fn(oof, pooled=True, n_bootstrap=n_bootstrap, seed=seed):
        records.append((model, task, "pooled", name, value, lo, hi))
    metrics = pd.DataFrame(records, columns=list(METRICS_COLUMNS))
    prov = provenance(config={"n_bootstrap": n_bootstrap, "seed": seed}, inputs={str(p): p for p in paths},
                      extra={"model": model, "task": task})
    write_table_(out_predictions, oof, prov=prov)
    write_table_(out_metrics, metrics, prov=prov)
    pooled = metrics[metrics["fold"] == "pooled"]
    logger.info("%s/%s: %s", model, task,
                ", ".join(f"{m}={v:.3f} [{lo:.3f}, {hi:.3f}]" for m, v, lo, hi in
                          pooled[["metric", "value", "ci_low", "ci_high"]].itertuples(index=False)))


def summarise_(*, metrics_paths: list[Path], out_summary: Path) -> None:
    """Combine ``metrics.tsv`` files of several models and tasks into ``summary.tsv`` (contract §9).

    One row per model, task and metric: ``mean`` and ``sd`` (ddof = 1) of the per-fold values
    (NaN folds ignored), and the ``pooled`` value with its ``ci_low``/``ci_high``.

    Raises
    ------
    InputDataError
        A file lacks a contract column or has no per-fold rows.
    """
    frames = []
    for path in metrics_paths:
        df = read_table_(path, required=METRICS_COLUMNS, what="metrics table", dtype={"fold": str})
        if not (df["fold"] != "pooled").any():
            raise InputDataError(f"metrics table {path} has no per-fold rows (column 'fold').")
        frames.append(df)
    if not frames:
        raise InputDataError("summarise: no metrics files given.")
    allm = pd.concat(frames, ignore_index=True)
    records = []
    for (model, task, metric), g in allm.groupby(["model", "task", "metric"], sort=True):
        per_fold = pd.to_numeric(g.loc[g["fold"] != "pooled", "value"], errors="coerce").dropna()
        pooled = g[g["fold"] == "pooled"]
        pv, lo, hi = (pooled[["value", "ci_low", "ci_high"]].iloc[0].astype(float).tolist()
                      if len(pooled) else [float("nan")] * 3)
        records.append((model, task, metric, float(per_fold.mean()) if len(per_fold) else float("nan"),
                        float(per_fold.std(ddof=1)) if len(per_fold) > 1 else float("nan"), pv, lo, hi))
    summary = pd.DataFrame(records, columns=list(SUMMARY_COLUMNS))
    prov = provenance(config={}, inputs={str(p): p for p in metrics_paths})
    write_table_(out_summary, summary, prov=prov)
    logger.info("summary of %d model/task pairs -> %s", len(frames), out_summary)
