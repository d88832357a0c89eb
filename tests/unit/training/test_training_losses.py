"""Cox partial likelihood and cross-entropy against hand-computed values."""

from __future__ import annotations

import math

import pytest
import torch

from gliofuse.training.losses import cox_ph_loss, cross_entropy


def test_cox_loss_hand_computed() -> None:
    # times 1, 2, 3; events at t=1 and t=3; risk 0.5, 0, -0.5
    # t=1: 0.5 - log(e^0.5 + e^0 + e^-0.5) = 0.5 - log(3.255252) = -0.680272
    # t=3: risk set {t=3} only -> -0.5 - (-0.5) = 0
    risk = torch.tensor([0.5, 0.0, -0.5])
    loss = cox_ph_loss(risk, torch.tensor([1.0, 2.0, 3.0]), torch.tensor([1, 0, 1]))
    assert float(loss) == pytest.approx(0.680272 / 2, abs=1e-5)


def test_cox_loss_breslow_ties() -> None:
    # two events tied at t=2 share the risk set {t >= 2} = {0, 1}; censored sample at t=1 is in neither
    risk = torch.tensor([0.3, -0.2, 1.0])
    loss = cox_ph_loss(risk, torch.tensor([2.0, 2.0, 1.0]), torch.tensor([1.0, 1.0, 0.0]))
    lse = math.log(math.exp(0.3) + math.exp(-0.2))
    assert float(loss) == pytest.approx(-((0.3 - lse) + (-0.2 - lse)) / 2, abs=1e-6)


def test_cox_loss_polarity_rewards_higher_risk_for_earlier_event() -> None:
    time, event = torch.tensor([1.0, 5.0, 9.0]), torch.tensor([1.0, 1.0, 1.0])
    good = cox_ph_loss(torch.tensor([2.0, 0.0, -2.0]), time, event)
    bad = cox_ph_loss(torch.tensor([-2.0, 0.0, 2.0]), time, event)
    assert float(good) < float(bad)


def test_cox_loss_without_events_is_zero_with_graph() -> None:
    risk = torch.randn(4, requires_grad=True)
    loss = cox_ph_loss(risk, torch.arange(4.0), torch.zeros(4))
    loss.backward()
    assert float(loss.detach()) == 0.0 and risk.grad is not None


def test_cox_loss_rejects_shape_mismatch() -> None:
    with pytest.raises(ValueError, match="1-D risk, time, event"):
        cox_ph_loss(torch.zeros(3, 1), torch.zeros(3), torch.zeros(3))


def test_cross_entropy_ignores_missing_labels() -> None:
    logits = torch.tensor([[2.0, 0.0, 0.0], [0.0, 1.0, 0.0], [5.0, 5.0, 5.0]])
    loss = cross_entropy(logits, torch.tensor([0, 1, -1]))
    expected = torch.nn.functional.cross_entropy(logits[:2], torch.tensor([0, 1]))
    torch.testing.assert_close(loss, expected)
    assert float(cross_entropy(logits, torch.full((3,), -1))) == 0.0


def test_discrete_survival_nll_matches_hand_computation() -> None:
    from gliofuse.training.losses import discrete_survival_nll, hazards_to_risk

    h = torch.tensor([[0.2, 0.5, 0.4], [0.1, 0.3, 0.6]], dtype=torch.float64)
    bins = torch.tensor([1, 2])
    event = torch.tensor([1.0, 0.0], dtype=torch.float64)
    # patient 0: death in bin 1 -> -log S_0 - log h_1 = -log(0.8) - log(0.5)
    # patient 1: censored in bin 2 -> -log S_2 = -log(0.9 * 0.7 * 0.4)
    expected = (-math.log(0.8) - math.log(0.5) - math.log(0.9 * 0.7 * 0.4)) / 2
    assert float(discrete_survival_nll(h, bins, event)) == pytest.approx(expected)
    unc = -math.log(0.8) - math.log(0.5)
    assert float(discrete_survival_nll(h, bins, event, alpha=0.4)) == pytest.approx(0.6 * expected + 0.4 * unc / 2)
    # risk = -sum_k S_k: higher hazards -> higher risk
    risk = hazards_to_risk(torch.tensor([[0.1, 0.1], [0.5, 0.5]]))
    assert risk[1] > risk[0] and float(risk[0]) == pytest.approx(-(0.9 + 0.81))


def test_survival_bins_from_training_quantiles() -> None:
    from gliofuse.training.losses import survival_bin_edges, survival_bins

    t = torch.tensor([10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0, 80.0])
    edges = survival_bin_edges(t, 4)
    torch.testing.assert_close(edges, torch.quantile(t.double(), torch.tensor([0.25, 0.5, 0.75], dtype=torch.float64)))
    assert survival_bins(torch.tensor([5.0, 27.5, 27.6, 1000.0]), edges).tolist() == [0, 0, 1, 3]
    tied = survival_bin_edges(torch.tensor([5.0, 5.0, 5.0, 5.0, 9.0]), 4)
    assert bool((tied[1:] > tied[:-1]).all())
