"""Predictions of a trained fold: head outputs per patient, the ``predictions.tsv`` rows and ``attention.h5``.

``predictions.tsv``: docs/data-contracts.md §8; ``attention.h5``: §10 (the test patients' per-patch weights, for
models whose ``ModelOutput.attention`` is set).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn

from gliofuse.config import OptimConfig
from gliofuse.data.batch import Batch
from gliofuse.data.datasets import PatientBagDataset
from gliofuse.io import atomic_path
from gliofuse.models.base import FusionModel
from gliofuse.training.objectives import Objective
from gliofuse.training.optim import autocast
from gliofuse.training.sampling import make_loader, patch_budget_batches

logger = logging.getLogger(__name__)

ATTENTION_FILE = "attention.h5"
"""Per-slide attention of the fold's test patients (docs/data-contracts.md §10), for models that give it."""


def targets_batch(ds: PatientBagDataset) -> Batch:
    """A target-only :class:`Batch` of the dataset's patients (``ds.patient_ids`` order)."""
    t = ds.targets
    return Batch(wsi=None, wsi_mask=None, omics=None, patient_ids=list(ds.patient_ids),
                 time_days=torch.as_tensor(np.asarray(t.time_days, dtype=np.float32)),
                 event=torch.as_tensor(np.asarray(t.event, dtype=np.float32)),
                 label=torch.as_tensor(np.asarray(t.label, dtype=np.int64)),
                 labels={k: torch.as_tensor(np.asarray(v, dtype=np.int64)) for k, v in t.labels.items()})


@torch.no_grad()
def predict(model: FusionModel, heads: Mapping[str, nn.Module], ds: PatientBagDataset, *, batch_size: int,
            device: torch.device, optim: OptimConfig | None = None,
            attention: list[np.ndarray | None] | None = None) -> dict[str, Tensor]:
    """Head outputs per patient of ``ds`` (full bags, or the fixed ``inference_max_patches`` subsample; eval mode),
    in ``ds.patient_ids`` order. Batches hold at most ``batch_size`` items and ``ds.inference_batch_patches``
    padded patches (:func:`~gliofuse.training.sampling.patch_budget_batches`).

    With ``bag_level="slide"`` the outputs of a patient's slides are averaged (head outputs: risk,
    hazard logits or class logits).

    Parameters
    ----------
    optim : the loop settings (autocast on CUDA); None: full precision.
    attention : a list to receive, per item of ``ds`` (``ds.items`` order), the model's
        ``ModelOutput.attention`` over the item's full bag as float32 (N_item,), or None where the
        model gives none; None: not collected.

    Returns
    -------
    ``{task: CPU float Tensor}``, shape = (P,) (Cox risk) or (P, K) (logits).
    """
    model.eval()
    for h in heads.values():
        h.eval()
    view = ds.inference_view()
    outs: dict[str, list[Tensor]] = defaultdict(list)
    batches = patch_budget_batches([view.bag_size(i) for i in range(len(view))], batch_size,
                                   view.inference_batch_patches)
    for batch in make_loader(view, batch_size, shuffle=False, batches=batches):
        with autocast(device, optim):
            out = model(batch.to(device))
            emb = out.embedding
            for task, head in heads.items():
                outs[task].append(head(emb).float().cpu())
        if attention is not None:
            attention.extend(_item_attention(out.attention, batch))
    if attention is not None and view.max_patches is not None:
        _full_bag_attention(view, attention, start=len(attention) - len(view))
    owner = torch.as_tensor([view.items[i][0] for i in range(len(view))], dtype=torch.long)
    result = {}
    for task, parts in outs.items():
        per_item = torch.cat(parts)
        if len(view) == len(view.patient_ids) and bool((owner == torch.arange(len(owner))).all()):
            result[task] = per_item
            continue
        shape = (len(view.patient_ids), *per_item.shape[1:])
        total = torch.zeros(shape, dtype=per_item.dtype).index_add_(0, owner, per_item)
        count = torch.zeros(len(view.patient_ids), dtype=per_item.dtype).index_add_(0, owner, torch.ones(len(owner)))
        result[task] = total / count.clamp_min(1).reshape(-1, *([1] * (per_item.ndim - 1)))
    return result


def _full_bag_attention(view: PatientBagDataset, attention: list[np.ndarray | None], *, start: int) -> None:
    """Spread the weights of subsampled bags (``training.inference_max_patches``) over the full bag, in place:
    patches left out of the subsample get weight 0."""
    for i in range(len(view)):
        att, rows = attention[start + i], view.sampled_rows(i)
        if att is None or rows is None:
            continue
        full = np.zeros(sum(info.n_patches for info in view.items[i][1]), dtype=np.float32)
        full[rows] = att
        attention[start + i] = full


def _item_attention(att: Tensor | None, batch: Batch) -> list[np.ndarray | None]:
    """Per patient of ``batch``: its attention over the real instances (padding comes last), float32 (N_i,)."""
    if att is None:
        return [None] * len(batch)
    if batch.wsi_mask is None:
        return [a for a in att.float().cpu().numpy()]
    n = batch.wsi_mask.sum(dim=1).tolist()
    rows = att.float().cpu().numpy()
    return [rows[i, : int(n[i])].copy() for i in range(len(batch))]


def write_attention_(path: Path, ds: PatientBagDataset, attention: Sequence[np.ndarray | None], *, split: str,
                     attrs: Mapping[str, Any] | None = None) -> int:
    """Write the attention file of contract §10 for the items of ``ds``.

    One group per slide, named by the slide id (feature file stem), with ``coords`` (N, 2) int64
    level-0 top-left corners (the feature file's rows) and ``attention`` (N,) float32 (the slide's
    slice of its bag's weights: with ``bag_level="patient"`` a patient's slides share one
    distribution), and the string attributes ``patient_id`` and ``split``. Slides whose feature file
    has no ``coords`` are left out (logged). Written atomically; the same inputs give the same bytes.

    Parameters
    ----------
    path : ``fold_<k>/attention.h5``.
    ds : the dataset whose items the weights belong to.
    attention : per item of ``ds`` (:func:`predict`'s ``attention``), (N_item,) or None (item left out).
    split : ``train`` / ``val`` / ``test``.
    attrs : string-able file attributes (model, task, fold, provenance).

    Returns
    -------
    The number of slide groups written.
    """
    import h5py

    if len(attention) != len(ds):
        raise ValueError(f"write_attention_: {len(attention)} attention entries for {len(ds)} items.")
    n_written = 0
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as fh:
        for key, value in (attrs or {}).items():
            fh.attrs[key] = str(value)
        for index, att in enumerate(attention):
            if att is None:
                continue
            slides = ds.item_slides(index)
            sizes = [info.n_patches for info in ds.items[index][1]]
            if sum(sizes) != len(att):
                raise ValueError(f"write_attention_: item {index} has {sum(sizes)} patches but {len(att)} weights.")
            start = 0
            for (slide_id, coords), size in zip(slides, sizes, strict=True):
                part, start = att[start:start + size], start + size
                if coords is None:
                    logger.warning("slide %s has no coords in its feature file; no attention written for it", slide_id)
                    continue
                group = fh.create_group(slide_id)
                group.create_dataset("coords", data=np.asarray(coords, dtype=np.int64))
                group.create_dataset("attention", data=np.asarray(part, dtype=np.float32))
                group.attrs["patient_id"] = ds.item_patient(index)
                group.attrs["split"] = split
                n_written += 1
    return n_written


def prediction_frame(objective: Objective, outputs: Tensor, targets: Batch, *, model_name: str, fold: int,
                     split: str) -> pd.DataFrame:
    """Rows of ``predictions.tsv`` (docs/data-contracts.md §8) for one split."""
    task = objective.task
    base = {"patient_id": targets.patient_ids, "model": model_name, "task": task.name, "fold": fold,
            "split": split}
    values = objective.prediction_values(outputs)
    if task.kind == "survival":  # risk, then any per-bin hazard columns
        return pd.DataFrame({**base, "time_days": targets.time_days.double().numpy(),
                             "event": targets.event.numpy().astype(np.int64), **values})
    labels = targets.labels.get(task.name, targets.label)
    return pd.DataFrame({**base, "y_true": labels.numpy().astype(np.int64), **values})
