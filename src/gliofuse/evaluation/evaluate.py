"""Fold prediction tables -> out-of-fold predictions and metrics (the cross-model summary: :mod:`.summary`).

Contracts: reads §8 ``predictions.tsv`` files, writes §9 ``predictions_oof.tsv`` and ``metrics.tsv``.
Works from tables only, so external predictions in the same format can be scored too.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from gliofuse.errors import InputDataError
from gliofuse.evaluation.bootstrap import bootstrap_cis
from gliofuse.evaluation.metrics import (
    classification_metrics,
    concordance_index,
    integrated_brier_score,
    logrank_p,
    time_dependent_auc,
    uno_concordance_index,
)
from gliofuse.evaluation.repeats import (
    REPEAT_COLUMN,
    first_repeat,
    n_repeats_of,
    repeat_blocks,
    repeat_label,
    repeat_mean_statistic,
    repeats_of,
)
from gliofuse.evaluation.survival import (
    breslow_survival,
    discrete_hazard_survival,
    hazard_columns,
    median_risk_groups,
    time_grid,
)
from gliofuse.io import provenance, read_table_, write_table_
from gliofuse.tasks import PREDICTION_ID_COLUMNS, SURVIVAL_COLUMNS, task_kind

logger = logging.getLogger(__name__)

CLASSIFICATION_COLUMNS: tuple[str, ...] = ("y_true", "y_pred")
SURVIVAL_METRICS: tuple[str, ...] = ("c_index", "c_index_uno", "td_auc", "ibs", "logrank_p")
CLASSIFICATION_METRICS: tuple[str, ...] = ("auc_macro", "auc_micro", "average_precision", "balanced_accuracy",
                                           "f1_macro", "accuracy")
#: metrics where lower is better (all others: higher is better)
LOWER_IS_BETTER: frozenset[str] = frozenset({"ibs", "logrank_p"})
#: metrics that are p-values (reports print them as p-values: ``<0.001``, not ``0.000``)
P_VALUE_METRICS: frozenset[str] = frozenset({"logrank_p"})
METRICS_COLUMNS: tuple[str, ...] = ("model", "task", "fold", "metric", "value", "ci_low", "ci_high")
PROB_TOL = 1e-3


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
    required = [*PREDICTION_ID_COLUMNS, *(SURVIVAL_COLUMNS if kind == "survival" else CLASSIFICATION_COLUMNS)]
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


def read_folds_(prediction_paths: Sequence[Path], *, model: str, task: str) -> dict[int, pd.DataFrame]:
    """All rows (train, val, test) of each fold's prediction table, keyed by fold, validated.

    Raises
    ------
    InputDataError
        A file violates contract §8, two files are for one fold, or the class columns differ.
    """
    folds: dict[int, pd.DataFrame] = {}
    seen: dict[int, Path] = {}
    classes = None
    for path in prediction_paths:
        df = read_predictions_(Path(path), model=model, task=task)
        fold = int(df["fold"].iloc[0])
        if fold in seen:
            raise InputDataError(f"evaluate {model}/{task}: {path} and {seen[fold]} are both for fold {fold}.")
        seen[fold] = Path(path)
        if task_kind(task) == "classification":
            cols = prob_columns(df)
            if classes is None:
                classes = cols
            elif cols != classes:
                raise InputDataError(f"prediction table {path}: prob columns {cols} differ from {classes} of "
                                     f"{prediction_paths[0]}.")
        folds[fold] = df
    if not folds:
        raise InputDataError(f"evaluate {model}/{task}: no prediction files given.")
    return dict(sorted(folds.items()))


def out_of_fold(folds: dict[int, pd.DataFrame], *, model: str, task: str,
                fold_repeats: Mapping[int, int] | None = None) -> pd.DataFrame:
    """The ``test`` rows of all folds, sorted by fold then patient (contract §9 ``predictions_oof.tsv``).

    ``fold_repeats``: ``{fold id: repeat}`` of a repeated cross-validation (from the split files); when it
    names more than repeat 0, a ``repeat`` column follows ``fold`` and each patient appears once per repeat.

    Raises
    ------
    InputDataError
        No test rows, a fold without a repeat in ``fold_repeats``, or a patient in the test rows of two folds
        of one repeat.
    """
    oof = pd.concat([df[df["split"] == "test"] for df in folds.values()], ignore_index=True)
    if oof.empty:
        raise InputDataError(f"evaluate {model}/{task}: the prediction files have no test rows.")
    if fold_repeats:
        unknown = sorted(set(folds) - set(fold_repeats))
        if unknown:
            raise InputDataError(f"evaluate {model}/{task}: prediction tables of fold(s) {unknown[:6]} but no split "
                                 "file names them (--splits); pass the split files of the same `data_splits` run.")
        if any(fold_repeats[f] != 0 for f in folds):
            oof.insert(list(oof.columns).index("fold") + 1, REPEAT_COLUMN, oof["fold"].map(fold_repeats).astype(int))
    key = oof[[c for c in (REPEAT_COLUMN, "patient_id") if c in oof.columns]]
    dup = oof["patient_id"][key.duplicated()].tolist()
    if dup:
        raise InputDataError(f"evaluate {model}/{task}: patient(s) in the test rows of several folds: {dup[:5]}. "
                             "The test sets of the folds must partition the cohort (rerun `data_splits`).")
    return oof.sort_values(["fold", "patient_id"], kind="stable").reset_index(drop=True)


def _oof(prediction_paths: Sequence[Path], *, model: str, task: str) -> pd.DataFrame:
    return out_of_fold(read_folds_(prediction_paths, model=model, task=task), model=model, task=task)


def survival_curves(folds: dict[int, pd.DataFrame], oof: pd.DataFrame, times: np.ndarray) -> np.ndarray:
    """Predicted survival ``S(t | x)`` of every out-of-fold row at ``times``, shape = (len(oof), len(times)).

    From ``hazard_<edge>`` columns when the table has them (discrete-time heads), otherwise from
    the Cox risk with Breslow's baseline hazard fitted on the fold's ``train`` rows. Rows of a fold
    where this is impossible (no training event) are NaN, with a warning.
    """
    out = np.full((len(oof), len(times)), np.nan)
    if len(times) == 0:
        return out
    for fold, df in folds.items():
        rows = np.flatnonzero(oof["fold"].to_numpy() == fold)
        test = oof.iloc[rows]
        cols, edges = hazard_columns(list(df.columns))
        try:
            if cols:
                hz = test[cols].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=np.float64)
                if not np.isfinite(hz).all():
                    raise InputDataError(f"fold {fold}: hazard_* columns have missing values.")
                out[rows] = discrete_hazard_survival(hz, edges, times)
            else:
                train = df[df["split"] == "train"]
                out[rows] = breslow_survival(train["risk"].to_numpy(np.float64), train["event"].to_numpy(),
                                             train["time_days"].to_numpy(np.float64),
                                             test["risk"].to_numpy(np.float64), times)
        except InputDataError as exc:
            logger.warning("fold %d: no survival curves (%s); td_auc uses the risk and ibs is NaN", fold, exc)
    return out


def _safe(fn: Callable[[], float], what: str, *, quiet: bool = False) -> float:
    try:
        return float(fn())
    except InputDataError as exc:
        if not quiet:
            logger.warning("%s is undefined: %s", what, exc)
        return float("nan")


def survival_metrics(event: np.ndarray, time: np.ndarray, risk: np.ndarray, surv: np.ndarray, times: np.ndarray,
                     *, censoring: tuple[np.ndarray, np.ndarray] | None = None,
                     quiet: bool = False) -> dict[str, float]:
    """Harrell's and Uno's C-index, mean time-dependent AUC and integrated Brier score of one sample.

    Parameters
    ----------
    event, time, risk : shape = (n,); event 0/1, days, risk (higher = earlier event).
    surv : shape = (n, len(times)), predicted survival at ``times`` (NaN rows: unknown; then the
        time-dependent AUC uses ``risk`` and ``ibs`` is NaN).
    times : evaluation grid in days; its last point is the truncation time of Uno's C.
    censoring : (event, time) the censoring distribution is estimated from; None: this sample.
    quiet : don't log undefined metrics (bootstrap resamples).

    Returns
    -------
    ``{c_index, c_index_uno, td_auc, ibs}``; an undefined metric is NaN.
    """
    cens = {} if censoring is None else {"train_event": censoring[0], "train_time": censoring[1]}
    tau = float(times[-1]) if len(times) else None
    have_surv = surv.size > 0 and bool(np.isfinite(surv).all())
    td_risk = 1.0 - surv if have_surv else risk
    return {
        "c_index": _safe(lambda: concordance_index(event, time, risk), "c_index", quiet=quiet),
        "c_index_uno": _safe(lambda: uno_concordance_index(event, time, risk, tau=tau, **cens), "c_index_uno",
                             quiet=quiet),
        "td_auc": _safe(lambda: time_dependent_auc(event, time, td_risk, times, **cens)[2], "td_auc", quiet=quiet)
        if len(times) else float("nan"),
        "ibs": _safe(lambda: integrated_brier_score(event, time, surv, times, **cens), "ibs", quiet=quiet)
        if have_surv else float("nan"),
    }


def _survival_rows(df: pd.DataFrame, surv: np.ndarray, times: np.ndarray, censoring: tuple[np.ndarray, np.ndarray],
                   *, pooled: bool, n_bootstrap: int, seed: int) -> list[tuple[str, float, float, float]]:
    ev = df["event"].to_numpy()
    t = df["time_days"].to_numpy(dtype=np.float64)
    r = df["risk"].to_numpy(dtype=np.float64)
    values = survival_metrics(ev, t, r, surv, times, censoring=censoring)
    cis: dict[str, tuple[float, float]] = {}
    if pooled and n_bootstrap > 0:
        cis = bootstrap_cis(lambda e, tt, rr, ss: survival_metrics(e, tt, rr, ss, times, quiet=True),
                            [ev, t, r, surv], n_bootstrap=n_bootstrap, seed=seed)
    high = median_risk_groups(r, df["fold"].to_numpy())
    values["logrank_p"] = _safe(lambda: logrank_p(t, ev, high), "logrank_p")
    nan2 = (float("nan"), float("nan"))
    return [(m, values[m], *(cis.get(m, nan2) if np.isfinite(values[m]) else nan2)) for m in SURVIVAL_METRICS]


def _classification_rows(df: pd.DataFrame, *, pooled: bool, n_bootstrap: int,
                         seed: int) -> list[tuple[str, float, float, float]]:
    y = df["y_true"].to_numpy()
    prob = df[prob_columns(df)].to_numpy(dtype=np.float64)
    values = classification_metrics(y, prob)
    cis = bootstrap_cis(classification_metrics, [y, prob], n_bootstrap=n_bootstrap if pooled else 0, seed=seed)
    return [(name, values[name], *cis.get(name, (float("nan"), float("nan")))) for name in CLASSIFICATION_METRICS]


def evaluate_model_(*, prediction_paths: list[Path], model: str, task: str, n_bootstrap: int, seed: int,
                    out_predictions: Path, out_metrics: Path, time_quantiles: tuple[float, float] = (0.05, 0.8),
                    n_times: int = 15, fold_repeats: Mapping[int, int] | None = None) -> None:
    """Score one model on one task from its fold prediction tables.

    Writes ``out_predictions`` (the ``test`` rows of all folds, sorted by fold then patient) and
    ``out_metrics`` (contract §9): one row per fold and metric on that fold's test rows, plus
    ``fold = pooled`` rows on all out-of-fold rows with a patient-level percentile bootstrap CI
    (``n_bootstrap`` resamples, ``seed``). A metric undefined on a fold (e.g. no comparable pair)
    is NaN.

    Survival: Harrell's ``c_index``, Uno's ``c_index_uno`` (truncated at the last grid time),
    ``td_auc`` (mean cumulative/dynamic AUC over the grid), ``ibs`` (integrated Brier score) and
    ``logrank_p`` (high vs low risk, median split within each fold). The grid has ``n_times``
    quantiles (``time_quantiles``) of the pooled out-of-fold times; the censoring distribution is
    the Kaplan-Meier estimate on all out-of-fold patients. Survival curves come from
    ``hazard_<edge>`` columns or, for Cox risks, from Breslow's estimator on the fold's training rows.
    Classification: ``auc_macro``, ``auc_micro``, ``average_precision``, ``balanced_accuracy``,
    ``f1_macro``, ``accuracy``.

    Repeated cross-validation (``fold_repeats`` ``{fold id: repeat}`` naming r > 1 repeats): the out-of-fold
    table gets a ``repeat`` column; rows are pooled within each repeat only (``fold = repeat_<j>`` rows, no CI),
    and the ``pooled`` row is the mean of the r repeat values with the percentile CI of that mean over
    patient-level bootstrap resamples (each resample draws the same patients in every repeat). The time grid
    and the censoring distribution come from repeat 0 (every patient once).

    Raises
    ------
    InputDataError
        A prediction file violates contract §8 (the message names the file and column), or the
        test rows of the folds overlap.
    """
    paths = [Path(p) for p in prediction_paths]
    folds = read_folds_(paths, model=model, task=task)
    oof = out_of_fold(folds, model=model, task=task, fold_repeats=fold_repeats)
    extra: dict[str, object] = {"model": model, "task": task}
    score = _Scorer(task=task, seed=seed)
    if task_kind(task) == "survival":
        base = first_repeat(oof)
        score.times = time_grid(base["time_days"].to_numpy(np.float64), quantiles=time_quantiles, n_times=n_times)
        score.surv = survival_curves(folds, oof, score.times)
        score.censoring = (base["event"].to_numpy(), base["time_days"].to_numpy(np.float64))
        extra["times"] = [round(float(x), 3) for x in score.times]
    records = []
    for fold in sorted(set(oof["fold"].astype(int))):
        sel = (oof["fold"] == fold).to_numpy()
        records += [(model, task, str(fold), *row) for row in score(oof, sel, n_bootstrap=0)]
    if n_repeats_of(oof) == 1:
        pooled_rows = score(oof, np.ones(len(oof), dtype=bool), n_bootstrap=n_bootstrap)
    else:
        repeat_rows, pooled_rows = score.repeated(oof, n_bootstrap=n_bootstrap)
        records += [(model, task, *row) for row in repeat_rows]
    records += [(model, task, "pooled", *row) for row in pooled_rows]
    metrics = pd.DataFrame(records, columns=list(METRICS_COLUMNS))
    prov = provenance(config={"n_bootstrap": n_bootstrap, "seed": seed, "time_quantiles": list(time_quantiles),
                              "n_times": n_times}, inputs={str(p): p for p in paths}, extra=extra)
    write_table_(out_predictions, oof, prov=prov)
    write_table_(out_metrics, metrics, prov=prov)
    pooled = metrics[metrics["fold"] == "pooled"]
    logger.info("%s/%s: %s", model, task,
                ", ".join(f"{m}={v:.3f} [{lo:.3f}, {hi:.3f}]" for m, v, lo, hi in
                          pooled[["metric", "value", "ci_low", "ci_high"]].itertuples(index=False)))


class _Scorer:
    """The metric rows of one task on a selection of out-of-fold rows (survival: with curves on a time grid)."""

    def __init__(self, *, task: str, seed: int) -> None:
        self.survival = task_kind(task) == "survival"
        self.seed = seed
        self.times = np.zeros(0)
        self.surv = np.zeros((0, 0))
        self.censoring: tuple[np.ndarray, np.ndarray] = (np.zeros(0), np.zeros(0))

    def __call__(self, oof: pd.DataFrame, sel: np.ndarray, *, n_bootstrap: int) -> list[tuple[str, float, float, float]]:
        """``(metric, value, ci_low, ci_high)`` on the rows ``sel``; a bootstrap CI when ``n_bootstrap`` > 0."""
        pooled = n_bootstrap > 0
        if self.survival:
            return _survival_rows(oof[sel], self.surv[sel], self.times, self.censoring, pooled=pooled,
                                  n_bootstrap=n_bootstrap, seed=self.seed)
        return _classification_rows(oof[sel], pooled=pooled, n_bootstrap=n_bootstrap, seed=self.seed)

    def _arrays(self, block: pd.DataFrame) -> list[np.ndarray]:
        if self.survival:
            return [block["event"].to_numpy(), block["time_days"].to_numpy(np.float64),
                    block["risk"].to_numpy(np.float64), self.surv[block["_row"].to_numpy()]]
        return [block["y_true"].to_numpy(), block[prob_columns(block)].to_numpy(np.float64)]

    def _statistic(self) -> Callable[..., dict[str, float]]:
        if self.survival:
            return lambda e, t, r, s: survival_metrics(e, t, r, s, self.times, quiet=True)
        return classification_metrics

    def repeated(self, oof: pd.DataFrame, *, n_bootstrap: int) -> tuple[list[tuple], list[tuple[str, float, float, float]]]:
        """Per-repeat rows ``(repeat_<j>, metric, value, nan, nan)`` and the pooled rows: the mean over the repeats
        with the patient-level bootstrap CI of that mean."""
        rep = repeats_of(oof)
        per_repeat: dict[str, list[float]] = {}
        repeat_rows: list[tuple] = []
        for j in np.unique(rep):
            for name, value, _, _ in self(oof, rep == j, n_bootstrap=0):
                per_repeat.setdefault(name, []).append(value)
                repeat_rows.append((repeat_label(int(j)), name, value, float("nan"), float("nan")))
        blocks = repeat_blocks(oof.assign(_row=np.arange(len(oof))), what="out-of-fold predictions")
        arrays = [a for block in blocks for a in self._arrays(block)]
        stat = repeat_mean_statistic(self._statistic(), len(arrays) // len(blocks), len(blocks))
        cis = bootstrap_cis(stat, arrays, n_bootstrap=n_bootstrap, seed=self.seed)
        nan2 = (float("nan"), float("nan"))
        pooled_rows = []
        for name, values in per_repeat.items():
            mean = float(np.mean(values))
            pooled_rows.append((name, mean, *(cis.get(name, nan2) if np.isfinite(mean) else nan2)))
        return repeat_rows, pooled_rows
