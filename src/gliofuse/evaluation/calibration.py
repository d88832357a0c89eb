"""Kaplan-Meier estimates and the calibration of predicted survival at fixed horizons (external validation).

Calibration compares, within each risk group, the mean predicted survival ``S(t)`` of the patients with the
Kaplan-Meier estimate of the same patients at horizon ``t`` (1, 2 and 5 years). Torch-free.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from gliofuse.tasks import DAYS_PER_MONTH

CALIBRATION_HORIZONS_YEARS: tuple[float, ...] = (1.0, 2.0, 5.0)
"""Horizons of the calibration table, in years (× 12 × :data:`DAYS_PER_MONTH` = days)."""

KM_COLUMNS: tuple[str, ...] = ("model", "task", "group", "time_days", "survival", "n_at_risk")
CALIBRATION_COLUMNS: tuple[str, ...] = ("model", "task", "group", "horizon_years", "horizon_days", "n_patients",
                                        "predicted", "observed", "observed_ci_low", "observed_ci_high")


def horizon_days(years: float) -> float:
    return float(years) * 12.0 * DAYS_PER_MONTH


def kaplan_meier(time: ArrayLike, event: ArrayLike) -> pd.DataFrame:
    """Kaplan-Meier estimate with Greenwood variance.

    Parameters
    ----------
    time : shape = (n,), days; event : shape = (n,), 1 = death observed, 0 = censored.

    Returns
    -------
    DataFrame with one row per distinct time (plus time 0): ``time_days``, ``survival`` (S just after the
    time), ``n_at_risk`` (patients with time >= t), ``greenwood`` (sum d / (n (n - d)) up to t).
    """
    t = np.asarray(time, dtype=np.float64)
    e = np.asarray(event, dtype=np.int64)
    rows = [(0.0, 1.0, int(t.size), 0.0)]
    s, g = 1.0, 0.0
    for u in np.unique(t):
        n = int((t >= u).sum())
        d = int(((t == u) & (e == 1)).sum())
        if d:
            s *= 1.0 - d / n
            g += d / (n * (n - d)) if n > d else np.inf
        rows.append((float(u), s, n, g))
    return pd.DataFrame(rows, columns=["time_days", "survival", "n_at_risk", "greenwood"])


def km_at(km: pd.DataFrame, t: float) -> tuple[float, float, float]:
    """(S(t), 95 % CI low, high) of a :func:`kaplan_meier` table; NaN beyond the last observed time.

    The CI is Greenwood's on the log(-log) scale (bounded to [0, 1]).
    """
    if t > float(km["time_days"].max()):
        return float("nan"), float("nan"), float("nan")
    row = km[km["time_days"] <= t].iloc[-1]
    s, g = float(row["survival"]), float(row["greenwood"])
    if s <= 0.0 or s >= 1.0 or not np.isfinite(g):
        return s, s, s
    se = np.sqrt(g) / abs(np.log(s))
    lo, hi = s ** np.exp(1.96 * se), s ** np.exp(-1.96 * se)
    return s, float(lo), float(hi)


def survival_at(curves: pd.DataFrame, times: ArrayLike) -> np.ndarray:
    """Predicted ``S(t)`` (P, len(times)) from a ``survival.tsv`` table (columns ``surv_<days>``), linearly
    interpolated between its curve times; NaN beyond the last one."""
    cols = [c for c in curves.columns if c.startswith("surv_")]
    grid = np.array([float(c.removeprefix("surv_")) for c in cols])
    order = np.argsort(grid)
    grid, values = grid[order], curves[cols].to_numpy(np.float64)[:, order]
    ts = np.asarray(times, dtype=np.float64)
    out = np.vstack([np.interp(ts, grid, row) for row in values]) if len(values) else np.zeros((0, ts.size))
    if grid.size:
        out[:, ts > grid[-1]] = np.nan
    return out


def km_table(model: str, task: str, groups: dict[str, np.ndarray], time: np.ndarray,
             event: np.ndarray) -> pd.DataFrame:
    """Kaplan-Meier step points of each named group (``groups``: name → bool mask over the patients)."""
    frames = []
    for name, mask in groups.items():
        if mask.any():
            km = kaplan_meier(time[mask], event[mask])
            frames.append(km.assign(model=model, task=task, group=name))
    if not frames:
        return pd.DataFrame(columns=list(KM_COLUMNS))
    return pd.concat(frames, ignore_index=True)[list(KM_COLUMNS)]


def calibration_table(model: str, task: str, groups: dict[str, np.ndarray], time: np.ndarray, event: np.ndarray,
                      predicted: np.ndarray, horizons_years: tuple[float, ...] = CALIBRATION_HORIZONS_YEARS
                      ) -> pd.DataFrame:
    """Mean predicted vs Kaplan-Meier observed survival per group and horizon.

    ``predicted``: (P, len(horizons_years)) predicted ``S(t)`` at the horizons (:func:`survival_at`).
    A horizon beyond a group's follow-up (or beyond the bundle's survival curve) gives NaN.
    """
    rows = []
    for name, mask in groups.items():
        km = kaplan_meier(time[mask], event[mask]) if mask.any() else None
        for k, years in enumerate(horizons_years):
            obs = km_at(km, horizon_days(years)) if km is not None else (float("nan"),) * 3
            pred = predicted[mask, k]
            mean_pred = float(np.mean(pred)) if pred.size and np.isfinite(pred).all() else float("nan")
            rows.append((model, task, name, years, round(horizon_days(years), 2), int(mask.sum()), mean_pred, *obs))
    return pd.DataFrame(rows, columns=list(CALIBRATION_COLUMNS))
