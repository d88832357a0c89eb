"""Risk groups for Kaplan-Meier curves and the log-rank test."""

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
