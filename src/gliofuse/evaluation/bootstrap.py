"""Percentile bootstrap confidence intervals."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence

import numpy as np

from gliofuse.errors import InputDataError

logger = logging.getLogger(__name__)


def bootstrap_cis(statistic: Callable[..., Mapping[str, float]], arrays: Sequence[np.ndarray], *,
                  n_bootstrap: int, seed: int, alpha: float = 0.05) -> dict[str, tuple[float, float]]:
    """Percentile bootstrap CIs of several statistics computed together on each resample.

    Parameters
    ----------
    statistic : function of the resampled arrays returning ``{name: value}``.
    arrays : arrays sharing their first dimension n (samples); rows are resampled with replacement.
    n_bootstrap : number of resamples; 0 gives (NaN, NaN) intervals.
    seed : seed of the resampling generator (same seed, same intervals).
    alpha : 1 - confidence level (0.05: 95 % interval).

    Returns
    -------
    ``{name: (low, high)}`` for the names returned on the full data. Resamples on which a
    statistic is undefined (``InputDataError`` such as no comparable pair, or NaN) are skipped
    for that statistic; the interval is (NaN, NaN) if fewer than half of the resamples are usable.

    References
    ----------
    Efron, Tibshirani. An introduction to the bootstrap. Chapman & Hall, 1993.
    """
    n = len(arrays[0])
    if any(len(a) != n for a in arrays):
        raise InputDataError(f"bootstrap: arrays have different lengths {[len(a) for a in arrays]}.")
    try:
        names = list(statistic(*arrays))
    except InputDataError:
        names = []
    values: dict[str, list[float]] = {k: [] for k in names}
    if n_bootstrap > 0 and names:
        rng = np.random.default_rng(seed)
        for _ in range(n_bootstrap):
            idx = rng.integers(0, n, size=n)
            try:
                res = statistic(*(a[idx] for a in arrays))
            except InputDataError:
                continue
            for k in names:
                v = float(res.get(k, np.nan))
                if np.isfinite(v):
                    values[k].append(v)
    out = {}
    for k, vals in values.items():
        if n_bootstrap <= 0 or len(vals) < max(1, n_bootstrap // 2):
            if n_bootstrap > 0:
                logger.warning("bootstrap: only %d of %d resamples gave a finite %s; CI set to NaN",
                               len(vals), n_bootstrap, k)
            out[k] = (float("nan"), float("nan"))
        else:
            low, high = np.percentile(vals, [100 * alpha / 2, 100 * (1 - alpha / 2)])
            out[k] = (float(low), float(high))
    return out


def bootstrap_ci(statistic: Callable[..., float], arrays: Sequence[np.ndarray], *, n_bootstrap: int, seed: int,
                 alpha: float = 0.05) -> tuple[float, float]:
    """Percentile bootstrap CI of one scalar ``statistic(*arrays)``; see :func:`bootstrap_cis`.

    Returns (NaN, NaN) when ``n_bootstrap`` is 0, the statistic is undefined on the full data, or
    fewer than half of the resamples give a finite value.
    """
    res = bootstrap_cis(lambda *a: {"value": float(statistic(*a))}, arrays, n_bootstrap=n_bootstrap,
                        seed=seed, alpha=alpha)
    return res.get("value", (float("nan"), float("nan")))
