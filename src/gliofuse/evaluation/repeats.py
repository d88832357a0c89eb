"""Repeated cross-validation (k folds x r repeats) on prediction tables: repeat ids, per-repeat blocks,
repeat-averaged statistics with patient-level bootstrap CIs, and the corrected resampled t-test.

A repeat's out-of-fold rows hold every patient once; the repeats hold the same patients with predictions of
different models (other partitions), so rows are never pooled across repeats: a metric is computed within each
repeat and averaged over the repeats. Tables without a ``repeat`` column are one repeat (repeat 0).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from gliofuse.errors import InputDataError

#: column of ``predictions_oof.tsv`` naming the repeat of each row (present when the CV is repeated)
REPEAT_COLUMN = "repeat"
#: ``metrics.tsv`` ``fold`` value of the out-of-fold metric of repeat j: ``repeat_<j>``
REPEAT_FOLD_PREFIX = "repeat_"


def repeat_label(repeat: int) -> str:
    """The ``metrics.tsv`` fold label of a repeat's pooled rows (``repeat_<j>``)."""
    return f"{REPEAT_FOLD_PREFIX}{int(repeat)}"


def repeats_of(df: pd.DataFrame) -> np.ndarray:
    """The repeat of each row, shape = (len(df),): the ``repeat`` column, or zeros without one."""
    if REPEAT_COLUMN not in df.columns:
        return np.zeros(len(df), dtype=np.int64)
    return pd.to_numeric(df[REPEAT_COLUMN], errors="raise").to_numpy(np.int64)


def n_repeats_of(df: pd.DataFrame) -> int:
    """Number of distinct repeats in a table (1 without a ``repeat`` column)."""
    return int(np.unique(repeats_of(df)).size) if len(df) else 1


def first_repeat(df: pd.DataFrame) -> pd.DataFrame:
    """The rows of the lowest repeat: every patient once (the figures of a repeated CV show repeat 0)."""
    r = repeats_of(df)
    return df if not len(df) else df[r == r.min()]


def repeat_blocks(df: pd.DataFrame, *, what: str, patients: Sequence[str] | None = None) -> list[pd.DataFrame]:
    """The rows of each repeat (in repeat order), each indexed in the same patient order.

    ``patients``: the patient order (default: the sorted patients of the lowest repeat).

    Raises
    ------
    InputDataError
        A patient twice in one repeat, or repeats that hold different patients (``what`` names the table).
    """
    r = repeats_of(df)
    blocks = []
    order = list(patients) if patients is not None else None
    for repeat in np.unique(r):
        part = df[r == repeat]
        dup = part["patient_id"][part["patient_id"].duplicated()].tolist()
        if dup:
            raise InputDataError(f"{what}: patient(s) {dup[:5]} appear twice in repeat {int(repeat)}.")
        if order is None:
            order = sorted(part["patient_id"].astype(str))
        have = set(part["patient_id"].astype(str))
        missing = [p for p in order if p not in have]
        extra = sorted(have - set(order))
        if missing or (patients is None and extra):
            raise InputDataError(f"{what}: repeat {int(repeat)} lacks patient(s) {missing[:5]} or has extra patient(s) "
                                 f"{extra[:5]} compared with repeat {int(r.min())}; every repeat must test the same "
                                 "patients (rerun `data_splits` and the folds).")
        blocks.append(part.set_index(part["patient_id"].astype(str)).loc[order].reset_index(drop=True))
    return blocks


def repeat_mean_statistic(statistic: Callable[..., Mapping[str, float]], n_arrays: int,
                          n_repeats: int) -> Callable[..., dict[str, float]]:
    """A statistic of ``n_repeats`` blocks of ``n_arrays`` patient-aligned arrays (repeat-major): the mean of
    ``statistic`` over the blocks, NaN when it is undefined on any block. With :func:`bootstrap_cis` or
    :func:`paired_bootstrap` each resample draws the same patients in every repeat."""

    def mean_stat(*arrays: np.ndarray) -> dict[str, float]:
        if len(arrays) != n_arrays * n_repeats:
            raise ValueError(f"expected {n_arrays} x {n_repeats} arrays, got {len(arrays)}")
        values = [statistic(*arrays[j * n_arrays:(j + 1) * n_arrays]) for j in range(n_repeats)]
        return {k: float(np.mean([float(v.get(k, np.nan)) for v in values])) for k in values[0]}

    return mean_stat


def corrected_resampled_ttest(diffs: Sequence[float], *, test_train_ratio: float) -> float:
    """Two-sided p-value of the corrected resampled t-test over the per-fold differences of r repeats of k folds.

    ``t = mean(d) / sqrt((1 / n + test_train_ratio) * var(d))`` with ``n = len(diffs)`` (k x r) and ``n - 1``
    degrees of freedom; ``test_train_ratio`` is n_test / n_train of one fold (``1 / (k - 1)`` for k folds).
    The correction accounts for the overlap of the training sets, which makes the plain paired t-test over
    the k x r folds far too liberal. NaN with fewer than two differences; 1 when all are 0.

    References
    ----------
    Nadeau, Bengio. Inference for the generalization error. Machine Learning 52(3), 2003.
    Bouckaert, Frank. Evaluating the replicability of significance tests for comparing learning algorithms.
    PAKDD 2004 (the k x r form used here).
    """
    from scipy.stats import t as student_t

    d = np.asarray(diffs, dtype=np.float64)
    if d.size < 2:
        return math.nan
    var = float(d.var(ddof=1))
    if var == 0:
        return 1.0 if float(d.mean()) == 0 else math.nan
    stat = float(d.mean()) / math.sqrt((1.0 / d.size + test_train_ratio) * var)
    return float(2 * student_t.sf(abs(stat), df=d.size - 1))
