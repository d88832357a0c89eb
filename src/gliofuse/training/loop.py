"""The epoch loop: train, validate, keep the best (or last) weights, stop early.

Model-agnostic: it sees a :class:`Trainee` (model, one head and objective per task, the multi-task loss
weighting, gradient policies) and the loop settings (:class:`~gliofuse.config.OptimConfig`); what is written
after each epoch is the caller's ``end_epoch_``.
"""

from __future__ import annotations

import logging
import math
import time
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from gliofuse.config import OptimConfig
from gliofuse.data.batch import Batch
from gliofuse.data.datasets import PatientBagDataset
from gliofuse.models.base import FusionModel
from gliofuse.training.checkpoint import cpu_state
from gliofuse.training.objectives import Objective
from gliofuse.training.optim import Optimisation, autocast, l1_penalty
from gliofuse.training.policies import GradientPolicy, StepContext
from gliofuse.training.predict import predict
from gliofuse.training.sampling import make_loader

logger = logging.getLogger(__name__)


@dataclass
class Trainee:
    """What the loop trains: ``model`` + ``heads`` (one per objective), combined by ``weighting``."""

    model: FusionModel
    heads: nn.ModuleDict
    objectives: Mapping[str, Objective]
    primary: str
    weighting: nn.Module
    policies: list[GradientPolicy]


@dataclass
class LoopState:
    """The loop after ``epoch`` finished epochs (resumable); ``monitor``: ``"val"`` or ``"train"``."""

    monitor: str = "val"
    epoch: int = 0
    step: int = 0
    history: list[dict[str, float]] = field(default_factory=list)
    best_state: dict[str, dict[str, Tensor]] = field(default_factory=dict)
    best_score: float = math.inf
    best_loss: float = math.inf
    best_epoch: int = 0
    bad_epochs: int = 0


def train_epoch(t: Trainee, opt: Optimisation, ds: PatientBagDataset, *, epoch: int, state: LoopState,
                optim: OptimConfig, seed: int, device: torch.device, weights: Tensor | None) -> dict[str, float]:
    """One pass over ``ds`` (``state.step`` advances); the per-item means of the logged losses."""
    t.model.train()
    t.heads.train()
    ds.set_epoch(epoch)
    sums: dict[str, float] = defaultdict(float)
    count = 0
    for batch in make_loader(ds, optim.batch_size, shuffle=True, seed=seed + epoch, weights=weights):
        batch = batch.to(device)
        with autocast(device, optim):
            out = t.model(batch)
            outputs = {task: t.heads[task](out.embedding) for task in t.objectives}
        task_losses = {task: o.loss(outputs[task].float(), batch) for task, o in t.objectives.items()}
        aux_total = sum((a.float() for a in out.aux_losses.values()), torch.zeros((), device=device))
        loss = t.weighting(task_losses) + aux_total
        l1_term = optim.l1 * l1_penalty(opt.l1_params) if opt.l1_params else None
        if l1_term is not None:
            loss = loss + l1_term
        opt.backward(loss)
        context = StepContext(epoch=epoch, step=state.step, batch=batch, output=out, heads=t.heads,
                              objectives=t.objectives, optimizer=opt.optimizer)
        for policy in t.policies:
            policy.after_backward(t.model, state.step, context)
        opt.step(optim.grad_clip)
        state.step += 1
        n = len(batch)
        count += n
        logged = {"train_loss": loss, "train_task_loss": task_losses[t.primary], "train_aux_loss": aux_total,
                  **({"train_l1_loss": l1_term} if l1_term is not None else {}),
                  **{f"aux_{name}": a for name, a in out.aux_losses.items()}}
        for name, value in logged.items():
            sums[name] += float(value.detach()) * n
        for name, v in t.weighting.log_values().items():
            sums[name] += v * n
    return {k: v / max(count, 1) for k, v in sums.items()}


def validate(t: Trainee, ds: PatientBagDataset, targets: Batch, *, optim: OptimConfig,
             device: torch.device) -> dict[str, float]:
    """``val_loss`` and ``val_metric`` of the primary task on the whole of ``ds``; ``val_loss_<task>`` in multi-task."""
    outputs = predict(t.model, t.heads, ds, batch_size=optim.batch_size, device=device, optim=optim)
    row: dict[str, float] = {}
    for task, o in t.objectives.items():
        loss = float(o.loss(outputs[task], targets))
        if len(t.objectives) > 1:
            row[f"val_loss_{task}"] = loss
        if task == t.primary:
            row["val_loss"], row["val_metric"] = loss, o.metric(outputs[task], targets)
    return row


def run_epochs_(t: Trainee, opt: Optimisation, state: LoopState, *, train_ds: PatientBagDataset,
                val_ds: PatientBagDataset | None, val_targets: Batch | None, optim: OptimConfig, seed: int,
                device: torch.device, weights: Tensor | None, end_epoch_: Callable[[LoopState], None],
                fold: int) -> LoopState:
    """Epochs ``state.epoch + 1 .. optim.epochs``, then load the selected weights into ``t``.

    After each epoch ``end_epoch_(state)`` (history, resume state) runs, then the loop stops once ``patience``
    epochs passed without a better score (``monitor`` ``"val"``: the validation loss or metric per
    ``optim.monitor``; ``"train"``: the training task loss). ``select_epoch = "last"`` keeps the final epoch.
    """
    primary = t.objectives[t.primary]
    while state.epoch < optim.epochs and state.bad_epochs < optim.patience:
        epoch, t_epoch = state.epoch + 1, time.perf_counter()
        lr = opt.optimizer.param_groups[0]["lr"]
        row: dict[str, float] = {"epoch": epoch, **train_epoch(t, opt, train_ds, epoch=epoch, state=state,
                                                              optim=optim, seed=seed, device=device, weights=weights)}
        opt.scheduler.step()
        row["val_loss"], row["val_metric"] = math.nan, math.nan
        if val_targets is not None:
            row.update(validate(t, val_ds, val_targets, optim=optim, device=device))  # type: ignore[arg-type]
        row["lr"], row["seconds"] = lr, time.perf_counter() - t_epoch
        state.history.append(row)
        state.epoch = epoch
        if state.monitor == "train":
            score = row["train_task_loss"]
        elif optim.monitor == "metric":
            score = -row["val_metric"] if math.isfinite(row["val_metric"]) else math.inf
        else:
            score = row["val_loss"]
        improved = score < state.best_score
        if improved:
            state.best_score, state.best_epoch, state.bad_epochs = score, epoch, 0
            state.best_loss = row["val_loss"] if state.monitor == "val" else row["train_task_loss"]
            state.best_state = {"model": cpu_state(t.model), "heads": cpu_state(t.heads)}
        else:
            state.bad_epochs += 1
        logger.info("fold %d epoch %d/%d: train_loss=%.4f val_loss=%.4f val_%s=%.4f (%.1f s)%s", fold, epoch,
                    optim.epochs, row["train_loss"], row["val_loss"], primary.metric_name, row["val_metric"],
                    row["seconds"], " *" if improved else "")
        end_epoch_(state)
        if state.bad_epochs >= optim.patience:
            logger.info("fold %d: early stop after epoch %d (best epoch %d, %s %s %.4f)", fold, epoch,
                        state.best_epoch, state.monitor, optim.monitor, state.best_score)
    if optim.select_epoch == "last" and state.history:  # keep the weights the loop ended with
        last = state.history[-1]
        state.best_epoch = int(last["epoch"])
        state.best_loss = last["val_loss"] if state.monitor == "val" else last["train_task_loss"]
        state.best_state = {"model": cpu_state(t.model), "heads": cpu_state(t.heads)}
    if state.best_state:
        t.model.load_state_dict(state.best_state["model"])
        t.heads.load_state_dict(state.best_state["heads"])
    return state
