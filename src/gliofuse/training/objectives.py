"""Task objectives: head, loss, prediction columns, validation metric and batch confidence per task.

An :class:`Objective` binds a :class:`~gliofuse.tasks.TaskSpec` to its head and loss and to
what was fitted on the training fold (survival bin edges, class weights). The training loop treats every
objective alike; gradient policies ask an objective for the confidence of a partial output.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from gliofuse.data.batch import Batch
from gliofuse.errors import ConfigError
from gliofuse.models.heads import build_head
from gliofuse.tasks import TaskSpec
from gliofuse.training.losses import (
    cox_ph_loss,
    cross_entropy,
    discrete_survival_nll,
    hazards_to_risk,
    survival_bin_edges,
    survival_bins,
)

RISK_TIE_TOL = 1e-8
"""Risks closer than this count as tied (sksurv's ``concordance_index_censored`` default ``tied_tol``)."""


def batch_concordance(risk: Tensor, time: Tensor, event: Tensor) -> float | None:
    """Concordance index of ``risk`` (higher = earlier event) on a batch, as sksurv's ``concordance_index_censored``.

    A pair ``(i, j)`` is comparable when ``event_i`` and either ``time_i < time_j``, or ``time_i == time_j``
    with ``j`` censored (a censored subject outlives an event at the same time); two events at the
    same time are not compared. A comparable pair scores 1 when ``risk_i > risk_j``, 1/2 when the risks
    differ by at most :data:`RISK_TIE_TOL`, else 0. Without ties this is Harrell's C. Non-finite rows
    are dropped. Vectorised, O(n^2) memory: meant for mini-batches (gradient coordination, the
    validation metric), not for evaluation (which calls sksurv).

    Parameters
    ----------
    risk, time, event : Tensor, shape = (B,); time in any unit, event 1 = observed, 0 = censored.

    Returns
    -------
    The C-index, or None without comparable pairs.
    """
    ok = torch.isfinite(time) & torch.isfinite(event) & torch.isfinite(risk)
    r, t, e = risk[ok].double(), time[ok].double(), event[ok].bool()
    later = t.unsqueeze(0) > t.unsqueeze(1)  # [i, j]: time_j > time_i
    censored_at_same_time = (t.unsqueeze(0) == t.unsqueeze(1)) & ~e.unsqueeze(0)
    comparable = e.unsqueeze(1) & (later | censored_at_same_time)
    n = int(comparable.sum())
    if n == 0:
        return None
    diff = r.unsqueeze(1) - r.unsqueeze(0)
    tied = diff.abs() <= RISK_TIE_TOL
    score = ((diff > 0) & ~tied).double() + 0.5 * tied.double()
    return float((score * comparable).sum() / n)


class Objective:
    """One task's head, loss and prediction semantics.

    Attributes
    ----------
    task : the task.
    weight : loss weight (multi-task training).
    """

    metric_name = "metric"

    def __init__(self, task: TaskSpec, *, weight: float = 1.0) -> None:
        self.task = task
        self.weight = float(weight)

    @property
    def name(self) -> str:
        return self.task.name

    def build_head(self, in_dim: int) -> nn.Module:  # pragma: no cover - abstract
        raise NotImplementedError

    def loss(self, output: Tensor, batch: Batch) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def from_linear(self, logits: Tensor) -> Tensor:
        """A head output from a (partial) linear output (B, C): identity except for Cox (B,)."""
        return logits

    def confidence(self, output: Tensor, batch: Batch) -> float | None:  # pragma: no cover - abstract
        """How well ``output`` (e.g. one subspace's partial logits) fits the batch; None if undefined."""
        raise NotImplementedError

    def metric(self, output: Tensor, batch: Batch) -> float:  # pragma: no cover - abstract
        """Validation metric, higher = better (NaN if undefined)."""
        raise NotImplementedError

    def prediction_values(self, output: Tensor) -> dict[str, np.ndarray]:  # pragma: no cover - abstract
        """Prediction-table value columns (docs/data-contracts.md §8) from head outputs."""
        raise NotImplementedError

    def time_bins(self, time_days: Tensor) -> Tensor | None:
        """The survival time bin (int64, (B,)) of each time in days, for objectives that bin time; None here."""
        return None

    @property
    def prediction_columns(self) -> list[str]:
        """All columns of this objective's ``predictions.tsv``, in order: the task's columns plus any
        objective-specific ones (``hazard_<edge>`` of a discrete-time survival head)."""
        return list(self.task.prediction_columns)

    def state_dict(self) -> dict[str, Any]:
        """What was fitted on the training fold (for the checkpoint)."""
        return {"task": self.task.name, "kind": self.task.kind, "weight": self.weight}


class ClassificationObjective(Objective):
    """Cross-entropy on ``prob_<class>`` softmax outputs; metric accuracy; confidence = summed true-class probability."""

    metric_name = "accuracy"

    def __init__(self, task: TaskSpec, *, weight: float = 1.0, class_weights: Tensor | None = None) -> None:
        super().__init__(task, weight=weight)
        self.class_weights = class_weights

    def labels(self, batch: Batch) -> Tensor:
        """The task's labels in ``batch`` (``batch.labels[task]`` in multi-task batches, else ``batch.label``)."""
        return batch.labels.get(self.task.name, batch.label)

    def build_head(self, in_dim: int) -> nn.Module:
        return build_head("classification", in_dim, self.task.n_classes)

    def loss(self, output: Tensor, batch: Batch) -> Tensor:
        y = self.labels(batch)
        if self.class_weights is None:
            return cross_entropy(output.float(), y)
        if not bool((y >= 0).any()):
            return output.sum() * 0.0
        w = self.class_weights.to(output.device)
        return nn.functional.cross_entropy(output.float(), y.long(), weight=w, ignore_index=-1)

    def confidence(self, output: Tensor, batch: Batch) -> float | None:
        y = self.labels(batch)
        ok = y >= 0
        if not bool(ok.any()):
            return None
        prob = torch.softmax(output[ok].float(), dim=1)
        return float(prob.gather(1, y[ok].long().unsqueeze(1)).sum())

    def metric(self, output: Tensor, batch: Batch) -> float:
        y = self.labels(batch)
        ok = y >= 0
        if not bool(ok.any()):
            return float("nan")
        return float((output[ok].argmax(dim=1) == y[ok]).double().mean())

    def prediction_values(self, output: Tensor) -> dict[str, np.ndarray]:
        prob = torch.softmax(output.double(), dim=1).numpy()
        out = {"y_pred": prob.argmax(axis=1).astype(np.int64)}
        out.update({col: prob[:, k] for k, col in enumerate(self.task.prob_columns)})
        return out

    def state_dict(self) -> dict[str, Any]:
        cw = None if self.class_weights is None else self.class_weights.tolist()
        return {**super().state_dict(), "class_weights": cw}


class _SurvivalObjective(Objective):
    metric_name = "c_index"

    def risk(self, output: Tensor) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    @staticmethod
    def known(batch: Batch) -> Tensor:
        return torch.isfinite(batch.time_days) & torch.isfinite(batch.event)

    def confidence(self, output: Tensor, batch: Batch) -> float | None:
        return batch_concordance(self.risk(output.float()), batch.time_days, batch.event)

    def metric(self, output: Tensor, batch: Batch) -> float:
        c = batch_concordance(self.risk(output.float()), batch.time_days, batch.event)
        return float("nan") if c is None else c

    def prediction_values(self, output: Tensor) -> dict[str, np.ndarray]:
        return {"risk": self.risk(output.double()).numpy()}


class CoxObjective(_SurvivalObjective):
    """Cox partial likelihood on ``risk`` (B,); the head output is the risk (log relative hazard)."""

    def build_head(self, in_dim: int) -> nn.Module:
        return build_head("survival", in_dim, survival_loss="cox")

    def from_linear(self, logits: Tensor) -> Tensor:
        return logits.squeeze(-1)

    def risk(self, output: Tensor) -> Tensor:
        return output

    def loss(self, output: Tensor, batch: Batch) -> Tensor:
        ok = self.known(batch)
        return cox_ph_loss(output.float()[ok], batch.time_days[ok], batch.event[ok])


class DiscreteHazardObjective(_SurvivalObjective):
    """Discrete-time hazard NLL on ``n_bins`` bins whose edges are training-fold quantiles of survival time.

    Parameters
    ----------
    edges : inner bin edges (n_bins - 1,) in days (:func:`~gliofuse.training.losses.survival_bin_edges`).
    alpha : extra weight of the uncensored term.
    """

    def __init__(self, task: TaskSpec, *, edges: Tensor, alpha: float = 0.0, weight: float = 1.0,
                 closed: str = "right") -> None:
        super().__init__(task, weight=weight)
        self.edges = edges.double()
        self.alpha = float(alpha)
        self.closed = closed

    @property
    def n_bins(self) -> int:
        return int(self.edges.numel()) + 1

    @property
    def hazard_columns(self) -> list[str]:
        """``hazard_<upper bin edge in days>`` per bin (``hazard_inf`` for the last, open bin).

        Edges are written in the shortest form that reads back as the same float64 (``hazard_730``,
        ``hazard_365.5``), the format :func:`gliofuse.evaluation.survival.hazard_columns` parses.
        """
        uppers = [*self.edges.tolist(), float("inf")]
        return [f"hazard_{np.format_float_positional(e, trim='-')}" for e in uppers]

    @property
    def prediction_columns(self) -> list[str]:
        return [*self.task.prediction_columns, *self.hazard_columns]

    def prediction_values(self, output: Tensor) -> dict[str, np.ndarray]:
        """``risk`` (B,) and the per-bin hazards ``h_k = sigmoid(logit_k)`` (one ``hazard_<edge>`` column each).

        Bin k holds times ``edges[k-1] < t <= edges[k]`` (:func:`~gliofuse.training.losses.survival_bins`),
        so ``S(edges[k]) = prod_{j <= k} (1 - h_j)``.
        """
        if output.ndim != 2 or output.shape[1] != self.n_bins:
            raise ValueError(f"expected hazard logits (B, {self.n_bins}), got shape {tuple(output.shape)}.")
        hazards = torch.sigmoid(output.double())
        values = {"risk": hazards_to_risk(hazards).numpy()}
        values.update({col: hazards[:, k].numpy() for k, col in enumerate(self.hazard_columns)})
        return values

    def build_head(self, in_dim: int) -> nn.Module:
        return build_head("survival", in_dim, survival_loss="nll", n_bins=self.n_bins)

    def risk(self, output: Tensor) -> Tensor:
        return hazards_to_risk(torch.sigmoid(output))

    def time_bins(self, time_days: Tensor) -> Tensor:
        """Bin k of ``edges[k-1] < t <= edges[k]`` (``closed="left"``: ``edges[k-1] <= t < edges[k]``) per time in
        days (:func:`~gliofuse.training.losses.survival_bins`)."""
        return survival_bins(time_days, self.edges, closed=self.closed)

    def loss(self, output: Tensor, batch: Batch) -> Tensor:
        ok = self.known(batch)
        bins = self.time_bins(batch.time_days[ok])
        return discrete_survival_nll(torch.sigmoid(output.float()[ok]), bins, batch.event[ok], alpha=self.alpha)

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "bin_edges_days": self.edges.tolist(), "bin_closed": self.closed,
                "alpha": self.alpha}


def build_objective(task: TaskSpec, *, train_time_days: np.ndarray, train_labels: np.ndarray | None,
                    survival_loss: str = "cox", n_bins: int = 4, nll_alpha: float = 0.0,
                    class_weights: str | Mapping[str, Sequence[float]] = "none", weight: float = 1.0,
                    bin_closed: str = "right") -> Objective:
    """The objective of ``task``, fitted on the training patients of the fold.

    Parameters
    ----------
    task : the task.
    train_time_days : float array (n_train,), survival times of the training patients (NaN if unknown):
        bin edges of the ``nll`` loss.
    train_labels : int array (n_train,), the task's class labels on the training patients (-1 missing):
        ``balanced`` class weights.
    survival_loss, n_bins, nll_alpha, class_weights, weight, bin_closed : ``training`` settings; ``class_weights``
        ``{task: [w_0, ...]}`` gives fixed weights in class-index order (:mod:`gliofuse.tasks`).
    """
    if task.kind == "survival":
        if survival_loss == "cox":
            return CoxObjective(task, weight=weight)
        edges = survival_bin_edges(torch.as_tensor(np.asarray(train_time_days, dtype=np.float64)), n_bins)
        return DiscreteHazardObjective(task, edges=edges, alpha=nll_alpha, weight=weight, closed=bin_closed)
    cw = None
    if isinstance(class_weights, Mapping):
        fixed = class_weights.get(task.name)
        if fixed is not None:
            if len(fixed) != task.n_classes:
                raise ConfigError(f"training.class_weights.{task.name} has {len(fixed)} weights but the task has "
                                  f"{task.n_classes} classes {list(task.class_names)}; give one weight per class "
                                  "in that order.")
            cw = torch.as_tensor([float(w) for w in fixed], dtype=torch.float32)
    elif class_weights == "balanced" and train_labels is not None:
        y = np.asarray(train_labels)
        y = y[y >= 0]
        counts = np.bincount(y, minlength=task.n_classes).astype(np.float64)
        w = np.where(counts > 0, len(y) / (task.n_classes * np.maximum(counts, 1)), 0.0)
        cw = torch.as_tensor(w, dtype=torch.float32)
    return ClassificationObjective(task, weight=weight, class_weights=cw)


def objectives_state(objectives: Mapping[str, Objective]) -> dict[str, Any]:
    """``{task: objective.state_dict()}`` for the checkpoint."""
    return {k: o.state_dict() for k, o in objectives.items()}


def objective_from_state(task: TaskSpec, state: Mapping[str, Any]) -> Objective:
    """Rebuild a fitted objective from its :meth:`Objective.state_dict` (a checkpoint's ``objectives[task]``).

    Raises
    ------
    ConfigError
        ``state`` belongs to another task or task kind.
    """
    if state.get("task") != task.name or state.get("kind") != task.kind:
        raise ConfigError(f"objective state of task {state.get('task')!r} ({state.get('kind')}) cannot rebuild task "
                          f"{task.name!r} ({task.kind}).")
    weight = float(state.get("weight", 1.0))
    if task.kind == "classification":
        cw = state.get("class_weights")
        return ClassificationObjective(task, weight=weight,
                                       class_weights=None if cw is None else torch.as_tensor(cw, dtype=torch.float32))
    if "bin_edges_days" in state:
        return DiscreteHazardObjective(task, edges=torch.as_tensor(state["bin_edges_days"], dtype=torch.float64),
                                       alpha=float(state.get("alpha", 0.0)), weight=weight,
                                       closed=str(state.get("bin_closed", "right")))
    return CoxObjective(task, weight=weight)
