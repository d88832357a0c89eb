"""Metrics with array contracts.

Survival convention everywhere: ``event`` bool or 0/1 (True/1 = event observed), ``time`` in
days, ``risk`` a score where **higher = earlier event**. Inputs are validated at the entry of
each public function; errors name the argument (``InputDataError``).
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from gliofuse.errors import InputDataError, NoComparablePairsError


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


def classification_metrics(y_true: ArrayLike, prob: ArrayLike) -> dict[str, float]:
    """Multi-class metrics from class probabilities.

    Parameters
    ----------
    y_true : array-like, shape = (n_samples,), int
        Class indices 0..K-1.
    prob : array-like, shape = (n_samples, K), float
        Class probabilities (column k = class k); the prediction is the arg-max.

    Returns
    -------
    dict with ``auc_macro`` (one-vs-rest ROC AUC averaged over the classes that have both
    positives and negatives in ``y_true``; NaN when none has), ``balanced_accuracy`` (mean recall
    over classes present in ``y_true``), ``f1_macro`` (over classes present in ``y_true`` or the
    predictions) and ``accuracy``.
    """
    from sklearn.metrics import accuracy_score, balanced_accuracy_score, f1_score, roc_auc_score

    y, p = _check_classification(y_true, prob)
    y_pred = p.argmax(axis=1)
    aucs = []
    for k in range(p.shape[1]):
        pos = y == k
        if pos.any() and (~pos).any():
            aucs.append(roc_auc_score(pos, p[:, k]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # classes predicted but absent from y_true
        bacc = balanced_accuracy_score(y, y_pred)
    return {
        "auc_macro": float(np.mean(aucs)) if aucs else float("nan"),
        "balanced_accuracy": float(bacc),
        "f1_macro": float(f1_score(y, y_pred, average="macro", zero_division=0)),
        "accuracy": float(accuracy_score(y, y_pred)),
    }


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
