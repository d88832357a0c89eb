"""Gradient coordination: adjustment geometry and the policy on a concat fusion head."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

from gliofuse.data.batch import Batch
from gliofuse.models.base import ModelOutput
from gliofuse.tasks import get_task
from gliofuse.training.objectives import ClassificationObjective, CoxObjective, batch_concordance
from gliofuse.training.policies import (
    GradientModulation,
    StepContext,
    SubspaceGradientCoordination,
    build_policies,
    modulation_coefficient,
    modulation_score,
    project_conflict,
    reflect_conflict,
)


def _cos(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(a.dot(b) / (a.norm() * b.norm()))


@pytest.fixture
def conflicting() -> tuple[torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    g, r = torch.randn(16, dtype=torch.float64), torch.randn(16, dtype=torch.float64)
    if g.dot(r) > 0:
        g = -g
    return g, r


def test_projection_gives_orthogonal_gradients(conflicting: tuple[torch.Tensor, torch.Tensor]) -> None:
    g, r = conflicting
    p = project_conflict(g, r)
    assert abs(float(p.dot(r))) < 1e-10
    torch.testing.assert_close(p + (g.dot(r) / r.dot(r)) * r, g)  # only the component along r is removed
    torch.testing.assert_close(project_conflict(g, torch.zeros_like(r)), g)


def test_reflection_flips_the_cosine_and_keeps_the_orthogonal_norm(
        conflicting: tuple[torch.Tensor, torch.Tensor]) -> None:
    g, r = conflicting
    cos = _cos(g, r)
    out = reflect_conflict(g, r)
    assert _cos(out, r) == pytest.approx(-cos, abs=1e-10)
    assert float(out.norm()) == pytest.approx(float(g.norm()) * math.sqrt(1 - cos**2), rel=1e-10)
    assert float(out.norm()) == pytest.approx(float(project_conflict(g, r).norm()), rel=1e-10)


class _TwoPartModel(nn.Module):
    def embedding_parts(self) -> dict[str, slice]:
        return {"tumour": slice(0, 3), "microenvironment": slice(3, 6)}

    def gradient_groups(self) -> dict[str, list[nn.Parameter]]:
        return {"tumour": [], "microenvironment": []}

    def gradient_policies(self) -> list[tuple[str, dict[str, object]]]:
        return [("subspace_coordination", {"mode": "project", "parts": ("tumour", "microenvironment")})]


def _context(emb: torch.Tensor, head: nn.Module, objective: object, label: torch.Tensor) -> StepContext:
    n = emb.shape[0]
    batch = Batch(wsi=None, wsi_mask=None, omics=None, patient_ids=[f"P{i}" for i in range(n)],
                  time_days=torch.arange(1.0, n + 1), event=torch.ones(n), label=label)
    return StepContext(epoch=1, step=0, batch=batch, output=ModelOutput(embedding=emb), heads={"grade": head},
                       objectives={"grade": objective})


@pytest.mark.parametrize("mode", ["project", "reflect", "off"])
def test_policy_adjusts_only_the_weaker_part_of_conflicting_rows(mode: str) -> None:
    torch.manual_seed(1)
    task = get_task("grade")
    head = nn.Linear(6, 3)
    # the tumour half of the embedding predicts the labels, the microenvironment half is noise
    label = torch.tensor([0, 1, 2, 0, 1, 2])
    emb = torch.randn(6, 6) * 0.1
    with torch.no_grad():
        head.weight.zero_()
        head.weight[torch.arange(3), torch.arange(3)] = 5.0
        emb[torch.arange(6), label] += 2.0
    grad = torch.randn(3, 6)
    grad[0, 3:] = -grad[0, :3]  # row 0: conflicting (cos = -1 ... made partial below)
    grad[0, 3] += 0.5
    grad[1, 3:] = grad[1, :3]  # row 1: agreeing
    head.weight.grad = grad.clone()
    head.bias.grad = torch.ones(3)
    policy = SubspaceGradientCoordination(parts=("tumour", "microenvironment"), mode=mode)
    policy.after_backward(_TwoPartModel(), 0, _context(emb, SimpleNamespace(fc=head), ClassificationObjective(task),
                                                       label))
    frame = policy.frame()
    assert list(frame["row"]) == [0, 1, 2] and len(frame) == 3
    assert (frame["score_tumour"] > frame["score_microenvironment"]).all() and (frame["ratio"] > 1).all()
    row0 = frame.iloc[0]
    assert row0["conflict"] == 1 and row0["weaker"] == "microenvironment"
    assert frame.iloc[1]["conflict"] == 0 and frame.iloc[1]["adjusted"] == "none"
    new = head.weight.grad
    torch.testing.assert_close(new[:, :3], grad[:, :3])  # the stronger (tumour) blocks never change
    torch.testing.assert_close(new[1], grad[1])
    torch.testing.assert_close(head.bias.grad, torch.ones(3))
    if mode == "off":
        torch.testing.assert_close(new, grad)
        assert row0["adjusted"] == "none"
    else:
        assert row0["adjusted"] == "microenvironment"
        assert (row0["adjusted_microenvironment"], row0["adjusted_tumour"]) == (1, 0)
        expected = (project_conflict if mode == "project" else reflect_conflict)(grad[0, 3:], grad[0, :3])
        torch.testing.assert_close(new[0, 3:], expected)
        assert row0["cos_after"] == pytest.approx(0.0 if mode == "project" else -row0["cos"], abs=1e-5)


def test_policy_skips_survival_batches_without_comparable_pairs() -> None:
    head = nn.Linear(6, 1, bias=False)
    head.weight.grad = torch.randn(1, 6)
    before = head.weight.grad.clone()
    ctx = _context(torch.randn(4, 6), SimpleNamespace(fc=head), None, torch.full((4,), -1))
    ctx.batch.event = torch.zeros(4)  # all censored: no comparable pair, no confidence
    ctx = StepContext(epoch=1, step=3, batch=ctx.batch, output=ctx.output, heads={"survival": SimpleNamespace(fc=head)},
                      objectives={"survival": CoxObjective(get_task("survival"))})
    policy = SubspaceGradientCoordination(parts=("tumour", "microenvironment"))
    policy.after_backward(_TwoPartModel(), 3, ctx)
    assert policy.frame()["adjusted"].tolist() == ["skipped"]
    torch.testing.assert_close(head.weight.grad, before)


def test_build_policies_reads_the_model_declaration() -> None:
    [policy] = build_policies(_TwoPartModel())  # type: ignore[arg-type]
    assert isinstance(policy, SubspaceGradientCoordination) and policy.parts == ("tumour", "microenvironment")
    bad = _TwoPartModel()
    bad.gradient_groups = lambda: {"tumour": []}  # type: ignore[method-assign]
    with pytest.raises(ValueError, match="microenvironment"):
        build_policies(bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="mode"):
        SubspaceGradientCoordination(parts=("a", "b"), mode="sideways")


def test_batch_concordance_matches_hand_count() -> None:
    risk = torch.tensor([3.0, 2.0, 1.0, 2.0])
    time = torch.tensor([1.0, 2.0, 3.0, 4.0])
    event = torch.tensor([1.0, 1.0, 0.0, 1.0])
    # comparable (i event, t_i < t_j): (0,1),(0,2),(0,3),(1,2),(1,3); concordant 1+1+1+1, tie (1,3) = 0.5
    assert batch_concordance(risk, time, event) == pytest.approx(4.5 / 5)
    assert batch_concordance(risk, time, torch.zeros(4)) is None


def _sksurv_cindex(risk: np.ndarray, time: np.ndarray, event: np.ndarray) -> float | None:
    from sksurv.exceptions import NoComparablePairException
    from sksurv.metrics import concordance_index_censored

    if not event.any():  # sksurv raises ValueError("All samples are censored")
        return None
    try:
        return float(concordance_index_censored(event.astype(bool), time, risk)[0])
    except NoComparablePairException:
        return None


@pytest.mark.parametrize("ties", ["none", "times", "risks", "both"])
def test_batch_concordance_equals_sksurv(ties: str) -> None:
    rng = np.random.default_rng(len(ties))
    n_tied_pairs = 0
    for _ in range(60):
        n = int(rng.integers(2, 40))
        time = rng.integers(1, 9, n).astype(float) if ties in ("times", "both") else rng.permutation(n) + 1.0
        risk = np.round(rng.normal(size=n), 1) if ties in ("risks", "both") else rng.normal(size=n)
        if ties in ("risks", "both"):
            risk[: n // 3] += 1e-10  # within sksurv's tied_tol of a rounded twin: still a tie
        event = (rng.random(n) < 0.6).astype(float)
        expected = _sksurv_cindex(risk, time, event)
        got = batch_concordance(torch.as_tensor(risk), torch.as_tensor(time), torch.as_tensor(event))
        assert (got is None) == (expected is None)
        if expected is not None:
            assert got == pytest.approx(expected, abs=1e-12)
        n_tied_pairs += int((time[:, None] == time[None, :]).sum() - n)
    assert (n_tied_pairs > 0) == (ties in ("times", "both"))


def test_batch_concordance_counts_an_event_before_a_censoring_at_the_same_time() -> None:
    # (0, 1): event and censored at t=5 -> comparable (concordant); (0, 2) and (2, 0): two events at t=5 -> not
    risk = torch.tensor([2.0, 1.0, 3.0, 0.0])
    time = torch.tensor([5.0, 5.0, 5.0, 9.0])
    event = torch.tensor([1.0, 0.0, 1.0, 0.0])
    # comparable: (0,1) 1, (0,3) 1, (2,1) 1, (2,3) 1 -> 4 / 4
    assert batch_concordance(risk, time, event) == pytest.approx(1.0)
    assert batch_concordance(-risk, time, event) == pytest.approx(0.0)


# ----------------------------------------------------------------------------- gradient modulation (Path-GPTOmic)
class _BranchModel(nn.Module):
    """Embedding [z_omics (2) ; z_wsi (2)] and one parameter per branch."""

    def __init__(self) -> None:
        super().__init__()
        self.p_omics = nn.Parameter(torch.ones(3))
        self.p_wsi = nn.Parameter(torch.ones(3))

    def embedding_parts(self) -> dict[str, slice]:
        return {"omics": slice(0, 2), "wsi": slice(2, 4)}

    def gradient_groups(self) -> dict[str, list[nn.Parameter]]:
        return {"omics": [self.p_omics], "wsi": [self.p_wsi]}

    def gradient_policies(self) -> list[tuple[str, dict[str, object]]]:
        return [("gradient_modulation", {"parts": ("omics", "wsi"), "mode": "grad"})]


def _cox_context(optimizer: torch.optim.Optimizer | None = None, epoch: int = 1) -> StepContext:
    """theta_omics = (1, 0, 0), theta_wsi = (0, 0, 0); times 1, 2, 3; events 1, 1, 0."""
    emb = torch.tensor([[1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 5.0, 0.0]])
    head = nn.Module()
    head.fc = nn.Linear(4, 1, bias=False)
    with torch.no_grad():
        head.fc.weight.copy_(torch.tensor([[1.0, 0.0, 0.0, 0.0]]))  # W_wsi = 0: theta_wsi = 0 everywhere
    batch = Batch(wsi=None, wsi_mask=None, omics=None, patient_ids=["a", "b", "c"],
                  time_days=torch.tensor([1.0, 2.0, 3.0]), event=torch.tensor([1.0, 1.0, 0.0]),
                  label=torch.full((3,), -1))
    return StepContext(epoch=epoch, step=0, batch=batch, output=ModelOutput(embedding=emb), heads={"survival": head},
                       objectives={"survival": CoxObjective(get_task("survival"))}, optimizer=optimizer)


def _hand_rho(score: str) -> float:
    e = math.e
    p_omics = [e / (e + 2), 1 / 2]  # partial-likelihood probabilities of the two observed failures
    p_wsi = [1 / 3, 1 / 2]
    if score == "sum_prob":
        return sum(p_omics) / sum(p_wsi)
    return math.exp(sum(map(math.log, p_omics)) / 2 - sum(map(math.log, p_wsi)) / 2)


@pytest.mark.parametrize("score", ["sum_prob", "mean_logprob"])
def test_modulation_coefficients_equal_hand_computed_values(score: str) -> None:
    model = _BranchModel()
    for p in model.parameters():
        p.grad = torch.ones(3)
    policy = GradientModulation(parts=("omics", "wsi"), score=score, mode="grad")
    policy.after_backward(model, 0, _cox_context())
    rho = _hand_rho(score)
    c_omics = 1 - math.tanh(rho - 1)
    assert rho > 1 and 0 < c_omics < 1
    row = policy.frame().iloc[0]
    assert row["rho_omics"] == pytest.approx(rho, rel=1e-9)
    assert row["rho_wsi"] == pytest.approx(1 / rho, rel=1e-9)
    assert row["coef_omics"] == pytest.approx(c_omics, rel=1e-9)
    assert row["coef_wsi"] == 1.0  # min(1 - tanh(rho - 1), 1) with rho < 1
    assert (row["mode"], row["applied"], row["row"], row["task"]) == ("grad", 1, -1, "survival")
    torch.testing.assert_close(model.p_omics.grad, torch.full((3,), c_omics))  # dominant branch slowed down
    torch.testing.assert_close(model.p_wsi.grad, torch.ones(3))


def test_modulation_coefficient_formula() -> None:
    assert modulation_coefficient(2.0) == pytest.approx(1 - math.tanh(1.0))
    assert modulation_coefficient(0.3) == 1.0 and modulation_coefficient(1.0) == 1.0
    assert modulation_coefficient(math.nan) == 1.0
    assert modulation_coefficient(1.5, alpha=2.0) == pytest.approx(1 - math.tanh(1.0))


def test_lr_mode_scales_the_branch_step_and_auto_picks_by_optimiser() -> None:
    model = _BranchModel()
    opt = torch.optim.Adam(model.parameters(), lr=0.1)
    for p in model.parameters():
        p.grad = torch.tensor([1.0, -2.0, 0.5])
    policy = GradientModulation(mode="auto")
    policy.after_backward(model, 0, _cox_context(opt))
    assert policy.rows[-1]["mode"] == "lr"
    before = model.p_omics.detach().clone()
    grads = model.p_omics.grad.clone()
    opt.step()
    c = 1 - math.tanh(_hand_rho("sum_prob") - 1)
    # Adam's first step is lr * sign(g) per element; the omics step is scaled by c, the wsi step is not
    torch.testing.assert_close(model.p_omics.detach(), before - c * 0.1 * torch.sign(grads))
    torch.testing.assert_close(model.p_wsi.detach(), torch.ones(3) - 0.1 * torch.sign(grads))
    torch.testing.assert_close(model.p_omics.grad, grads)  # gradients untouched in lr mode
    opt.step()  # the one-shot hook is gone: a later step is not rescaled again
    assert policy._handle is None
    sgd_policy = GradientModulation(mode="auto")
    sgd_policy.after_backward(model, 0, _cox_context(torch.optim.SGD(model.parameters(), lr=0.1)))
    assert sgd_policy.rows[-1]["mode"] == "grad"


def test_off_mode_and_epoch_window_only_log() -> None:
    for policy, ctx in ((GradientModulation(mode="off"), _cox_context()),
                        (GradientModulation(mode="grad", start_epoch=2), _cox_context(epoch=1))):
        model = _BranchModel()
        for p in model.parameters():
            p.grad = torch.ones(3)
        policy.after_backward(model, 0, ctx)
        assert policy.rows[-1]["applied"] == 0 and policy.rows[-1]["coef_omics"] < 1
        torch.testing.assert_close(model.p_omics.grad, torch.ones(3))


def test_classification_score_is_the_summed_true_class_probability() -> None:
    objective = ClassificationObjective(get_task("grade"))
    logits = torch.tensor([[2.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    batch = Batch(wsi=None, wsi_mask=None, omics=None, patient_ids=["a", "b"], time_days=torch.ones(2),
                  event=torch.ones(2), label=torch.tensor([0, 2]))
    e = math.e
    expect = e**2 / (e**2 + 2) + 1 / (e + 2)
    assert modulation_score(objective, logits, batch, score="sum_prob") == pytest.approx(expect)
    assert modulation_score(objective, logits, batch, score="mean_logprob") == pytest.approx(
        (math.log(e**2 / (e**2 + 2)) + math.log(1 / (e + 2))) / 2)
    no_label = Batch(wsi=None, wsi_mask=None, omics=None, patient_ids=["a", "b"], time_days=torch.ones(2),
                     event=torch.ones(2), label=torch.tensor([-1, -1]))
    assert modulation_score(objective, logits, no_label, score="sum_prob") is None


def test_build_policies_builds_the_declared_modulation() -> None:
    (policy,) = build_policies(_BranchModel())  # type: ignore[arg-type]
    assert isinstance(policy, GradientModulation) and policy.mode == "grad"
    assert list(policy.frame().columns) == ["epoch", "step", "task", "row", "mode", "score_omics", "score_wsi",
                                            "ratio", "rho_omics", "rho_wsi", "coef_omics", "coef_wsi", "applied"]
