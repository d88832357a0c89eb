"""Risk groups for Kaplan-Meier curves and the log-rank test; survival curves from model outputs."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike


def median_risk_groups(risk: ArrayLike, fold: ArrayLike | None = None) -> np.ndarray:
    """High-risk mask: ``risk`` above the median of its fold (or of all samples if ``fold`` is None).

    Out-of-fold risks of different folds come from different models and are not on one scale,
    so the median split is made within each fold and the masks are pooled.

    Parameters
    ----------
    risk : array-like, shape = (n_samples,), higher = earlier event.
    fold : array-like, shape = (n_samples,), fold of each sample.

    Returns
    -------
    bool array, shape = (n_samples,); True = high risk.
    """
    r = np.asarray(risk, dtype=np.float64)
    groups = np.zeros(r.shape[0], dtype=np.int64) if fold is None else np.asarray(fold)
    high = np.zeros(r.shape[0], dtype=bool)
    for g in np.unique(groups):
        sel = groups == g
        high[sel] = r[sel] > np.median(r[sel])
    return high


HAZARD_PREFIX = "hazard_"


def time_grid(time: ArrayLike, *, quantiles: tuple[float, float] = (0.05, 0.8), n_times: int = 15) -> np.ndarray:
    """Evaluation times: ``n_times`` quantiles of ``time`` between ``quantiles[0]`` and ``quantiles[1]``.

    Parameters
    ----------
    time : array-like, shape = (n_samples,), observed times in days (events and censorings).
    quantiles : lower and upper quantile, 0 <= lower < upper <= 1.
    n_times : number of grid points (duplicates from tied times are dropped).

    Returns
    -------
    float array of strictly increasing days, shape = (m,), m <= n_times.
    """
    t = np.asarray(time, dtype=np.float64)
    t = t[np.isfinite(t)]
    if t.size == 0:
        return np.zeros(0)
    lo, hi = quantiles
    return np.unique(np.quantile(t, np.linspace(lo, hi, n_times)))


def hazard_columns(columns: list[str]) -> tuple[list[str], np.ndarray]:
    """The ``hazard_<upper edge in days>`` columns of a prediction table and their bin edges.

    A discrete-time survival head predicts, per patient, the hazard ``h_k`` of dying in bin k given
    survival to its start; bin k ends at the edge in the column name (``hazard_inf`` for the last,
    open bin). Returns ``([], empty)`` when the table has none.
    """
    cols = [c for c in columns if c.startswith(HAZARD_PREFIX)]
    edges = []
    for c in cols:
        try:
            edges.append(float(c.removeprefix(HAZARD_PREFIX)))
        except ValueError:
            from gliofuse.errors import InputDataError

            raise InputDataError(f"column {c!r}: expected hazard_<upper bin edge in days>, e.g. hazard_365.5.") from None
    order = np.argsort(edges, kind="stable")
    return [cols[i] for i in order], np.asarray(edges, dtype=np.float64)[order]


def discrete_hazard_survival(hazards: ArrayLike, edges: ArrayLike, times: ArrayLike) -> np.ndarray:
    """Survival probabilities from discrete-time hazards: ``S(t) = prod_{k: edge_k <= t} (1 - h_k)``.

    Parameters
    ----------
    hazards : array-like, shape = (n_samples, K), in [0, 1]; ``h_k`` = P(event in bin k | alive at its start).
    edges : array-like, shape = (K,), increasing upper bin edges in days (the last may be inf).
    times : array-like, shape = (n_times,), days.

    Returns
    -------
    float array, shape = (n_samples, n_times): survival just after each time (a step function
    that drops at the end of each bin).

    References
    ----------
    Tutz, Schmid. Modeling discrete time-to-event data. Springer, 2016 (chapter 3).
    """
    h = np.clip(np.asarray(hazards, dtype=np.float64), 0.0, 1.0)
    e = np.asarray(edges, dtype=np.float64)
    t = np.asarray(times, dtype=np.float64)
    surv_at_edges = np.cumprod(1.0 - h, axis=1)  # S after bin k
    n_done = np.searchsorted(e, t, side="right")  # bins finished by time t
    padded = np.hstack([np.ones((h.shape[0], 1)), surv_at_edges])
    return padded[:, n_done]


def breslow_survival(train_risk: ArrayLike, train_event: ArrayLike, train_time: ArrayLike, risk: ArrayLike,
                     times: ArrayLike) -> np.ndarray:
    """Survival probabilities of a Cox model: ``S(t | x) = exp(-H0(t) exp(risk))``.

    The cumulative baseline hazard ``H0`` is Breslow's estimator on the training patients of the
    same fold (``train_*``: their risks, events and times), so the risks must come from the same
    fitted model. ``H0`` is held constant after the last training time.

    Parameters
    ----------
    train_risk, train_event, train_time : array-like, shape = (n_train,); risk = log relative hazard
        (higher = earlier event), event 0/1, time in days.
    risk : array-like, shape = (n_samples,), risks of the patients to predict.
    times : array-like, shape = (n_times,), days.

    Returns
    -------
    float array, shape = (n_samples, n_times).

    Raises
    ------
    InputDataError
        Bad inputs, or no event among the training patients.

    Notes
    -----
    The estimator is ``sksurv.linear_model.coxph.BreslowEstimator``.

    References
    ----------
    Breslow. Discussion of the paper by D. R. Cox. JRSS B 34(2), 1972.
    """
    h0_times, h0 = breslow_baseline(train_risk, train_event, train_time)
    return cox_survival(h0_times, h0, risk, times)


def breslow_baseline(train_risk: ArrayLike, train_event: ArrayLike,
                     train_time: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Breslow's cumulative baseline hazard of a Cox model fitted on the training patients.

    Returns ``(times, H0)``, float arrays of one shape: the step function's times (days, increasing) and
    its value from each time on. Raises ``InputDataError`` without an event (see :func:`breslow_survival`).
    """
    from sksurv.linear_model.coxph import BreslowEstimator

    from gliofuse.errors import InputDataError
    from gliofuse.evaluation.metrics import check_survival_inputs

    ev, t, r_train = check_survival_inputs(train_event, train_time, train_risk, min_samples=1)
    if not ev.any():
        raise InputDataError(f"Breslow's estimator needs at least one event among the {ev.size} training "
                             "patients; survival curves are undefined for this fold.")
    cum = BreslowEstimator().fit(r_train, ev, t).cum_baseline_hazard_
    return np.asarray(cum.x, dtype=np.float64), np.asarray(cum.y, dtype=np.float64)


def cox_survival(h0_times: ArrayLike, h0: ArrayLike, risk: ArrayLike, times: ArrayLike) -> np.ndarray:
    """``S(t | x) = exp(-H0(t) exp(risk))``, shape = (n_samples, n_times), from a baseline step function
    (:func:`breslow_baseline`): 0 before its first time, held constant after its last."""
    x, y = np.asarray(h0_times, dtype=np.float64), np.asarray(h0, dtype=np.float64)
    grid = np.asarray(times, dtype=np.float64)
    idx = np.searchsorted(x, grid, side="right") - 1
    base = np.where(idx >= 0, y[np.clip(idx, 0, None)], 0.0)
    return np.exp(-np.outer(np.exp(np.asarray(risk, dtype=np.float64)), base))
