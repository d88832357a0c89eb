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
    assert m == pytest.approx({"auc_macro": 1.0, "auc_micro": 1.0, "average_precision": 1.0, "balanced_accuracy": 1.0,
                               "f1_macro": 1.0, "accuracy": 1.0})
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
    assert set(cis) == {"auc_macro", "auc_micro", "average_precision", "balanced_accuracy", "f1_macro", "accuracy"}
    for name, (lo, hi) in cis.items():
        assert lo <= classification_metrics(y, prob)[name] <= hi
    single = bootstrap_ci(lambda a, b: classification_metrics(a, b)["accuracy"], [y, prob], n_bootstrap=40, seed=2)
    assert single == cis["accuracy"]


def test_classification_micro_auc_and_average_precision_match_sklearn() -> None:
    from sklearn.metrics import average_precision_score, roc_auc_score

    rng = np.random.default_rng(5)
    y = rng.integers(0, 3, 90)
    prob = rng.dirichlet(np.ones(3), 90) + np.eye(3)[y]
    prob /= prob.sum(axis=1, keepdims=True)
    m = classification_metrics(y, prob)
    onehot = np.eye(3)[y]
    assert m["auc_micro"] == pytest.approx(roc_auc_score(onehot, prob, average="micro"))
    assert m["average_precision"] == pytest.approx(average_precision_score(onehot, prob, average="macro"))
    assert m["auc_macro"] == pytest.approx(roc_auc_score(y, prob, multi_class="ovr", average="macro"))


# --- time-dependent survival metrics ---------------------------------------------------------------


def _uncensored(n: int = 60, seed: int = 3) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    risk = rng.standard_normal(n)
    time = np.exp(-risk + 0.7 * rng.standard_normal(n)) * 300 + rng.random(n)
    return np.ones(n, dtype=int), time, risk


def test_uno_equals_harrell_without_censoring() -> None:
    from gliofuse.evaluation.metrics import uno_concordance_index

    event, time, risk = _uncensored()
    assert uno_concordance_index(event, time, risk) == pytest.approx(concordance_index(event, time, risk))
    event2, time2, risk2 = _data(n=80)
    tau = float(np.quantile(time2, 0.8))
    c = uno_concordance_index(event2, time2, risk2, tau=tau, train_event=event2, train_time=time2)
    assert 0.0 <= c <= 1.0
    # shifting time leaves it unchanged only up to the censoring weights; flipping the risk mirrors it
    assert uno_concordance_index(event2, time2, -risk2, tau=tau) == pytest.approx(1 - c, abs=1e-9)
    with pytest.raises(NoComparablePairsError, match="no event before tau"):
        uno_concordance_index(event2, time2, risk2, tau=float(time2.min()))


def test_time_dependent_auc_perfect_reversed_and_2d() -> None:
    from gliofuse.evaluation.metrics import time_dependent_auc

    event, time, _ = _uncensored()
    times = np.quantile(time, [0.2, 0.5, 0.8])
    used, auc, mean = time_dependent_auc(event, time, -time, times)
    assert used.tolist() == sorted(times.tolist()) and np.allclose(auc, 1.0) and mean == pytest.approx(1.0)
    assert time_dependent_auc(event, time, time, times)[2] == pytest.approx(0.0)
    # a per-time risk (n, T) is accepted; times outside the follow-up are dropped with their columns
    risk2d = np.repeat(-time[:, None], 4, axis=1)
    used, auc, _ = time_dependent_auc(event, time, risk2d, [*times, time.max() + 1])
    assert len(used) == 3 and np.allclose(auc, 1.0)
    with pytest.raises(InputDataError, match="no time of"):
        time_dependent_auc(event, time, -time, [time.max() + 10])


def test_integrated_brier_score_matches_hand_computation_without_censoring() -> None:
    from gliofuse.evaluation.metrics import integrated_brier_score

    event, time, risk = _uncensored(n=40)
    times = np.quantile(time, np.linspace(0.1, 0.7, 6))
    surv = 1.0 / (1.0 + np.exp(np.outer(risk, np.ones(6)) + np.log(times / 300.0)))
    # without censoring, the IPCW Brier score is the mean squared error of 1{T > t} vs S(t)
    bs = ((time[:, None] > times[None, :]).astype(float) - surv) ** 2
    expected = np.trapezoid(bs.mean(axis=0), times) / (times[-1] - times[0])
    assert integrated_brier_score(event, time, surv, times) == pytest.approx(expected, rel=1e-9)
    with pytest.raises(InputDataError, match="at least two times"):
        integrated_brier_score(event, time, surv[:, :1], times[:1])
    with pytest.raises(InputDataError, match="probabilities"):
        integrated_brier_score(event, time, surv * 3, times)


def test_breslow_survival_matches_hand_computed_baseline_hazard() -> None:
    from gliofuse.evaluation.survival import breslow_survival

    event, time, risk = _data(n=30, seed=4)  # tie-free times
    grid = np.quantile(time, [0.1, 0.4, 0.9]).tolist() + [time.max() * 2]
    h0 = [sum(1.0 / np.exp(risk[time >= ti]).sum() for ti, ei in zip(time, event, strict=True) if ei and ti <= t)
          for t in grid]
    expected = np.exp(-np.outer(np.exp(risk[:5]), h0))
    assert breslow_survival(risk, event, time, risk[:5], grid) == pytest.approx(expected)
    with pytest.raises(InputDataError, match="at least one event"):
        breslow_survival(risk, np.zeros(30, int), time, risk[:5], grid)


def test_discrete_hazard_survival_and_columns() -> None:
    from gliofuse.evaluation.survival import discrete_hazard_survival, hazard_columns, time_grid

    s = discrete_hazard_survival([[0.1, 0.2, 0.5]], [10.0, 20.0, np.inf], [0.0, 10.0, 15.0, 20.0, 1e6])
    assert s[0].tolist() == pytest.approx([1.0, 0.9, 0.9, 0.72, 0.72])
    cols, edges = hazard_columns(["risk", "hazard_365.5", "hazard_inf", "hazard_100"])
    assert cols == ["hazard_100", "hazard_365.5", "hazard_inf"] and edges[:2].tolist() == [100.0, 365.5]
    with pytest.raises(InputDataError, match="hazard_<upper bin edge"):
        hazard_columns(["hazard_one_year"])
    g = time_grid(np.arange(1.0, 101.0), quantiles=(0.1, 0.5), n_times=5)
    assert g[0] == pytest.approx(10.9) and g[-1] == pytest.approx(50.5) and len(g) == 5
