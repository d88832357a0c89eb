"""Fit one assembled fold and write its outputs: device, seeding, optimisation, resume, the loop, the tables.

Outputs in ``out_dir`` (docs/data-contracts.md §8): ``predictions.tsv``, ``history.tsv`` (rewritten after
every epoch), ``gc_dynamics.tsv``, ``checkpoint.pt`` (the selected epoch: best or last), ``attention.h5``
(§10; the test patients' per-patch weights, for models whose ``ModelOutput.attention`` is set) and, while
training, ``last.pt`` (everything needed to resume after the last finished epoch; removed at the end).
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from torch import nn

from gliofuse.config import OptimConfig
from gliofuse.data.datasets import PatientBagDataset
from gliofuse.device import resolve_device
from gliofuse.io import write_table_
from gliofuse.seed import seed_everything
from gliofuse.tasks import SPLITS, TaskSpec
from gliofuse.training.assemble import FoldRun
from gliofuse.training.checkpoint import (
    LAST_CHECKPOINT,
    cpu_state,
    fold_checkpoint,
    load_resume_state_,
    rng_state,
    save_checkpoint_,
    save_epoch_checkpoint_,
    set_rng_state,
)
from gliofuse.training.loop import LoopState, Trainee, run_epochs_
from gliofuse.training.optim import Optimisation
from gliofuse.training.policies import GradientPolicy, build_policies, dynamics_frame
from gliofuse.training.predict import (
    ATTENTION_FILE,
    predict,
    prediction_frame,
    targets_batch,
    write_attention_,
)
from gliofuse.training.provenance import jsonable_str
from gliofuse.training.sampling import balanced_weights, sampling_strata
from gliofuse.training.weighting import build_task_weighting

logger = logging.getLogger(__name__)

HISTORY_COLUMNS: tuple[str, ...] = ("epoch", "train_loss", "val_loss", "val_metric", "train_task_loss",
                                    "train_aux_loss", "lr", "seconds")
"""Leading columns of ``history.tsv``; ``aux_<name>`` (mean training aux losses), ``train_l1_loss`` (the
``l1 * sum |w|`` term, part of ``train_loss``; only with ``l1 > 0``) and, in multi-task training,
``val_loss_<task>`` follow."""


@dataclass
class FitResult:
    """What :func:`fit_fold_` produced (also written to ``out_dir``)."""

    best_epoch: int
    best_loss: float
    monitor: str
    history: pd.DataFrame
    predictions: pd.DataFrame
    seconds: float
    resumed_from: int = 0


def history_frame(history: list[dict[str, float]]) -> pd.DataFrame:
    """``history.tsv``: :data:`HISTORY_COLUMNS`, then the other logged columns sorted by name."""
    extra = sorted({k for row in history for k in row} - set(HISTORY_COLUMNS))
    return pd.DataFrame(history, columns=[*HISTORY_COLUMNS, *extra])


def fit_fold_(run: FoldRun, *, optim: OptimConfig, seed: int, out_dir: Path, fold: int, prov: Mapping[str, Any],
              checkpoint_extra: Mapping[str, Any] | None = None,
              policies: Sequence[GradientPolicy] | None = None) -> FitResult:
    """Train ``run`` on ``run.datasets["train"]``, select the epoch on ``run.datasets["val"]``, write outputs.

    Loss = ``sum_t weight_t * loss_t`` over the objectives + ``sum(ModelOutput.aux_losses)`` +
    ``optim.l1 * sum |w|`` over the trainable parameters of model and heads (0: no term). The epoch is
    selected on the primary task's validation loss or metric (:func:`~gliofuse.training.loop.run_epochs_`);
    without an informative validation set (empty, no label, or no event for survival) the training task
    loss is monitored. ``optim.weighted_sampler`` draws the training items with replacement, weighted by
    the inverse size of their stratum (:func:`~gliofuse.training.sampling.sampling_strata`).

    Parameters
    ----------
    run : the assembled fold (:func:`~gliofuse.training.assemble.assemble_fold`); ``train`` may sample
        patches (``max_patches``), predictions use full bags or the fixed inference subsample
        (:func:`~gliofuse.training.assemble.inference_patch_cap`). ``val``/``test`` may be empty.
    optim : the loop settings (``training`` or a validation protocol's :meth:`~ValidationProtocolConfig.optim`).
    seed : the fold's seed (torch/NumPy/Python, and the per-epoch shuffles ``seed + epoch``).
    out_dir : receives the outputs listed in the module docstring.
    fold : written into the prediction rows and the checkpoint.
    prov : provenance record for the tables (``gliofuse.io.provenance``); a ``last.pt`` is resumed only
        when its provenance matches.
    checkpoint_extra : more checkpoint fields, after ``run.checkpoint_extra`` (e.g. the split).
    policies : gradient policies called after every backward pass; None: those the model declares
        (:func:`gliofuse.training.policies.build_policies`).
    """
    t0 = time.perf_counter()
    out_dir = Path(out_dir)
    device = resolve_device(optim.device, key="training.device")
    seed_everything(seed, device)
    train_ds, val_ds = run.datasets["train"], run.datasets.get("val")
    if len(train_ds) == 0:
        raise ValueError("fit_fold_: the training set is empty.")
    if set(run.heads) != set(run.objectives) or run.primary not in run.heads:
        raise ValueError(f"fit_fold_: heads {sorted(run.heads)} and objectives {sorted(run.objectives)} must match "
                         f"and contain the primary task {run.primary!r}.")
    policies = list(build_policies(run.model) if policies is None else policies)
    heads = nn.ModuleDict(dict(run.heads))
    weighting = build_task_weighting(run.model, run.objectives).to(device)  # multi-task loss combination
    t = Trainee(model=run.model, heads=heads, objectives=run.objectives, primary=run.primary, weighting=weighting,
                policies=policies)
    t.model.to(device)
    t.heads.to(device)
    opt = Optimisation.build(t.model, t.heads, t.weighting, optim, device)
    task = run.objectives[run.primary].task
    state = LoopState(monitor="val" if _informative(task, val_ds) else "train")
    if state.monitor == "train":
        logger.warning("fold %d: validation set is empty or has no %s; early stopping monitors the training loss",
                       fold, "event" if task.kind == "survival" else "label")
    val_targets = targets_batch(val_ds) if val_ds is not None and len(val_ds) > 0 else None
    weights = balanced_weights(sampling_strata(run.objectives[run.primary], train_ds)) if optim.weighted_sampler \
        else None
    last_path = out_dir / LAST_CHECKPOINT
    resumed = load_resume_state_(last_path, prov) if optim.resume else None
    if resumed is not None:
        _restore(t, opt, state, resumed)
        logger.info("fold %d: resuming %s/%s after epoch %d from %s", fold, run.model_name, run.primary,
                    state.epoch, last_path)
    resumed_from = state.epoch
    logger.info("fold %d: training %s for %s on %s: %d train / %d val / %d test items, %d parameters, policies %s",
                fold, run.model_name, "+".join(run.heads), device, len(train_ds), len(val_ds or []),
                len(run.datasets.get("test") or []), sum(p.numel() for p in opt.params),
                [getattr(p, "name", type(p).__name__) for p in t.policies])

    def end_epoch_(s: LoopState) -> None:
        write_table_(out_dir / "history.tsv", history_frame(s.history), prov=prov)
        save_epoch_checkpoint_(last_path, _resume_state(t, opt, s, prov))
        if optim.keep_epoch_checkpoints:
            shutil.copyfile(last_path, out_dir / f"epoch_{s.epoch:03d}.pt")

    state = run_epochs_(t, opt, state, train_ds=train_ds, val_ds=val_ds, val_targets=val_targets, optim=optim,
                        seed=seed, device=device, weights=weights, end_epoch_=end_epoch_, fold=fold)
    predictions, test_attention = _predict_splits(run, t, optim=optim, device=device, fold=fold)
    history = history_frame(state.history)
    save_checkpoint_(out_dir / "checkpoint.pt", fold_checkpoint(
        model=t.model, heads=t.heads, objectives=run.objectives, primary=run.primary, model_name=run.model_name,
        best_state=state.best_state, fit={**optim.model_dump(include=set(OptimConfig.model_fields)), "seed": seed},
        fold=fold, best_epoch=state.best_epoch, best_loss=state.best_loss, monitor=state.monitor,
        prov=prov, extra={**run.checkpoint_extra, **dict(checkpoint_extra or {})}))
    write_table_(out_dir / "history.tsv", history, prov=prov)
    write_table_(out_dir / "gc_dynamics.tsv", dynamics_frame(t.policies), prov=prov)
    attention_path = out_dir / ATTENTION_FILE
    if any(a is not None for a in test_attention):
        n_slides = write_attention_(attention_path, run.datasets["test"], test_attention, split="test",
                                    attrs={"model": run.model_name, "task": run.primary, "fold": fold,
                                           "provenance": jsonable_str(prov)})
        logger.info("fold %d: attention of %d test slide(s) -> %s", fold, n_slides, attention_path)
    else:
        attention_path.unlink(missing_ok=True)  # no stale file from an earlier run
    write_table_(out_dir / "predictions.tsv", predictions, prov=prov)
    last_path.unlink(missing_ok=True)
    seconds = time.perf_counter() - t0
    logger.info("fold %d: done in %.1f s (%s epoch %d, %s loss %.4f) -> %s", fold, seconds, optim.select_epoch,
                state.best_epoch, state.monitor, state.best_loss, out_dir)
    return FitResult(best_epoch=state.best_epoch, best_loss=state.best_loss, monitor=state.monitor, history=history,
                     predictions=predictions, seconds=seconds, resumed_from=resumed_from)


def _informative(task: TaskSpec, ds: PatientBagDataset | None) -> bool:
    """Whether ``ds`` can select the epoch for ``task``: non-empty, with a label (or, survival, >= 2 patients and an event)."""
    if ds is None or len(ds) == 0:
        return False
    if task.kind == "survival":
        return len(ds.patient_ids) >= 2 and bool(np.nansum(ds.targets.event) > 0)
    labels = ds.targets.labels.get(task.name, ds.targets.label)
    return bool((np.asarray(labels) >= 0).any())


def _predict_splits(run: FoldRun, t: Trainee, *, optim: OptimConfig, device: Any,
                    fold: int) -> tuple[pd.DataFrame, list[np.ndarray | None]]:
    """The primary task's prediction rows of every non-empty split, and the test items' attention."""
    objective = run.objectives[run.primary]
    frames, test_attention = [], []
    for split in SPLITS:
        ds = run.datasets.get(split)
        if ds is None or len(ds) == 0:
            continue
        outputs = predict(t.model, t.heads, ds, batch_size=optim.batch_size, device=device, optim=optim,
                          attention=test_attention if split == "test" else None)
        frames.append(prediction_frame(objective, outputs[run.primary], targets_batch(ds),
                                       model_name=run.model_name, fold=fold, split=split))
    return pd.concat(frames, ignore_index=True)[objective.prediction_columns], test_attention


def _resume_state(t: Trainee, opt: Optimisation, s: LoopState, prov: Mapping[str, Any]) -> dict[str, Any]:
    """``last.pt``: weights, optimisation, loop and RNG states after epoch ``s.epoch``."""
    return {"epoch": s.epoch, "model": cpu_state(t.model), "heads": cpu_state(t.heads), **opt.state_dict(),
            "weighting": t.weighting.state_dict(),
            "policies": [p.state_dict() if hasattr(p, "state_dict") else {} for p in t.policies],
            "history": s.history, "best_state": s.best_state, "best_score": s.best_score, "best_loss": s.best_loss,
            "best_epoch": s.best_epoch, "bad_epochs": s.bad_epochs, "step": s.step, "rng": rng_state(),
            "provenance": dict(prov)}


def _restore(t: Trainee, opt: Optimisation, s: LoopState, resumed: Mapping[str, Any]) -> None:
    """Load a :func:`_resume_state` into the trainee, the optimisation, the loop state and the RNGs."""
    t.model.load_state_dict(resumed["model"])
    t.heads.load_state_dict(resumed["heads"])
    t.weighting.load_state_dict(resumed.get("weighting", {}))
    opt.load_state_dict(resumed)
    for policy, pstate in zip(t.policies, resumed.get("policies", []), strict=False):
        if hasattr(policy, "load_state_dict"):
            policy.load_state_dict(pstate)
    s.history = list(resumed["history"])
    s.best_state, s.best_score, s.best_loss = resumed["best_state"], resumed["best_score"], resumed["best_loss"]
    s.best_epoch, s.bad_epochs, s.step, s.epoch = (resumed["best_epoch"], resumed["bad_epochs"], resumed["step"],
                                                   int(resumed["epoch"]))
    set_rng_state(resumed["rng"])
