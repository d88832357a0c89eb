"""Combining the task losses of multi-task training: fixed weights or learned uncertainty weights.

The model declares which (:meth:`~gliofuse.models.base.FusionModel.loss_weighting`); the fit
builds the combiner with :func:`build_task_weighting`, optimises its parameters with the model's and
calls it on the per-task losses of every step.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

if TYPE_CHECKING:
    from gliofuse.models.base import FusionModel
    from gliofuse.training.objectives import Objective

WEIGHTINGS: tuple[str, ...] = ("fixed", "uncertainty")


class FixedWeighting(nn.Module):
    """``L = sum_t w_t L_t`` with the objectives' weights (``training.loss_weights``; default 1)."""

    def __init__(self, weights: Mapping[str, float]) -> None:
        super().__init__()
        self.weights = {t: float(w) for t, w in weights.items()}

    def forward(self, losses: Mapping[str, Tensor]) -> Tensor:
        """``{task: scalar loss}`` -> scalar."""
        return sum(self.weights[t] * loss for t, loss in losses.items())  # type: ignore[return-value]

    def log_values(self) -> dict[str, float]:
        """Per-epoch history columns (none for fixed weights)."""
        return {}


class UncertaintyWeighting(nn.Module):
    """Homoscedastic-uncertainty weighting: ``L = sum_t exp(-s_t) L_t + s_t`` with learnable ``s_t = log sigma_t^2``.

    Parameters
    ----------
    tasks : task names; one log-variance each, initialised at 0 (weight 1).

    Notes
    -----
    ``s_t`` settles where ``exp(-s_t) L_t = 1``: a task with a larger loss gets a smaller weight. The
    fixed ``training.loss_weights`` are not used. The ``1/2`` of Kendall et al.'s Gaussian form is
    absorbed into ``s_t``, as in the specs (``sum_t exp(-s_t) L_t + s_t``).

    References
    ----------
    Kendall, Gal and Cipolla, Multi-task learning using uncertainty to weigh losses for scene geometry
    and semantics, CVPR 2018, arXiv:1705.07115.
    """

    def __init__(self, tasks: list[str]) -> None:
        super().__init__()
        self.log_vars = nn.ParameterDict({t: nn.Parameter(torch.zeros(())) for t in tasks})

    def forward(self, losses: Mapping[str, Tensor]) -> Tensor:
        """``{task: scalar loss}`` -> scalar."""
        return sum(torch.exp(-self.log_vars[t]) * loss + self.log_vars[t]  # type: ignore[return-value]
                   for t, loss in losses.items())

    def log_values(self) -> dict[str, float]:
        """``{"log_var_<task>": s_t}`` (history.tsv columns)."""
        return {f"log_var_{t}": float(p.detach()) for t, p in self.log_vars.items()}


def build_task_weighting(model: FusionModel | Any, objectives: Mapping[str, Objective]) -> nn.Module:
    """The loss combiner ``model`` declares, for ``objectives``.

    ``"uncertainty"`` with a single objective falls back to fixed weights (nothing to balance).

    Raises
    ------
    ValueError
        Unknown weighting name.
    """
    kind = getattr(model, "loss_weighting", lambda: "fixed")()
    if kind not in WEIGHTINGS:
        raise ValueError(f"model declares unknown loss weighting {kind!r}; known: {list(WEIGHTINGS)}.")
    if kind == "uncertainty" and len(objectives) > 1:
        return UncertaintyWeighting(list(objectives))
    return FixedWeighting({t: o.weight for t, o in objectives.items()})
