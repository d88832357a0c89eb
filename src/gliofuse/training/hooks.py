"""Gradient policies: called after ``loss.backward()`` and before ``optimizer.step()``.

A model declares the policies it wants (:meth:`~gliofuse.models.base.FusionModel.gradient_policies`,
names and options only); :func:`build_policies` builds them here, so models never touch gradients
and the harness never knows which paper a policy comes from.

:class:`SubspaceGradientCoordination` is the gradient coordination of Zhang et al. (MICCAI 2024,
arXiv:2406.13979): for a head ``Linear([z_a ; z_b])`` it compares, row by row, the gradient blocks
acting on the two parts; when they conflict (negative cosine) the block of the less confident part
(confidence ratio < 1) is adjusted against the other one.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import pandas as pd
import torch
from torch import Tensor, nn

if TYPE_CHECKING:
    from gliofuse.data.datasets import Batch
    from gliofuse.models.base import FusionModel, ModelOutput
    from gliofuse.training.objectives import Objective


@dataclass
class StepContext:
    """What a gradient policy may read about the current optimisation step.

    Attributes
    ----------
    epoch, step : 1-based epoch, 0-based global step.
    batch : the (device) batch of the step.
    output : the model's output on ``batch`` (graph already back-propagated).
    heads : ``{task: head}``; every head's last layer is ``head.fc``.
    objectives : ``{task: Objective}`` (confidence of partial outputs).
    """

    epoch: int
    step: int
    batch: Batch
    output: ModelOutput
    heads: Mapping[str, nn.Module]
    objectives: Mapping[str, Objective]


class GradientPolicy(Protocol):
    """Hook called after ``loss.backward()`` (gradients unscaled) and before ``optimizer.step()``."""

    def after_backward(self, model: FusionModel, step: int, context: StepContext) -> None: ...


def project_conflict(g: Tensor, ref: Tensor) -> Tensor:
    """PCGrad-style projection: ``g - (g . r / |r|^2) r``, orthogonal to ``ref``.

    Parameters
    ----------
    g, ref : Tensor, shape = (d,).

    Returns
    -------
    Tensor, shape = (d,); ``g`` itself when ``ref`` is zero.

    References
    ----------
    Yu et al., Gradient surgery for multi-task learning (PCGrad), NeurIPS 2020.
    """
    denom = ref.dot(ref)
    if denom <= 0:
        return g
    return g - (g.dot(ref) / denom) * ref


def reflect_conflict(g: Tensor, ref: Tensor) -> Tensor:
    """The subspace-fusion original's adjustment: reflect the conflicting component, keep the orthogonal norm.

    With ``p = (g . r / |r|^2) r``: ``d = g - 2p`` (the component along ``r`` reflected) rescaled to
    ``|g - p|`` = ``|g| sin(theta)``. The cosine with ``r`` flips sign (``cos' = -cos``).

    Parameters
    ----------
    g, ref : Tensor, shape = (d,).

    Returns
    -------
    Tensor, shape = (d,); ``g`` itself when ``ref`` or the reflection is zero.
    """
    denom = ref.dot(ref)
    if denom <= 0:
        return g
    p = (g.dot(ref) / denom) * ref
    d = g - 2.0 * p
    n = d.norm()
    if n <= 0:
        return g
    return (g - p).norm() * d / n


ADJUSTMENTS: dict[str, Callable[[Tensor, Tensor], Tensor]] = {"project": project_conflict, "reflect": reflect_conflict}


def _cos(a: Tensor, b: Tensor) -> float:
    na, nb = float(a.norm()), float(b.norm())
    if na == 0 or nb == 0:
        return math.nan
    return float(a.dot(b)) / (na * nb)


@dataclass
class SubspaceGradientCoordination:
    """Gradient coordination of a two-part concat fusion head (one row of dynamics per head row and step).

    Parameters
    ----------
    parts : the two part names of ``model.embedding_parts()`` (e.g. ``("tumour", "microenvironment")``).
    mode : ``"project"`` (PCGrad projection of the weaker block, default), ``"reflect"`` (the original
        code's reflection) or ``"off"`` (log only).

    Notes
    -----
    Per step and head: partial outputs ``out_a = z_a W_a^T + b/2`` and ``out_b = z_b W_b^T + b/2``
    (``from_linear`` of the objective); confidences ``s_a, s_b`` from ``objective.confidence``
    (summed true-class probability; batch C-index for survival); ``ratio = s_a / s_b``. For each row k
    of ``W.grad`` with ``cos(g_a, g_b) < 0``: adjust ``g_a`` against ``g_b`` if ``ratio < 1``, ``g_b``
    against ``g_a`` if ``ratio > 1``. Only ``W.grad`` changes (not the bias, not upstream layers).
    A step whose confidences are undefined (no label; no comparable survival pair) is logged as
    ``skipped``.
    """

    parts: tuple[str, str]
    mode: str = "project"
    rows: list[dict[str, Any]] = field(default_factory=list)
    name: str = "subspace_coordination"

    def __post_init__(self) -> None:
        self.parts = tuple(self.parts)  # type: ignore[assignment]
        if len(self.parts) != 2:
            raise ValueError(f"SubspaceGradientCoordination needs two parts, got {self.parts}.")
        if self.mode not in (*ADJUSTMENTS, "off"):
            raise ValueError(f"gradient coordination mode must be 'project', 'reflect' or 'off', got {self.mode!r}.")

    @property
    def columns(self) -> list[str]:
        a, b = self.parts
        return ["epoch", "step", "task", "row", "mode", f"score_{a}", f"score_{b}", "ratio", "cos", "conflict",
                "weaker", "adjusted", f"adjusted_{a}", f"adjusted_{b}", "cos_after", "norm_before", "norm_after"]

    @torch.no_grad()
    def after_backward(self, model: FusionModel, step: int, context: StepContext) -> None:
        a, b = self.parts
        layout = model.embedding_parts()
        sl_a, sl_b = layout[a], layout[b]
        emb = context.output.embedding.detach().float()
        for task, head in context.heads.items():
            fc = head.fc
            grad = fc.weight.grad
            if grad is None:
                continue
            objective = context.objectives[task]
            w = fc.weight.detach().float()
            half = 0.0 if fc.bias is None else fc.bias.detach().float() / 2
            out_a = objective.from_linear(emb[:, sl_a] @ w[:, sl_a].T + half)
            out_b = objective.from_linear(emb[:, sl_b] @ w[:, sl_b].T + half)
            s_a = objective.confidence(out_a, context.batch)
            s_b = objective.confidence(out_b, context.batch)
            usable = s_a is not None and s_b is not None and s_a > 0 and s_b > 0
            ratio = s_a / s_b if usable else math.nan  # type: ignore[operator]
            g = grad.float()
            for k in range(g.shape[0]):
                ga, gb = g[k, sl_a].clone(), g[k, sl_b].clone()
                cos = _cos(ga, gb)
                row = {"epoch": context.epoch, "step": step, "task": task, "row": k, "mode": self.mode,
                       f"score_{a}": math.nan if s_a is None else s_a, f"score_{b}": math.nan if s_b is None else s_b,
                       "ratio": ratio, "cos": cos, "conflict": int(cos < 0), "weaker": "none", "adjusted": "none",
                       f"adjusted_{a}": 0, f"adjusted_{b}": 0,
                       "cos_after": cos, "norm_before": math.nan, "norm_after": math.nan}
                if not usable:
                    row["weaker"] = row["adjusted"] = "skipped"
                elif cos < 0 and ratio != 1.0:
                    weak, strong, sl, name = (ga, gb, sl_a, a) if ratio < 1 else (gb, ga, sl_b, b)
                    row["weaker"] = name
                    row["norm_before"] = float(weak.norm())
                    if self.mode != "off":
                        new = ADJUSTMENTS[self.mode](weak, strong)
                        grad[k, sl] = new.to(grad.dtype)
                        row["adjusted"] = name
                        row[f"adjusted_{name}"] = 1
                        row["norm_after"] = float(new.norm())
                        row["cos_after"] = _cos(new, strong)
                    else:
                        row["norm_after"] = row["norm_before"]
                self.rows.append(row)

    def frame(self) -> pd.DataFrame:
        """The logged dynamics (``gc_dynamics.tsv``)."""
        return pd.DataFrame(self.rows, columns=self.columns)

    def state_dict(self) -> dict[str, Any]:
        return {"rows": list(self.rows)}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.rows = list(state.get("rows", []))


POLICIES: dict[str, Callable[..., Any]] = {"subspace_coordination": SubspaceGradientCoordination}
"""Policy name (as declared by ``FusionModel.gradient_policies``) -> class."""

GC_DYNAMICS_COLUMNS: tuple[str, ...] = ("epoch", "step", "task", "row", "mode", "ratio", "cos", "conflict",
                                        "weaker", "adjusted", "cos_after", "norm_before", "norm_after")
"""Columns of ``gc_dynamics.tsv`` besides the two ``score_<part>`` columns (docs/data-contracts.md §8)."""


def build_policies(model: FusionModel) -> list[Any]:
    """Instantiate the gradient policies ``model`` declares.

    Raises
    ------
    ValueError
        Unknown policy name, or a declared part missing from ``model.gradient_groups()`` /
        ``model.embedding_parts()``.
    """
    out = []
    groups = model.gradient_groups()
    layout = model.embedding_parts()
    for name, options in model.gradient_policies():
        if name not in POLICIES:
            raise ValueError(f"model declares unknown gradient policy {name!r}; known: {sorted(POLICIES)}.")
        parts = tuple(options.get("parts", ()))
        missing = [p for p in parts if p not in groups or p not in layout]
        if missing:
            raise ValueError(f"gradient policy {name!r}: part(s) {missing} are not parameter groups "
                             f"({sorted(groups)}) and embedding parts ({sorted(layout)}) of the model.")
        out.append(POLICIES[name](**options))
    return out


def dynamics_frame(policies: list[Any]) -> pd.DataFrame:
    """Rows of every policy with a ``frame()`` (concatenated), or an empty ``gc_dynamics.tsv`` frame."""
    frames = [p.frame() for p in policies if hasattr(p, "frame")]
    if frames:
        return pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    return pd.DataFrame(columns=list(GC_DYNAMICS_COLUMNS))
