"""Percentile bootstrap confidence intervals and paired bootstrap comparisons (patient-level resampling)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

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


@dataclass(frozen=True)
class PairedDifference:
    """Paired bootstrap comparison of one statistic between model A and reference B on the same samples.

    Attributes
    ----------
    value, value_ci : A's statistic on all samples and its percentile CI.
    reference_value : B's statistic on all samples.
    diff, diff_ci : ``value - reference_value`` and the percentile CI of the resampled differences.
    p_value : two-sided bootstrap p-value of "no difference" (see :func:`paired_bootstrap`).
    n_resamples : resamples on which both statistics were defined.
    """

    value: float
    value_ci: tuple[float, float]
    reference_value: float
    diff: float
    diff_ci: tuple[float, float]
    p_value: float
    n_resamples: int


def paired_bootstrap(statistic: Callable[..., Mapping[str, float]], arrays: Sequence[np.ndarray],
                     reference_arrays: Sequence[np.ndarray], *, n_bootstrap: int, seed: int,
                     alpha: float = 0.05) -> dict[str, PairedDifference]:
    """Paired percentile bootstrap of the difference of statistics between two models.

    Each resample draws n samples (patients) with replacement and evaluates ``statistic`` on the
    same rows of both models, so the difference keeps the pairing (the correlation between two
    models scored on the same patients).

    Parameters
    ----------
    statistic : function of one model's arrays returning ``{name: value}``; an ``InputDataError``
        or a NaN value marks the statistic undefined on that resample.
    arrays, reference_arrays : the model's and the reference model's arrays, all with the same
        first dimension n and aligned row by row (same patient in the same row).
    n_bootstrap : number of resamples; 0 gives NaN intervals and p-values.
    seed : seed of the resampling generator.
    alpha : 1 - confidence level.

    Returns
    -------
    ``{name: PairedDifference}`` for the names returned on the full data. The p-value is
    ``min(1, 2 * min(#(d* <= 0) + 1, #(d* >= 0) + 1) / (B + 1))`` over the B usable resampled
    differences d* (the percentile-interval inversion); it is 1 when the models agree on every
    resample. Intervals and p-values are NaN if fewer than half of the resamples are usable.

    References
    ----------
    Efron, Tibshirani. An introduction to the bootstrap. Chapman & Hall, 1993 (ch. 15-16).
    """
    n = len(arrays[0])
    if any(len(a) != n for a in [*arrays, *reference_arrays]):
        raise InputDataError("paired bootstrap: the two models' arrays must have the same length "
                             f"(got {[len(a) for a in arrays]} and {[len(a) for a in reference_arrays]}).")

    def _eval(arrs: Sequence[np.ndarray]) -> dict[str, float]:
        try:
            return {k: float(v) for k, v in statistic(*arrs).items()}
        except InputDataError:
            return {}

    full_a, full_b = _eval(arrays), _eval(reference_arrays)
    names = list(full_a) or list(full_b)
    vals: dict[str, list[float]] = {k: [] for k in names}
    diffs: dict[str, list[float]] = {k: [] for k in names}
    if n_bootstrap > 0 and names:
        rng = np.random.default_rng(seed)
        for _ in range(n_bootstrap):
            idx = rng.integers(0, n, size=n)
            ra = _eval([a[idx] for a in arrays])
            rb = _eval([b[idx] for b in reference_arrays])
            for k in names:
                va, vb = ra.get(k, np.nan), rb.get(k, np.nan)
                if np.isfinite(va):
                    vals[k].append(va)
                    if np.isfinite(vb):
                        diffs[k].append(va - vb)
    nan2 = (float("nan"), float("nan"))
    q = [100 * alpha / 2, 100 * (1 - alpha / 2)]
    out = {}
    for k in names:
        a, b = full_a.get(k, float("nan")), full_b.get(k, float("nan"))
        enough = max(1, n_bootstrap // 2)
        value_ci = tuple(float(x) for x in np.percentile(vals[k], q)) if len(vals[k]) >= enough else nan2
        d = np.asarray(diffs[k])
        if n_bootstrap > 0 and d.size >= enough:
            diff_ci = tuple(float(x) for x in np.percentile(d, q))
            p = min(1.0, 2.0 * min((d <= 0).sum() + 1, (d >= 0).sum() + 1) / (d.size + 1))
        else:
            diff_ci, p = nan2, float("nan")
        out[k] = PairedDifference(value=a, value_ci=value_ci, reference_value=b, diff=a - b,  # type: ignore[arg-type]
                                  diff_ci=diff_ci, p_value=float(p), n_resamples=int(d.size))  # type: ignore[arg-type]
    return out
