"""Gradient policies: called after ``loss.backward()`` and before ``optimizer.step()``.

A model declares the policies it wants (:meth:`~gliofuse.models.base.FusionModel.gradient_policies`,
names and options only); :func:`build_policies` builds them here, so models never touch gradients
and the training loop never knows which paper a policy comes from.

:class:`SubspaceGradientCoordination` is the gradient coordination of Zhang et al. (MICCAI 2024,
arXiv:2406.13979): for a head ``Linear([z_a ; z_b])`` it compares, row by row, the gradient blocks
acting on the two parts; when they conflict (negative cosine) the block of the less confident part
(confidence ratio < 1) is adjusted against the other one.

:class:`GradientModulation` is Path-GPTOmic's (Wang et al., ISBI 2024) OGM-style modulation: the
update of the branch whose partial output fits the batch better is scaled down by
``min(1 - tanh(rho - 1), 1)``.
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
    from gliofuse.data.batch import Batch
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
    optimizer : the optimiser about to step (policies that scale a branch's step register a
        one-shot ``register_step_post_hook``); None where unknown.
    """

    epoch: int
    step: int
    batch: Batch
    output: ModelOutput
    heads: Mapping[str, nn.Module]
    objectives: Mapping[str, Objective]
    optimizer: torch.optim.Optimizer | None = None


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


class _LoggedRows:
    """Mixin of the policies below: ``rows`` (one dict per logged step/row) as ``gc_dynamics.tsv`` and as
    resumable state. Subclasses define ``rows`` and a ``columns`` property."""

    rows: list[dict[str, Any]]
    columns: list[str]

    def frame(self) -> pd.DataFrame:
        """The logged dynamics (``gc_dynamics.tsv``)."""
        return pd.DataFrame(self.rows, columns=self.columns)

    def state_dict(self) -> dict[str, Any]:
        return {"rows": list(self.rows)}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.rows = list(state.get("rows", []))


@dataclass
class SubspaceGradientCoordination(_LoggedRows):
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


def modulation_coefficient(rho: float, alpha: float = 1.0) -> float:
    """Path-GPTOmic's coefficient ``c = min(1 - tanh(alpha * (rho - 1)), 1)``: 1 for ``rho <= 1``, in (0, 1) above.

    ``rho = 2`` gives ``1 - tanh(1) = 0.2384``. NaN ``rho`` (undefined score) gives 1 (no modulation).
    """
    if not math.isfinite(rho):
        return 1.0
    return min(1.0 - math.tanh(alpha * (rho - 1.0)), 1.0)


def modulation_score(objective: Objective, output: Tensor, batch: Batch, *, score: str) -> float | None:
    """How well one branch's partial head output fits the batch (OGM-style), or None when undefined.

    Parameters
    ----------
    objective : the task's objective (Cox, discrete-hazard NLL or classification).
    output : the partial head output ``from_linear(z_m W_m^T + b/2)``: (B,) Cox risk, (B, K) logits.
    batch : targets of the step.
    score : ``"sum_prob"``: sum over the batch of each sample's probability of its observed outcome
        (Cox: the partial-likelihood probability ``exp(theta_k) / sum_{t_j >= t_k} exp(theta_j)`` of each
        observed failure; classification: softmax probability of the true class; discrete hazards:
        the likelihood of the observed bin); ``"mean_logprob"``: the mean log of those probabilities.

    References
    ----------
    Peng et al., Balanced multimodal learning via on-the-fly gradient modulation (OGM-GE), CVPR 2022.
    Wang et al., Path-GPTOmic, ISBI 2024, Eq. 5 (read as in specs/pathgptomic_m2f_baselines.md §2.2).
    """
    from gliofuse.training.objectives import ClassificationObjective, CoxObjective, DiscreteHazardObjective

    out = output.detach().double()
    if isinstance(objective, CoxObjective):
        ok = objective.known(batch)
        risk, t, ev = out[ok], batch.time_days[ok].double(), batch.event[ok].bool()
        if not bool(ev.any()):
            return None
        at_risk = t.unsqueeze(0) >= t.unsqueeze(1)
        logp = risk - torch.logsumexp(risk.unsqueeze(0).expand(len(risk), -1).masked_fill(~at_risk, -math.inf), dim=1)
        logp = logp[ev]
    elif isinstance(objective, DiscreteHazardObjective):
        from gliofuse.training.losses import discrete_survival_nll

        ok = objective.known(batch)
        if not bool(ok.any()):
            return None
        hz = torch.sigmoid(out[ok])
        bins = objective.time_bins(batch.time_days[ok])
        logp = torch.stack([-discrete_survival_nll(hz[i:i + 1], bins[i:i + 1], batch.event[ok][i:i + 1].double())
                            for i in range(hz.shape[0])])
    elif isinstance(objective, ClassificationObjective):
        y = objective.labels(batch)
        ok = y >= 0
        if not bool(ok.any()):
            return None
        logp = torch.log_softmax(out[ok], dim=1).gather(1, y[ok].long().unsqueeze(1)).squeeze(1)
    else:  # pragma: no cover - every objective is one of the above
        raise TypeError(f"gradient modulation: unsupported objective {type(objective).__name__}.")
    if score == "sum_prob":
        return float(logp.exp().sum())
    if score == "mean_logprob":
        return float(logp.mean())
    raise ValueError(f"gradient modulation score must be 'sum_prob' or 'mean_logprob', got {score!r}.")


@dataclass
class GradientModulation(_LoggedRows):
    """Path-GPTOmic's balanced training: slow down the dominant branch of a two-part concat head.

    Per step, for the head ``theta = W_a z_a + W_b z_b + b`` of each task, the partial outputs
    ``theta_m = W_m z_m + b/2`` give scores ``s_a, s_b`` (:func:`modulation_score`);
    ``rho_a = s_a / s_b`` (``sum_prob``) or ``exp(s_a - s_b)`` (``mean_logprob``), ``rho_b = 1 / rho_a``,
    and ``c_m = min(1 - tanh(alpha (rho_m - 1)), 1)`` (:func:`modulation_coefficient`). The first
    task's (the job's) coefficients scale branch m's update: ``mode="grad"`` multiplies the gradients
    of ``model.gradient_groups()[m]`` by ``c_m`` (exactly Eq. 7/8 under SGD); ``mode="lr"`` scales
    the branch's optimiser step by ``c_m`` after ``optimizer.step()`` (a per-branch learning rate;
    with Adam, scaling gradients would be almost a no-op); ``"auto"`` picks ``grad`` for SGD and
    ``lr`` otherwise; ``"off"`` only logs. The head itself is not modulated.

    Parameters
    ----------
    parts : the two part names of ``model.embedding_parts()`` / ``gradient_groups()``.
    score : ``"sum_prob"`` or ``"mean_logprob"``.
    mode : ``"auto"``, ``"grad"``, ``"lr"`` or ``"off"``.
    alpha : multiplier inside the tanh (1 in the paper).
    start_epoch, end_epoch : modulate only in these (1-based, inclusive) epochs; None: to the end.

    Notes
    -----
    One row per step and task in ``gc_dynamics.tsv``: ``score_<m>``, ``rho_<m>``, ``coef_<m>``, ``ratio``
    (= ``rho_a``), the resolved ``mode`` and ``applied`` (1 when the coefficients were used on that
    step). ``row`` is -1 (the whole head). Steps whose scores are undefined (no event, no label) get
    ``c = 1``.
    """

    parts: tuple[str, str] = ("omics", "wsi")
    score: str = "sum_prob"
    mode: str = "auto"
    alpha: float = 1.0
    start_epoch: int = 1
    end_epoch: int | None = None
    rows: list[dict[str, Any]] = field(default_factory=list)
    name: str = "gradient_modulation"

    def __post_init__(self) -> None:
        self.parts = tuple(self.parts)  # type: ignore[assignment]
        if len(self.parts) != 2:
            raise ValueError(f"GradientModulation needs two parts, got {self.parts}.")
        if self.mode not in ("auto", "grad", "lr", "off"):
            raise ValueError(f"gradient modulation mode must be auto, grad, lr or off, got {self.mode!r}.")
        if self.score not in ("sum_prob", "mean_logprob"):
            raise ValueError(f"gradient modulation score must be 'sum_prob' or 'mean_logprob', got {self.score!r}.")
        self._handle: Any = None

    @property
    def columns(self) -> list[str]:
        a, b = self.parts
        return ["epoch", "step", "task", "row", "mode", f"score_{a}", f"score_{b}", "ratio", f"rho_{a}", f"rho_{b}",
                f"coef_{a}", f"coef_{b}", "applied"]

    def _resolve_mode(self, optimizer: torch.optim.Optimizer | None) -> str:
        if self.mode != "auto":
            return self.mode
        return "grad" if optimizer is None or isinstance(optimizer, torch.optim.SGD) else "lr"

    def rho(self, s_a: float | None, s_b: float | None) -> tuple[float, float]:
        """``(rho_a, rho_b)`` from the two scores; NaN when undefined."""
        if s_a is None or s_b is None:
            return math.nan, math.nan
        if self.score == "mean_logprob":
            r = math.exp(max(min(s_a - s_b, 700.0), -700.0))
        elif s_b > 0 and s_a > 0:
            r = s_a / s_b
        else:
            return math.nan, math.nan
        return r, 1.0 / r

    @torch.no_grad()
    def after_backward(self, model: FusionModel, step: int, context: StepContext) -> None:
        a, b = self.parts
        if self._handle is not None:  # the previous optimiser step was skipped (e.g. fp16 overflow)
            self._handle.remove()
            self._handle = None
        layout = model.embedding_parts()
        emb = context.output.embedding.detach().float()
        mode = self._resolve_mode(context.optimizer)
        active = (mode != "off" and context.epoch >= self.start_epoch
                  and (self.end_epoch is None or context.epoch <= self.end_epoch))
        coefs: dict[str, float] | None = None
        for task, head in context.heads.items():
            fc = head.fc
            objective = context.objectives[task]
            w = fc.weight.detach().float()
            half = 0.0 if fc.bias is None else fc.bias.detach().float() / 2
            scores = {m: modulation_score(objective, objective.from_linear(emb[:, layout[m]] @ w[:, layout[m]].T + half),
                                          context.batch, score=self.score) for m in self.parts}
            rho_a, rho_b = self.rho(scores[a], scores[b])
            c = {a: modulation_coefficient(rho_a, self.alpha), b: modulation_coefficient(rho_b, self.alpha)}
            first = coefs is None
            if first:
                coefs = c
            self.rows.append({"epoch": context.epoch, "step": step, "task": task, "row": -1, "mode": mode,
                              f"score_{a}": math.nan if scores[a] is None else scores[a],
                              f"score_{b}": math.nan if scores[b] is None else scores[b], "ratio": rho_a,
                              f"rho_{a}": rho_a, f"rho_{b}": rho_b, f"coef_{a}": c[a], f"coef_{b}": c[b],
                              "applied": int(first and active)})
        if not active or coefs is None or all(v == 1.0 for v in coefs.values()):
            return
        groups = model.gradient_groups()
        if mode == "grad":
            for m, coef in coefs.items():
                for p in groups[m]:
                    if p.grad is not None:
                        p.grad.mul_(coef)
            return
        optimizer = context.optimizer
        if optimizer is None:
            raise ValueError("gradient modulation mode 'lr' needs the optimiser in the step context.")
        before = [(p, p.detach().clone(), coef) for m, coef in coefs.items() if coef != 1.0 for p in groups[m]]

        def rescale_step(*_: Any) -> None:
            with torch.no_grad():
                for p, old, coef in before:
                    p.copy_(old + coef * (p - old))
            if self._handle is not None:
                self._handle.remove()
                self._handle = None

        self._handle = optimizer.register_step_post_hook(rescale_step)


POLICIES: dict[str, Callable[..., Any]] = {"subspace_coordination": SubspaceGradientCoordination,
                                           "gradient_modulation": GradientModulation}
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
