"""Fit one model on one fold: optimisation, early stopping, checkpoint and prediction tables.

The harness is model-agnostic: it sees a :class:`~gliofuse.models.base.FusionModel`, a task head
and a :class:`~gliofuse.training.tasks.TaskSpec`, never a paper-specific branch. Architecture
specific terms arrive through ``ModelOutput.aux_losses``; gradient manipulation through ``hooks``.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader

from gliofuse import __version__
from gliofuse.data.collate import collate_bags
from gliofuse.data.datasets import Batch, PatientBagDataset
from gliofuse.io import atomic_path, code_version, write_table_
from gliofuse.models.base import FusionModel
from gliofuse.seed import seed_everything
from gliofuse.training.losses import cox_ph_loss, cross_entropy
from gliofuse.training.tasks import SPLITS, TaskSpec

logger = logging.getLogger(__name__)


class GradientPolicy(Protocol):
    """Hook called after ``loss.backward()`` and before ``optimizer.step()``."""

    def after_backward(self, model: FusionModel, step: int) -> None: ...


@dataclass(frozen=True)
class FitConfig:
    """Optimisation settings of one fold (from ``training`` in config.yaml)."""

    epochs: int
    batch_size: int
    lr: float
    weight_decay: float
    patience: int
    device: str = "auto"
    seed: int = 0


@dataclass
class FitResult:
    """What :func:`fit_fold_` produced (also written to ``out_dir``)."""

    best_epoch: int
    best_loss: float
    monitor: str
    history: pd.DataFrame
    predictions: pd.DataFrame
    seconds: float


def resolve_device(spec: str) -> torch.device:
    """``"auto"`` -> cuda if available else cpu; otherwise ``torch.device(spec)``."""
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(spec)


def task_loss(task: TaskSpec, output: Tensor, batch: Batch) -> Tensor:
    """Loss of a head output on a batch: Cox partial likelihood or cross-entropy."""
    if task.kind == "survival":
        return cox_ph_loss(output, batch.time_days, batch.event)
    return cross_entropy(output, batch.label)


def _loader(ds: PatientBagDataset, batch_size: int, *, shuffle: bool, seed: int = 0) -> DataLoader:
    gen = torch.Generator().manual_seed(seed) if shuffle else None
    return DataLoader(ds, batch_size=batch_size, shuffle=shuffle, generator=gen, collate_fn=collate_bags,
                      num_workers=0)


@torch.no_grad()
def predict(model: FusionModel, head: nn.Module, ds: PatientBagDataset, *, batch_size: int,
            device: torch.device) -> tuple[Tensor, Batch | None]:
    """Head outputs for every patient of ``ds`` (full bags, eval mode).

    Returns
    -------
    outputs : CPU Tensor, shape = (n,) (risk) or (n, K) (logits).
    targets : a target-only :class:`Batch` (time_days, event, label, patient_ids) or None if ``ds`` is empty.
    """
    model.eval()
    head.eval()
    outs, batches = [], []
    for batch in _loader(ds.inference_view(), batch_size, shuffle=False):
        outs.append(head(model(batch.to(device)).embedding).float().cpu())
        batches.append(batch)
    if not outs:
        return torch.zeros(0), None
    targets = Batch(wsi=None, wsi_mask=None, omics=None,
                    patient_ids=[p for b in batches for p in b.patient_ids],
                    time_days=torch.cat([b.time_days for b in batches]),
                    event=torch.cat([b.event for b in batches]),
                    label=torch.cat([b.label for b in batches]))
    return torch.cat(outs), targets


def _informative(task: TaskSpec, ds: PatientBagDataset | None) -> bool:
    if ds is None or len(ds) == 0:
        return False
    if task.kind == "survival":
        return len(ds) >= 2 and bool(np.nansum(ds.targets.event) > 0)
    return bool((ds.targets.label >= 0).any())


def prediction_frame(task: TaskSpec, outputs: Tensor, targets: Batch, *, model_name: str, fold: int,
                     split: str) -> pd.DataFrame:
    """Rows of ``predictions.tsv`` (docs/data-contracts.md §8) for one split."""
    base = {"patient_id": targets.patient_ids, "model": model_name, "task": task.name, "fold": fold,
            "split": split}
    if task.kind == "survival":
        return pd.DataFrame({**base, "time_days": targets.time_days.double().numpy(),
                             "event": targets.event.numpy().astype(np.int64),
                             "risk": outputs.double().numpy()})
    prob = torch.softmax(outputs.double(), dim=1).numpy()
    df = pd.DataFrame({**base, "y_true": targets.label.numpy().astype(np.int64),
                       "y_pred": prob.argmax(axis=1).astype(np.int64)})
    for k, col in enumerate(task.prob_columns):
        df[col] = prob[:, k]
    return df


def fit_fold_(
    *, model: FusionModel, head: nn.Module, task: TaskSpec, datasets: Mapping[str, PatientBagDataset],
    fit: FitConfig, out_dir: Path, model_name: str, fold: int, prov: Mapping[str, Any],
    checkpoint_extra: Mapping[str, Any] | None = None, hooks: Sequence[GradientPolicy] = (),
) -> FitResult:
    """Train ``model`` + ``head`` on ``datasets["train"]``, early-stop on ``datasets["val"]``, write outputs.

    Optimiser AdamW (``fit.lr``, ``fit.weight_decay``); loss = task loss + sum of ``aux_losses``.
    After each epoch the loss on the whole validation set (full bags) is computed; the best state
    is kept and training stops after ``fit.patience`` epochs without improvement. Without an
    informative validation set (empty, or no event for survival) the training loss is monitored.

    Parameters
    ----------
    model, head : the backbone (from ``create_model``) and its task head.
    task : the task (loss and prediction columns).
    datasets : ``{"train", "val", "test"}`` -> :class:`PatientBagDataset`; ``train`` may sample
        patches (``max_patches``), predictions always use full bags. ``val``/``test`` may be empty.
    fit : optimisation settings (epochs, batch size, learning rate, patience, device, seed).
    out_dir : receives ``checkpoint.pt``, ``history.tsv`` and ``predictions.tsv`` (written last).
    model_name, fold : written into the prediction rows and the checkpoint.
    prov : provenance record for the tables (``gliofuse.io.provenance``).
    checkpoint_extra : more fields for the checkpoint (model params, omics preprocessing, split).
    hooks : gradient policies called after every backward pass.

    Returns
    -------
    FitResult
    """
    t0 = time.perf_counter()
    seed_everything(fit.seed)
    device = resolve_device(fit.device)
    train_ds = datasets["train"]
    val_ds = datasets.get("val")
    if len(train_ds) == 0:
        raise ValueError("fit_fold_: the training set is empty.")
    model.to(device)
    head.to(device)
    params = [p for p in [*model.parameters(), *head.parameters()] if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=fit.lr, weight_decay=fit.weight_decay)
    monitor = "val" if _informative(task, val_ds) else "train"
    if monitor == "train":
        logger.warning("fold %d: validation set is empty or has no %s; early stopping monitors the training loss",
                       fold, "event" if task.kind == "survival" else "label")
    logger.info("fold %d: training %s for %s on %s: %d train / %d val / %d test patients, %d parameters",
                fold, model_name, task.name, device, len(train_ds), len(val_ds or []),
                len(datasets.get("test") or []), sum(p.numel() for p in params))

    best_loss, best_epoch, bad_epochs, step = math.inf, 0, 0, 0
    best_state: dict[str, dict[str, Tensor]] = {}
    history: list[dict[str, float]] = []
    for epoch in range(1, fit.epochs + 1):
        model.train()
        head.train()
        train_ds.set_epoch(epoch)
        total, count = 0.0, 0
        for batch in _loader(train_ds, fit.batch_size, shuffle=True, seed=fit.seed + epoch):
            batch = batch.to(device)
            out = model(batch)
            loss = task_loss(task, head(out.embedding), batch)
            for aux in out.aux_losses.values():
                loss = loss + aux
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            for hook in hooks:
                hook.after_backward(model, step)
            optimizer.step()
            step += 1
            total += float(loss.detach()) * len(batch)
            count += len(batch)
        train_loss = total / max(count, 1)
        val_loss = math.nan
        if val_ds is not None and len(val_ds) > 0:
            outputs, targets = predict(model, head, val_ds, batch_size=fit.batch_size, device=device)
            assert targets is not None
            val_loss = float(task_loss(task, outputs, targets))
        history.append({"epoch": epoch, "train_loss": train_loss, "val_loss": val_loss})
        current = val_loss if monitor == "val" else train_loss
        improved = current < best_loss
        if improved:
            best_loss, best_epoch, bad_epochs = current, epoch, 0
            best_state = {"model": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
                          "head": {k: v.detach().cpu().clone() for k, v in head.state_dict().items()}}
        else:
            bad_epochs += 1
        logger.info("fold %d epoch %d/%d: train_loss=%.4f val_loss=%.4f%s", fold, epoch, fit.epochs,
                    train_loss, val_loss, " *" if improved else "")
        if bad_epochs >= fit.patience:
            logger.info("fold %d: early stop after epoch %d (best epoch %d, %s loss %.4f)",
                        fold, epoch, best_epoch, monitor, best_loss)
            break
    if best_state:
        model.load_state_dict(best_state["model"])
        head.load_state_dict(best_state["head"])

    frames = []
    for split in SPLITS:
        ds = datasets.get(split)
        if ds is None or len(ds) == 0:
            continue
        outputs, targets = predict(model, head, ds, batch_size=fit.batch_size, device=device)
        assert targets is not None
        frames.append(prediction_frame(task, outputs, targets, model_name=model_name, fold=fold, split=split))
    predictions = pd.concat(frames, ignore_index=True)[task.prediction_columns]
    history_df = pd.DataFrame(history, columns=["epoch", "train_loss", "val_loss"])

    out_dir = Path(out_dir)
    checkpoint = {
        "model_state": best_state.get("model", model.state_dict()),
        "head_state": best_state.get("head", head.state_dict()),
        "card": model.card.to_dict() if model.card is not None else None,
        "model_name": model_name, "task": task.name, "task_kind": task.kind, "class_names": list(task.class_names),
        "fold": fold, "best_epoch": best_epoch, "best_loss": best_loss, "monitor": monitor,
        "gliofuse_version": __version__, "code_version": code_version(), "torch_version": torch.__version__,
        "provenance": dict(prov), **dict(checkpoint_extra or {}),
    }
    with atomic_path(out_dir / "checkpoint.pt") as tmp:
        torch.save(checkpoint, tmp)
    write_table_(out_dir / "history.tsv", history_df, prov=prov)
    write_table_(out_dir / "predictions.tsv", predictions, prov=prov)
    seconds = time.perf_counter() - t0
    logger.info("fold %d: done in %.1f s (best epoch %d, %s loss %.4f) -> %s", fold, seconds, best_epoch,
                monitor, best_loss, out_dir)
    return FitResult(best_epoch=best_epoch, best_loss=best_loss, monitor=monitor, history=history_df,
                     predictions=predictions, seconds=seconds)
