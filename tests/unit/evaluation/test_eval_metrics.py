"""C-index against references and hand-computed truth; classification metrics; log-rank; bootstrap."""

from __future__ import annotations

import numpy as np
import pytest
from lifelines.utils import concordance_index as lifelines_cindex

from gliofuse.errors import InputDataError, NoComparablePairsError
from gliofuse.evaluation.bootstrap import bootstrap_ci
from gliofuse.evaluation.metrics import classification_metrics, concordance_index, logrank_p
from gliofuse.evaluation.survival import median_risk_groups


def naive_cindex(event: np.ndarray, time: np.ndarray, risk: np.ndarray) -> float:
    """O(n^2) Harrell's C: comparable if time_i < time_j and event_i; ties in risk count 1/2."""
    num = den = 0.0
    for i in range(len(time)):
        for j in range(len(time)):
            if event[i] and time[i] < time[j]:
                den += 1
                num += 1.0 if risk[i] > risk[j] else 0.5 if risk[i] == risk[j] else 0.0
    return num / den


def _data(n: int = 57, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    risk = rng.standard_normal(n)
    time = rng.permutation(np.arange(1, n + 1)) * 10.0 + rng.random(n)  # tie-free
    event = rng.random(n) < 0.6
    return event, time, risk


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_cindex_matches_naive_and_lifelines(seed: int) -> None:
    event, time, risk = _data(seed=seed)
    c = concordance_index(event, time, risk)
    assert c == pytest.approx(naive_cindex(event, time, risk), abs=1e-12)
    assert c == pytest.approx(lifelines_cindex(time, -risk, event), abs=1e-12)


def test_cindex_hand_computed() -> None:
    event, time = np.array([1, 1, 0, 1]), np.array([1.0, 2.0, 3.0, 4.0])
    assert concordance_index(event, time, [4.0, 3.0, 2.0, 1.0]) == 1.0  # earliest death, highest risk
    assert concordance_index(event, time, [1.0, 2.0, 3.0, 4.0]) == 0.0
    # comparable pairs: (0,1) (0,2) (0,3) (1,2) (1,3); risk ties at 0 and 1 -> 0.5
    assert concordance_index(event, time, [1.0, 1.0, 0.0, 0.0]) == pytest.approx((0.5 + 1 + 1 + 1 + 1) / 5)


def test_cindex_invariances() -> None:
    event, time, risk = _data()
    c = concordance_index(event, time, risk)
    assert concordance_index(event, time + 365.0, risk) == pytest.approx(c)
    assert concordance_index(event, time, 3 * risk + 7) == pytest.approx(c)
    perm = np.random.default_rng(5).permutation(len(time))
    assert concordance_index(event[perm], time[perm], risk[perm]) == pytest.approx(c)


def test_cindex_all_censored_raises() -> None:
    with pytest.raises(NoComparablePairsError, match="all 3 samples are censored"):
        concordance_index([0, 0, 0], [1.0, 2.0, 3.0], [0.1, 0.2, 0.3])
    with pytest.raises(NoComparablePairsError, match="no comparable pair"):
        concordance_index([0, 1], [1.0, 2.0], [0.1, 0.2])


@pytest.mark.parametrize("inputs,match", [
    (([0, 2, 1], [1.0, 2.0, 3.0], [0.1, 0.2, 0.3]), r"event must be boolean or 0/1 .* got values \{0, 1, 2\}"),
    (([0, 1, 1], [1.0, np.nan, 3.0], [0.1, 0.2, 0.3]), r"time contains NaN or inf at position\(s\) \[1\]"),
    (([0, 1, 1], [1.0, 2.0, 3.0], [[0.1], [0.2], [0.3]]), r"risk: expected a 1-D array, got 2-D"),
    (([0, 1, 1], [1.0, 2.0], [0.1, 0.2, 0.3]), r"inconsistent lengths: \{'event': 3, 'time': 2, 'risk': 3\}"),
    (([1], [1.0], [0.1]), r"need at least 2 samples, got 1"),
    ((["a", "b"], [1.0, 2.0], [0.1, 0.2]), r"event must be boolean or 0/1"),
])
def test_cindex_rejects_bad_input(inputs: tuple, match: str) -> None:
    with pytest.raises(InputDataError, match=match):
        concordance_index(*inputs)


def test_classification_metrics_perfect_and_absent_class() -> None:
    y = np.array([0, 1, 2, 0, 1, 2])
    m = classification_metrics(y, np.eye(3)[y] * 0.9 + 0.1 / 3)
    assert m == pytest.approx({"auc_macro": 1.0, "balanced_accuracy": 1.0, "f1_macro": 1.0, "accuracy": 1.0})
    # class 2 absent from y_true: AUC averages the two classes that can be scored
    y2 = np.array([0, 0, 1, 1])
    prob = np.array([[0.8, 0.1, 0.1], [0.3, 0.6, 0.1], [0.2, 0.7, 0.1], [0.1, 0.2, 0.7]])
    m2 = classification_metrics(y2, prob)
    assert np.isfinite(m2["auc_macro"]) and m2["accuracy"] == 0.5
    perm = [3, 1, 0, 2]
    assert classification_metrics(y2[perm], prob[perm]) == pytest.approx(m2)
    assert np.isnan(classification_metrics([1, 1], prob[:2])["auc_macro"])


def test_classification_metrics_rejects_bad_input() -> None:
    with pytest.raises(InputDataError, match=r"y_true must hold class indices 0..2"):
        classification_metrics([0, -1], np.full((2, 3), 1 / 3))
    with pytest.raises(InputDataError, match=r"prob: expected shape"):
        classification_metrics([0, 1], np.ones(2))


def test_logrank_and_risk_groups() -> None:
    time = np.r_[np.arange(1, 21) * 10.0, np.arange(1, 21) * 100.0]
    event = np.ones(40, dtype=int)
    high = np.r_[np.ones(20, bool), np.zeros(20, bool)]
    assert logrank_p(time, event, high) < 1e-4
    with pytest.raises(InputDataError, match="one group"):
        logrank_p(time, event, np.ones(40, bool))
    groups = median_risk_groups([1.0, 2.0, 3.0, 10.0, 20.0, 30.0], fold=[0, 0, 0, 1, 1, 1])
    assert groups.tolist() == [False, False, True, False, False, True]


def test_bootstrap_is_seeded_and_brackets_estimate() -> None:
    event, time, risk = _data(n=80)
    stat = concordance_index
    a = bootstrap_ci(stat, [event, time, risk], n_bootstrap=60, seed=3)
    b = bootstrap_ci(stat, [event, time, risk], n_bootstrap=60, seed=3)
    assert a == b and a[0] < concordance_index(event, time, risk) < a[1]
    assert all(np.isnan(bootstrap_ci(stat, [event, time, risk], n_bootstrap=0, seed=3)))
    # statistic undefined on (almost) every resample -> NaN interval
    lo, hi = bootstrap_ci(stat, [np.zeros(5, bool), np.arange(5.0), np.arange(5.0)], n_bootstrap=10, seed=0)
    assert np.isnan(lo) and np.isnan(hi)


def test_bootstrap_cis_computes_several_statistics_per_resample() -> None:
    from gliofuse.evaluation.bootstrap import bootstrap_cis

    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 60)
    prob = rng.dirichlet(np.ones(3), 60) + 2 * np.eye(3)[y]
    prob /= prob.sum(axis=1, keepdims=True)
    cis = bootstrap_cis(classification_metrics, [y, prob], n_bootstrap=40, seed=2)
    assert set(cis) == {"auc_macro", "balanced_accuracy", "f1_macro", "accuracy"}
    for name, (lo, hi) in cis.items():
        assert lo <= classification_metrics(y, prob)[name] <= hi
    single = bootstrap_ci(lambda a, b: classification_metrics(a, b)["accuracy"], [y, prob], n_bootstrap=40, seed=2)
    assert single == cis["accuracy"]
