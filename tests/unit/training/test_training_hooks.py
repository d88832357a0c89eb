"""Gradient coordination: adjustment geometry and the policy on a concat fusion head."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from gliofuse.data.datasets import Batch
from gliofuse.models.base import ModelOutput
from gliofuse.training.hooks import (
    StepContext,
    SubspaceGradientCoordination,
    build_policies,
    project_conflict,
    reflect_conflict,
)
from gliofuse.training.objectives import ClassificationObjective, CoxObjective, batch_concordance
from gliofuse.training.tasks import get_task


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
