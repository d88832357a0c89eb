"""Metrics with array contracts.

Survival convention everywhere: ``event`` bool or 0/1 (True/1 = event observed), ``time`` in
days, ``risk`` a score where **higher = earlier event**. Inputs are validated at the entry of
each public function; errors name the argument (``InputDataError``).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from gliofuse.errors import InputDataError, NoComparablePairsError


@contextmanager
def _sksurv_errors(what: str, n: int) -> Iterator[None]:
    """Run a scikit-survival metric quietly: RuntimeWarnings muted, its ValueError as an InputDataError."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            yield
    except ValueError as exc:
        raise InputDataError(f"{what} is undefined on these {n} samples: {exc}") from None


def _as_1d(x: ArrayLike, name: str, *, dtype: Any = np.float64) -> np.ndarray:
    arr = np.asarray(x)
    if arr.ndim != 1:
        raise InputDataError(f"{name}: expected a 1-D array, got {arr.ndim}-D array with shape {arr.shape}.")
    try:
        arr = arr.astype(dtype)
    except (TypeError, ValueError):
        raise InputDataError(f"{name}: expected numeric values, got dtype {arr.dtype}.") from None
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        bad = np.flatnonzero(~np.isfinite(arr))
        raise InputDataError(f"{name} contains NaN or inf at position(s) {bad[:5].tolist()}. "
                             "Drop those samples first (pd.isnull finds them).")
    return arr


def check_event(event: ArrayLike, name: str = "event") -> np.ndarray:
    """Event indicator as bool: accepts bool or 0/1 numbers (1 = event observed)."""
    arr = np.asarray(event)
    if arr.ndim != 1:
        raise InputDataError(f"{name}: expected a 1-D array, got shape {arr.shape}.")
    if arr.dtype == bool:
        return arr
    try:
        num = arr.astype(np.float64)
    except (TypeError, ValueError):
        raise InputDataError(f"{name} must be boolean or 0/1 (1 = event observed), got dtype {arr.dtype}.") from None
    if not np.isfinite(num).all():
        raise InputDataError(f"{name} contains NaN at position(s) {np.flatnonzero(~np.isfinite(num))[:5].tolist()}; "
                             "drop samples with unknown outcome first.")
    values = set(np.unique(num).tolist())
    if not values <= {0.0, 1.0}:
        shown = ", ".join(f"{v:g}" for v in sorted(values)[:6])
        raise InputDataError(f"{name} must be boolean or 0/1 (1 = event observed), got values {{{shown}}}. "
                             "Map other codings (censored/censorship, 1:DECEASED) at the edge.")
    return num.astype(bool)


def check_survival_inputs(event: ArrayLike, time: ArrayLike, risk: ArrayLike | None = None,
                          *, min_samples: int = 2) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Validate (event, time[, risk]): 1-D, equal lengths, finite, event 0/1, at least ``min_samples``."""
    ev = check_event(event)
    t = _as_1d(time, "time")
    r = None if risk is None else _as_1d(risk, "risk")
    lengths = {"event": ev.size, "time": t.size} | ({} if r is None else {"risk": r.size})
    if len(set(lengths.values())) > 1:
        raise InputDataError(f"inconsistent lengths: {lengths}. Pass one value per sample.")
    if ev.size < min_samples:
        raise InputDataError(f"need at least {min_samples} samples, got {ev.size}.")
    return ev, t, r


def concordance_index(event: ArrayLike, time: ArrayLike, risk: ArrayLike, *, tied_tol: float = 1e-8) -> float:
    """Harrell's concordance index for right-censored data.

    A pair (i, j) is comparable when ``time_i < time_j`` and ``event_i`` (the earlier time is an
    observed event). It is concordant when ``risk_i > risk_j``; ties in risk count 1/2.
    0.5 = random ordering, 1 = perfect, 0 = perfectly anti-concordant.

    Parameters
    ----------
    event : array-like, shape = (n_samples,), bool or 0/1
        True/1 = event (death) observed, False/0 = censored.
    time : array-like, shape = (n_samples,), float
        Event or censoring time in days.
    risk : array-like, shape = (n_samples,), float
        Risk score, **higher = earlier event** (not a survival probability or time).
    tied_tol : float
        Risks closer than this count as tied.

    Returns
    -------
    float

    Raises
    ------
    InputDataError
        Bad shapes, lengths, NaN/inf, non 0/1 events, fewer than two samples.
    NoComparablePairsError
        No comparable pair (e.g. all samples censored).

    Notes
    -----
    Wraps ``sksurv.metrics.concordance_index_censored``. Equals
    ``lifelines.utils.concordance_index(time, -risk, event)`` (lifelines scores survival times,
    the opposite direction) on data without tied times.

    References
    ----------
    Harrell, Lee, Mark. Multivariable prognostic models. Statistics in Medicine 15(4), 1996.
    """
    from sksurv.exceptions import NoComparablePairException
    from sksurv.metrics import concordance_index_censored

    ev, t, r = check_survival_inputs(event, time, risk)
    if not ev.any():
        raise NoComparablePairsError(f"all {ev.size} samples are censored (event all 0): the concordance "
                                     "index has no comparable pair.")
    try:
        cindex = concordance_index_censored(ev, t, r, tied_tol=tied_tol)[0]
    except NoComparablePairException:
        raise NoComparablePairsError(
            f"no comparable pair among {ev.size} samples ({int(ev.sum())} events): every event time is "
            "at or after every other time.") from None
    return float(cindex)


def _check_classification(y_true: ArrayLike, prob: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    p = np.asarray(prob, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] < 2:
        raise InputDataError(f"prob: expected shape (n_samples, n_classes >= 2), got {p.shape}.")
    if not np.isfinite(p).all():
        raise InputDataError("prob contains NaN or inf.")
    y = np.asarray(y_true)
    if y.ndim != 1 or y.size != p.shape[0]:
        raise InputDataError(f"y_true: expected shape ({p.shape[0]},) to match prob, got {y.shape}.")
    yf = y.astype(np.float64)
    if not (np.isfinite(yf).all() and (yf == np.round(yf)).all() and (yf >= 0).all() and (yf < p.shape[1]).all()):
        raise InputDataError(f"y_true must hold class indices 0..{p.shape[1] - 1}; got values "
                             f"{sorted(set(np.unique(y).tolist()))[:6]}. Drop missing labels (-1) first.")
    if y.size == 0:
        raise InputDataError("need at least one sample.")
    return yf.astype(np.int64), p


CLASSIFICATION_METRIC_NAMES: tuple[str, ...] = ("auc_macro", "auc_micro", "average_precision", "balanced_accuracy",
                                                "f1_macro", "accuracy")


def classification_metrics(y_true: ArrayLike, prob: ArrayLike, *,
                           names: tuple[str, ...] | None = None) -> dict[str, float]:
    """Multi-class metrics from class probabilities.

    Parameters
    ----------
    y_true : array-like, shape = (n_samples,), int
        Class indices 0..K-1.
    prob : array-like, shape = (n_samples, K), float
        Class probabilities (column k = class k); the prediction is the arg-max.
    names : the metrics to compute (default: all of ``CLASSIFICATION_METRIC_NAMES``).

    Returns
    -------
    dict with ``auc_macro`` (one-vs-rest ROC AUC averaged over the classes that have both
    positives and negatives in ``y_true``; NaN when none has), ``auc_micro`` (ROC AUC of all
    one-vs-rest decisions pooled), ``average_precision`` (area under the precision-recall curve,
    one-vs-rest, averaged over the classes present in ``y_true``), ``balanced_accuracy`` (mean
    recall over classes present in ``y_true``), ``f1_macro`` (over classes present in ``y_true`` or
    the predictions) and ``accuracy``.

    Notes
    -----
    All values come from ``sklearn.metrics`` (``roc_auc_score``, ``average_precision_score``,
    ``balanced_accuracy_score``, ``f1_score``, ``accuracy_score``).
    """
    from sklearn.metrics import (
        accuracy_score,
        average_precision_score,
        balanced_accuracy_score,
        f1_score,
        roc_auc_score,
    )

    want = CLASSIFICATION_METRIC_NAMES if names is None else tuple(names)
    unknown = sorted(set(want) - set(CLASSIFICATION_METRIC_NAMES))
    if unknown:
        raise InputDataError(f"unknown classification metric(s) {unknown}; known: {list(CLASSIFICATION_METRIC_NAMES)}.")
    y, p = _check_classification(y_true, prob)
    y_pred = p.argmax(axis=1)
    onehot = np.eye(p.shape[1], dtype=bool)[y]

    def per_class(score, need_negatives: bool) -> float:
        vals = [score(onehot[:, k], p[:, k]) for k in range(p.shape[1])
                if onehot[:, k].any() and (not need_negatives or (~onehot[:, k]).any())]
        return float(np.mean(vals)) if vals else float("nan")

    def bacc() -> float:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # classes predicted but absent from y_true
            return float(balanced_accuracy_score(y, y_pred))

    compute = {
        "auc_macro": lambda: per_class(roc_auc_score, need_negatives=True),
        "auc_micro": lambda: float(roc_auc_score(onehot.ravel(), p.ravel())),
        "average_precision": lambda: per_class(average_precision_score, need_negatives=False),
        "balanced_accuracy": bacc,
        "f1_macro": lambda: float(f1_score(y, y_pred, average="macro", zero_division=0)),
        "accuracy": lambda: float(accuracy_score(y, y_pred)),
    }
    return {name: compute[name]() for name in want}


def logrank_p(time: ArrayLike, event: ArrayLike, high_risk_mask: ArrayLike) -> float:
    """p-value of the log-rank test between the high-risk group and the rest.

    Parameters
    ----------
    time : array-like, shape = (n_samples,), days.
    event : array-like, shape = (n_samples,), bool or 0/1 (1 = event observed).
    high_risk_mask : array-like of bool, shape = (n_samples,); True = high-risk group.

    Raises
    ------
    InputDataError
        Bad inputs, or one of the two groups is empty.
    """
    from lifelines.statistics import logrank_test

    ev, t, _ = check_survival_inputs(event, time)
    mask = np.asarray(high_risk_mask)
    if mask.shape != t.shape or mask.dtype != bool:
        raise InputDataError(f"high_risk_mask: expected a bool array of shape {t.shape}, got {mask.dtype} {mask.shape}.")
    if mask.all() or not mask.any():
        raise InputDataError(f"high_risk_mask puts all {mask.size} samples in one group; the log-rank test "
                             "needs both groups non-empty.")
    res = logrank_test(t[mask], t[~mask], event_observed_A=ev[mask], event_observed_B=ev[~mask])
    return float(res.p_value)


# --- time-dependent survival metrics (scikit-survival) ------------------------------------------------


def _surv(event: np.ndarray, time: np.ndarray) -> np.ndarray:
    from sksurv.util import Surv

    return Surv.from_arrays(event=event, time=time)


def _censoring_data(event: ArrayLike | None, time: ArrayLike | None, ev: np.ndarray,
                    t: np.ndarray) -> np.ndarray:
    """Structured array the censoring distribution is estimated from (default: the test samples)."""
    if event is None and time is None:
        return _surv(ev, t)
    if event is None or time is None:
        raise InputDataError("train_event and train_time must be given together (or neither).")
    tev, tt, _ = check_survival_inputs(event, time)
    return _surv(tev, tt)


def usable_times(times: ArrayLike, time: ArrayLike) -> np.ndarray:
    """The sorted unique ``times`` inside the follow-up of ``time``: ``min(time) <= t < max(time)``.

    scikit-survival's time-dependent metrics accept only such times.
    """
    grid = np.unique(_as_1d(times, "times"))
    t = _as_1d(time, "time")
    if t.size == 0:
        return grid[:0]
    return grid[(grid >= t.min()) & (grid < t.max())]


def uno_concordance_index(event: ArrayLike, time: ArrayLike, risk: ArrayLike, *, tau: float | None = None,
                          train_event: ArrayLike | None = None, train_time: ArrayLike | None = None) -> float:
    """Uno's inverse-probability-of-censoring weighted concordance index.

    Less dependent on the censoring distribution than Harrell's C: pairs are weighted by the
    inverse squared Kaplan-Meier estimate of the censoring survival at the earlier time.

    Parameters
    ----------
    event : array-like, shape = (n_samples,), bool or 0/1; True/1 = event (death) observed.
    time : array-like, shape = (n_samples,), float; event or censoring time in days.
    risk : array-like, shape = (n_samples,), float; **higher = earlier event**.
    tau : float, optional
        Truncation time in days: only pairs whose earlier time is below ``tau`` count. Choose it
        below the largest follow-up time, where the censoring estimate becomes unstable.
    train_event, train_time : array-like, shape = (n_train,), optional
        Survival data the censoring distribution is estimated from (default: the samples above).

    Returns
    -------
    float in [0, 1]; 0.5 = random ordering.

    Raises
    ------
    InputDataError
        Bad inputs, or scikit-survival rejects them (e.g. the censoring survival is zero).
    NoComparablePairsError
        No event before ``tau``.

    Notes
    -----
    Wraps ``sksurv.metrics.concordance_index_ipcw``.

    References
    ----------
    Uno, Cai, Pencina, D'Agostino, Wei. On the C-statistics for evaluating overall adequacy of risk
    prediction procedures with censored survival data. Statistics in Medicine 30(10), 2011.
    """
    from sksurv.metrics import concordance_index_ipcw

    ev, t, r = check_survival_inputs(event, time, risk)
    before = ev & (t < tau) if tau is not None else ev
    if not before.any():
        raise NoComparablePairsError(f"no event{'' if tau is None else f' before tau = {tau:g} days'} among "
                                     f"{ev.size} samples: Uno's C-index has no comparable pair.")
    train = _censoring_data(train_event, train_time, ev, t)
    with _sksurv_errors("Uno's C-index", ev.size):
        return float(concordance_index_ipcw(train, _surv(ev, t), r, tau=tau)[0])


def time_dependent_auc(event: ArrayLike, time: ArrayLike, risk: ArrayLike, times: ArrayLike, *,
                       train_event: ArrayLike | None = None,
                       train_time: ArrayLike | None = None) -> tuple[np.ndarray, np.ndarray, float]:
    """Cumulative/dynamic time-dependent ROC AUC at several times.

    At time t, cases are the samples with an event at or before t, controls those still at risk
    after t; the AUC is IPCW-weighted (censoring estimated from ``train_*``).

    Parameters
    ----------
    event, time : array-like, shape = (n_samples,); event 0/1 (1 = observed), time in days.
    risk : array-like, shape = (n_samples,) or (n_samples, n_times)
        Risk score (**higher = earlier event**), or one risk per time (e.g. ``1 - S(t | x)``).
    times : array-like, shape = (n_times,), days; only those inside the follow-up of ``time``
        (:func:`usable_times`) with at least one event at or before them are used, with the
        matching columns of a 2-D ``risk``.
    train_event, train_time : optional survival data of the censoring distribution (default: the
        samples above).

    Returns
    -------
    times : the times used, shape = (m,).
    auc : AUC at each of them, shape = (m,).
    mean_auc : their mean weighted by the change of the Kaplan-Meier survival estimate.

    Raises
    ------
    InputDataError
        Bad inputs, no usable time, or scikit-survival rejects the data.

    Notes
    -----
    Wraps ``sksurv.metrics.cumulative_dynamic_auc``.

    References
    ----------
    Uno, Cai, Tian, Wei. Evaluating prediction rules for t-year survivors with censored regression
    models. JASA 102, 2007. Lambert, Chevret. Summary measure of discrimination in survival models
    based on cumulative/dynamic time-dependent ROC curves. Stat Methods Med Res 25(5), 2016.
    """
    from sksurv.metrics import cumulative_dynamic_auc

    ev, t, _ = check_survival_inputs(event, time)
    grid = np.unique(_as_1d(times, "times"))
    est = np.asarray(risk, dtype=np.float64)
    if est.ndim == 2:
        if est.shape != (ev.size, grid.size):
            raise InputDataError(f"risk: a 2-D risk needs shape (n_samples, n_times) = {(ev.size, grid.size)}, "
                                 f"got {est.shape}.")
    else:
        est = _as_1d(est, "risk")
        if est.size != ev.size:
            raise InputDataError(f"risk has {est.size} values for {ev.size} samples.")
    if not np.isfinite(est).all():
        raise InputDataError("risk contains NaN or inf.")
    has_case = np.array([(ev & (t <= x)).any() for x in grid], dtype=bool)
    keep = (grid >= t.min()) & (grid < t.max()) & has_case
    if not keep.any():
        raise InputDataError(f"no time of {grid.round(1).tolist()[:6]} lies within the follow-up "
                             f"[{t.min():g}, {t.max():g}) days of the samples with an event before it.")
    if est.ndim == 2:
        est = est[:, keep]
    train = _censoring_data(train_event, train_time, ev, t)
    with _sksurv_errors("time-dependent AUC", ev.size):
        auc, mean_auc = cumulative_dynamic_auc(train, _surv(ev, t), est, grid[keep])
    return grid[keep], np.asarray(auc, dtype=np.float64), float(mean_auc)


def integrated_brier_score(event: ArrayLike, time: ArrayLike, survival: ArrayLike, times: ArrayLike, *,
                           train_event: ArrayLike | None = None, train_time: ArrayLike | None = None) -> float:
    """Integrated Brier score of predicted survival curves (lower is better; 0.25 ~ a constant 0.5).

    Parameters
    ----------
    event, time : array-like, shape = (n_samples,); event 0/1 (1 = observed), time in days.
    survival : array-like, shape = (n_samples, n_times)
        Predicted survival probability ``S(t | x)`` of each sample at each of ``times``.
    times : array-like, shape = (n_times,), increasing days; those outside the follow-up of
        ``time`` are dropped with their columns, and at least two must remain.
    train_event, train_time : optional survival data of the censoring distribution (default: the
        samples above).

    Raises
    ------
    InputDataError
        Bad shapes, probabilities outside [0, 1], fewer than two usable times.

    Notes
    -----
    Wraps ``sksurv.metrics.integrated_brier_score`` (IPCW Brier score integrated over ``times``
    by the trapezoidal rule, divided by the time span).

    References
    ----------
    Graf, Schmoor, Sauerbrei, Schumacher. Assessment and comparison of prognostic classification
    schemes for survival data. Statistics in Medicine 18(17-18), 1999.
    """
    from sksurv.metrics import integrated_brier_score as _ibs

    ev, t, _ = check_survival_inputs(event, time)
    grid = _as_1d(times, "times")
    if grid.size > 1 and not (np.diff(grid) > 0).all():
        raise InputDataError("times must be strictly increasing.")
    surv = np.asarray(survival, dtype=np.float64)
    if surv.shape != (ev.size, grid.size):
        raise InputDataError(f"survival: expected shape (n_samples, n_times) = {(ev.size, grid.size)}, got {surv.shape}.")
    if not np.isfinite(surv).all() or (surv < -1e-9).any() or (surv > 1 + 1e-9).any():
        raise InputDataError("survival must hold probabilities in [0, 1] (no NaN).")
    keep = (grid >= t.min()) & (grid < t.max())
    if keep.sum() < 2:
        raise InputDataError(f"the integrated Brier score needs at least two times within the follow-up "
                             f"[{t.min():g}, {t.max():g}) days; {int(keep.sum())} of {grid.size} are.")
    train = _censoring_data(train_event, train_time, ev, t)
    with _sksurv_errors("integrated Brier score", ev.size):
        return float(_ibs(train, _surv(ev, t), np.clip(surv[:, keep], 0, 1), grid[keep]))
