"""Fit one model on one fold: optimisation, early stopping, checkpoints, resume and prediction tables.

The harness is model-agnostic: it sees a :class:`~gliofuse.models.base.FusionModel`, one head per
task and an :class:`~gliofuse.training.objectives.Objective` per task, never a paper-specific
branch. Architecture-specific terms arrive through ``ModelOutput.aux_losses``; gradient
manipulation through gradient policies (:mod:`gliofuse.training.hooks`), built from what the model
declares.

Outputs in ``out_dir`` (docs/data-contracts.md §8): ``predictions.tsv``, ``history.tsv`` (rewritten
after every epoch), ``gc_dynamics.tsv``, ``checkpoint.pt`` (the selected epoch: best or last), ``attention.h5`` (§10; the
test patients' per-patch weights, for models whose ``ModelOutput.attention`` is set) and, while
training, ``last.pt`` (everything needed to resume after the last finished epoch; removed at the end).
"""

from __future__ import annotations

import json
import logging
import math
import os
import pickle
import random
import shutil
import time
from collections import defaultdict
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, WeightedRandomSampler

from gliofuse import __version__
from gliofuse.data.batch import Batch
from gliofuse.data.collate import collate_bags
from gliofuse.data.datasets import PatientBagDataset
from gliofuse.io import atomic_path, code_version, write_table_
from gliofuse.models.base import FusionModel
from gliofuse.tasks import SPLITS, TaskSpec
from gliofuse.training.hooks import GradientPolicy, StepContext, build_policies, dynamics_frame
from gliofuse.training.losses import survival_bins
from gliofuse.training.objectives import Objective, objectives_state
from gliofuse.training.weighting import build_task_weighting

logger = logging.getLogger(__name__)

HISTORY_COLUMNS: tuple[str, ...] = ("epoch", "train_loss", "val_loss", "val_metric", "train_task_loss",
                                    "train_aux_loss", "lr", "seconds")
"""Leading columns of ``history.tsv``; ``aux_<name>`` (mean training aux losses), ``train_l1_loss`` (the
``l1 * sum |w|`` term, part of ``train_loss``; only with ``l1 > 0``) and, in multi-task training,
``val_loss_<task>`` follow."""

LAST_CHECKPOINT = "last.pt"
ATTENTION_FILE = "attention.h5"
"""Per-slide attention of the fold's test patients (docs/data-contracts.md §10), for models that give it."""


@dataclass(frozen=True)
class FitConfig:
    """Optimisation settings of one fold (from ``training`` in config.yaml; see ``TrainingConfig``)."""

    epochs: int
    batch_size: int
    lr: float
    weight_decay: float
    patience: int
    device: str = "auto"
    seed: int = 0
    optimizer: str = "adamw"
    momentum: float = 0.9
    scheduler: str = "none"
    min_lr: float = 0.0
    warmup_epochs: int = 0
    grad_clip: float | None = None
    amp: bool = True
    amp_dtype: str = "bf16"
    monitor: str = "loss"
    resume: bool = False
    keep_epoch_checkpoints: bool = False
    l1: float = 0.0
    select_epoch: str = "best"
    weighted_sampler: bool = False

    @classmethod
    def from_training(cls, training: Any, *, seed: int) -> FitConfig:
        """From a ``TrainingConfig``."""
        names = [f for f in cls.__dataclass_fields__ if f != "seed"]
        return cls(seed=seed, **{n: getattr(training, n) for n in names})


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


def seed_fold(seed: int, device: torch.device | str = "cpu") -> None:
    """Seed Python, NumPy and torch for one fold; on CUDA also ask for deterministic kernels.

    On CPU the kernels used here are deterministic already; ``torch.use_deterministic_algorithms``
    is skipped there because its first call imports ``torch._inductor`` (~1.4 s of every job's
    start-up). On CUDA it is called with ``warn_only=True`` (a few kernels, e.g. ``index_add_``
    backward, have no deterministic variant) and cuDNN autotuning is disabled.
    """
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
    if torch.device(device).type == "cuda":
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # deterministic cuBLAS (before first use)
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True


def resolve_device(spec: str) -> torch.device:
    """``"auto"`` -> cuda if available else cpu; otherwise ``torch.device(spec)``."""
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(spec)


def make_optimizer(params: Sequence[nn.Parameter], fit: FitConfig) -> torch.optim.Optimizer:
    """Adam (coupled L2), AdamW (decoupled) or SGD with momentum."""
    if fit.optimizer == "adam":
        return torch.optim.Adam(params, lr=fit.lr, weight_decay=fit.weight_decay)
    if fit.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=fit.lr, weight_decay=fit.weight_decay)
    if fit.optimizer == "sgd":
        return torch.optim.SGD(params, lr=fit.lr, momentum=fit.momentum, weight_decay=fit.weight_decay)
    raise ValueError(f"unknown optimizer {fit.optimizer!r}; expected adam, adamw or sgd.")


def lr_factor(epoch: int, fit: FitConfig) -> float:
    """Learning-rate multiplier for 0-based ``epoch``: linear warm-up from 0.1, then the decay to ``min_lr``.

    ``cosine``: half a cosine over the remaining epochs. ``linear``: Pathomic Fusion's rule
    ``1 - (e + 1) / (span + 1)`` (e = epochs after warm-up, span = remaining epochs), so the first epoch
    already runs below the peak and the last at ``1 / (span + 1)`` of it (PF ``lr_policy linear``, niter 0).
    """
    if fit.scheduler == "none":
        return 1.0
    if epoch < fit.warmup_epochs:
        return 0.1 + 0.9 * epoch / fit.warmup_epochs
    span = max(1, fit.epochs - fit.warmup_epochs)
    floor = fit.min_lr / fit.lr
    if fit.scheduler == "linear":
        return floor + (1.0 - floor) * max(0.0, 1.0 - (epoch - fit.warmup_epochs + 1) / (span + 1))
    progress = min(1.0, (epoch - fit.warmup_epochs) / span)
    return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))


def make_scheduler(optimizer: torch.optim.Optimizer, fit: FitConfig) -> torch.optim.lr_scheduler.LambdaLR:
    """Per-epoch schedule of :func:`lr_factor` (``scheduler.step()`` once per epoch)."""
    if fit.scheduler not in ("none", "cosine", "linear"):
        raise ValueError(f"unknown scheduler {fit.scheduler!r}; expected none, cosine or linear.")
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda e: lr_factor(e, fit))


def _autocast(device: torch.device, fit: FitConfig) -> AbstractContextManager[Any]:
    if fit.amp and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16 if fit.amp_dtype == "bf16" else torch.float16)
    return nullcontext()


def _loader(ds: PatientBagDataset, batch_size: int, *, shuffle: bool, seed: int = 0,
            weights: Tensor | None = None) -> DataLoader:
    gen = torch.Generator().manual_seed(seed) if shuffle else None
    if weights is not None:  # balanced sampling: len(ds) draws with replacement
        sampler = WeightedRandomSampler(weights, num_samples=len(weights), replacement=True, generator=gen)
        return DataLoader(ds, batch_size=batch_size, sampler=sampler, collate_fn=collate_bags, num_workers=0)
    return DataLoader(ds, batch_size=batch_size, shuffle=shuffle, generator=gen, collate_fn=collate_bags,
                      num_workers=0)


def sampling_strata(objective: Objective, ds: PatientBagDataset) -> np.ndarray:
    """Stratum of every item of ``ds`` for ``weighted_sampler``, int64 (len(ds),).

    Classification: the task's class label (missing = its own stratum). Survival: event x time bin, the
    bins of a discrete-hazard objective (MCAT's ``(bin, censorship)`` classes) or, for Cox, event only.
    """
    t = ds.targets
    owner = np.asarray([i for i, _ in ds.items], dtype=np.int64)
    if objective.task.kind == "survival":
        event = np.nan_to_num(np.asarray(t.event, dtype=np.float64), nan=-1.0).astype(np.int64)
        edges = getattr(objective, "edges", None)
        bins = np.zeros(len(event), dtype=np.int64)
        if edges is not None:
            time = torch.as_tensor(np.nan_to_num(np.asarray(t.time_days, dtype=np.float64)))
            bins = survival_bins(time, edges).numpy().astype(np.int64)
        strata = bins * 3 + event + 1
    else:
        strata = np.asarray(t.labels.get(objective.task.name, t.label), dtype=np.int64)
    return strata[owner]


def balanced_weights(strata: np.ndarray) -> Tensor:
    """Sampling weight ``N / n_stratum`` per item (MCAT's ``make_weights_for_balanced_classes_split``)."""
    _, inverse, counts = np.unique(strata, return_inverse=True, return_counts=True)
    return torch.as_tensor(len(strata) / counts[inverse], dtype=torch.float64)


def l1_penalty(params: Sequence[nn.Parameter]) -> Tensor:
    """``sum |w|`` over ``params`` (PF ``regularize_weights``, MCAT ``l1_reg_all``)."""
    return torch.stack([p.abs().sum() for p in params]).sum()


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
            device: torch.device, fit: FitConfig | None = None,
            attention: list[np.ndarray | None] | None = None) -> dict[str, Tensor]:
    """Head outputs per patient of ``ds`` (full bags, eval mode), in ``ds.patient_ids`` order.

    With ``bag_level="slide"`` the outputs of a patient's slides are averaged (head outputs: risk,
    hazard logits or class logits).

    Parameters
    ----------
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
    ctx = _autocast(device, fit) if fit is not None else nullcontext()
    for batch in _loader(view, batch_size, shuffle=False):
        with ctx:
            out = model(batch.to(device))
            emb = out.embedding
            for task, head in heads.items():
                outs[task].append(head(emb).float().cpu())
        if attention is not None:
            attention.extend(_item_attention(out.attention, batch))
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


def _informative(task: TaskSpec, ds: PatientBagDataset | None) -> bool:
    if ds is None or len(ds) == 0:
        return False
    if task.kind == "survival":
        return len(ds.patient_ids) >= 2 and bool(np.nansum(ds.targets.event) > 0)
    labels = ds.targets.labels.get(task.name, ds.targets.label)
    return bool((np.asarray(labels) >= 0).any())


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


def _rng_state() -> dict[str, Any]:
    state = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: Mapping[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _cpu_state(module: nn.Module) -> dict[str, Tensor]:
    return {k: v.detach().cpu().clone() for k, v in module.state_dict().items()}


def save_epoch_checkpoint_(path: Path, state: Mapping[str, Any]) -> None:
    """Write the resume state atomically (a kill mid-write keeps the previous epoch's file)."""
    with atomic_path(path) as tmp:
        torch.save(dict(state), tmp)


def _load_resume_state(path: Path, prov: Mapping[str, Any]) -> dict[str, Any] | None:
    if not path.exists():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except (OSError, RuntimeError, EOFError, pickle.UnpicklingError) as exc:  # a corrupt file: start over
        logger.warning("cannot read %s (%s); training from scratch", path, exc)
        return None
    keys = ("gliofuse_version", "config_hash", "inputs", "extra")
    old = state.get("provenance", {})
    if any(_jsonable(old.get(k)) != _jsonable(prov.get(k)) for k in keys):
        logger.info("%s belongs to another configuration or input; training from scratch", path)
        return None
    return state


def _jsonable_str(obj: Any) -> str:
    """Canonical JSON text (sorted keys; non-JSON values as ``str``)."""
    return json.dumps(obj, sort_keys=True, default=str)


def _jsonable(obj: Any) -> Any:
    """``obj`` as plain JSON types (via :func:`_jsonable_str`)."""
    return json.loads(_jsonable_str(obj))


def fit_fold_(
    *, model: FusionModel, heads: Mapping[str, nn.Module], objectives: Mapping[str, Objective], primary: str,
    datasets: Mapping[str, PatientBagDataset], fit: FitConfig, out_dir: Path, model_name: str, fold: int,
    prov: Mapping[str, Any], checkpoint_extra: Mapping[str, Any] | None = None,
    hooks: Sequence[GradientPolicy] | None = None,
) -> FitResult:
    """Train ``model`` + ``heads`` on ``datasets["train"]``, select the epoch on ``datasets["val"]``, write outputs.

    Loss = ``sum_t weight_t * loss_t`` over the objectives + ``sum(ModelOutput.aux_losses)`` +
    ``fit.l1 * sum |w|`` over the trainable parameters of ``model`` and ``heads`` (0: no term). After every
    epoch the primary task's loss and metric on the whole validation set (full bags, patient level)
    are computed; the best epoch by ``fit.monitor`` is kept (``fit.select_epoch = "last"``: the final
    epoch's weights instead) and training stops after ``fit.patience`` epochs without improvement. Without
    an informative validation set (empty, no label, or no event for survival) the training task loss is
    monitored. ``fit.weighted_sampler`` draws the training items with replacement, weighted by the
    inverse size of their stratum (:func:`sampling_strata`).

    Parameters
    ----------
    model : the backbone (from ``create_model``).
    heads : ``{task: head}``; one per objective.
    objectives : ``{task: Objective}`` (fitted on the training fold).
    primary : the task whose predictions are written and on which the epoch is selected.
    datasets : ``{"train", "val", "test"}`` -> :class:`PatientBagDataset`; ``train`` may sample
        patches (``max_patches``), predictions always use full bags. ``val``/``test`` may be empty.
    fit : optimisation settings.
    out_dir : receives ``checkpoint.pt``, ``history.tsv``, ``gc_dynamics.tsv``, ``attention.h5`` (models
        with attention; the test patients, full bags, eval mode) and ``predictions.tsv`` (written last);
        ``last.pt`` while training.
    model_name, fold : written into the prediction rows and the checkpoint.
    prov : provenance record for the tables (``gliofuse.io.provenance``); a ``last.pt`` is resumed only
        when its provenance matches.
    checkpoint_extra : more fields for the checkpoint (model params, omics preprocessing, split).
    hooks : gradient policies called after every backward pass; None: those the model declares
        (:func:`gliofuse.training.hooks.build_policies`).

    Returns
    -------
    FitResult
    """
    t0 = time.perf_counter()
    out_dir = Path(out_dir)
    device = resolve_device(fit.device)
    seed_fold(fit.seed, device)
    train_ds = datasets["train"]
    val_ds = datasets.get("val")
    if len(train_ds) == 0:
        raise ValueError("fit_fold_: the training set is empty.")
    if fit.select_epoch not in ("best", "last"):
        raise ValueError(f"fit_fold_: select_epoch must be 'best' or 'last', got {fit.select_epoch!r}.")
    if set(heads) != set(objectives) or primary not in heads:
        raise ValueError(f"fit_fold_: heads {sorted(heads)} and objectives {sorted(objectives)} must match and "
                         f"contain the primary task {primary!r}.")
    policies = list(build_policies(model) if hooks is None else hooks)
    head_modules = nn.ModuleDict(dict(heads))
    weighting = build_task_weighting(model, objectives).to(device)  # multi-task loss combination (may learn)
    model.to(device)
    head_modules.to(device)
    params = [p for p in [*model.parameters(), *head_modules.parameters(), *weighting.parameters()]
              if p.requires_grad]
    optimizer = make_optimizer(params, fit)
    scheduler = make_scheduler(optimizer, fit)
    l1_params = [p for p in [*model.parameters(), *head_modules.parameters()] if p.requires_grad] if fit.l1 else []
    scaler = torch.amp.GradScaler("cuda") if (fit.amp and fit.amp_dtype == "fp16" and device.type == "cuda") else None
    obj_primary = objectives[primary]
    monitor = "val" if _informative(obj_primary.task, val_ds) else "train"
    if monitor == "train":
        logger.warning("fold %d: validation set is empty or has no %s; early stopping monitors the training loss",
                       fold, "event" if obj_primary.task.kind == "survival" else "label")
    val_targets = targets_batch(val_ds) if val_ds is not None and len(val_ds) > 0 else None
    sample_weights = balanced_weights(sampling_strata(obj_primary, train_ds)) if fit.weighted_sampler else None

    best_score, best_loss, best_epoch, bad_epochs, step, start = math.inf, math.inf, 0, 0, 0, 1
    best_state: dict[str, dict[str, Tensor]] = {}
    history: list[dict[str, float]] = []
    last_path = out_dir / LAST_CHECKPOINT
    resumed = _load_resume_state(last_path, prov) if fit.resume else None
    if resumed is not None:
        model.load_state_dict(resumed["model"])
        head_modules.load_state_dict(resumed["heads"])
        weighting.load_state_dict(resumed.get("weighting", {}))
        optimizer.load_state_dict(resumed["optimizer"])
        scheduler.load_state_dict(resumed["scheduler"])
        if scaler is not None and resumed.get("scaler"):
            scaler.load_state_dict(resumed["scaler"])
        for policy, pstate in zip(policies, resumed.get("policies", []), strict=False):
            if hasattr(policy, "load_state_dict"):
                policy.load_state_dict(pstate)
        history = list(resumed["history"])
        best_state, best_score, best_loss = resumed["best_state"], resumed["best_score"], resumed["best_loss"]
        best_epoch, bad_epochs, step = resumed["best_epoch"], resumed["bad_epochs"], resumed["step"]
        start = int(resumed["epoch"]) + 1
        _set_rng_state(resumed["rng"])
        logger.info("fold %d: resuming %s/%s after epoch %d from %s", fold, model_name, primary, start - 1, last_path)
    logger.info("fold %d: training %s for %s on %s: %d train / %d val / %d test items, %d parameters, policies %s",
                fold, model_name, "+".join(heads), device, len(train_ds), len(val_ds or []),
                len(datasets.get("test") or []), sum(p.numel() for p in params),
                [getattr(p, "name", type(p).__name__) for p in policies])

    stop = bool(resumed) and bad_epochs >= fit.patience
    for epoch in range(start, fit.epochs + 1):
        if stop:
            break
        t_epoch = time.perf_counter()
        model.train()
        head_modules.train()
        train_ds.set_epoch(epoch)
        sums: dict[str, float] = defaultdict(float)
        count = 0
        lr = optimizer.param_groups[0]["lr"]
        for batch in _loader(train_ds, fit.batch_size, shuffle=True, seed=fit.seed + epoch, weights=sample_weights):
            batch = batch.to(device)
            with _autocast(device, fit):
                out = model(batch)
                outputs = {t: head_modules[t](out.embedding) for t in objectives}
            task_losses = {t: o.loss(outputs[t].float(), batch) for t, o in objectives.items()}
            task_total = weighting(task_losses)
            aux_total = sum((a.float() for a in out.aux_losses.values()), torch.zeros((), device=device))
            loss = task_total + aux_total
            if l1_params:
                l1_term = fit.l1 * l1_penalty(l1_params)
                loss = loss + l1_term
            optimizer.zero_grad(set_to_none=True)
            if scaler is not None:
                scaler.scale(loss).backward()
                scaler.unscale_(optimizer)
            else:
                loss.backward()
            context = StepContext(epoch=epoch, step=step, batch=batch, output=out, heads=head_modules,
                                  objectives=objectives, optimizer=optimizer)
            for policy in policies:
                policy.after_backward(model, step, context)
            if fit.grad_clip is not None:
                nn.utils.clip_grad_norm_(params, fit.grad_clip)
            if scaler is not None:
                scaler.step(optimizer)
                scaler.update()
            else:
                optimizer.step()
            step += 1
            n = len(batch)
            count += n
            sums["train_loss"] += float(loss.detach()) * n
            sums["train_task_loss"] += float(task_losses[primary].detach()) * n
            sums["train_aux_loss"] += float(aux_total.detach()) * n
            if l1_params:
                sums["train_l1_loss"] += float(l1_term.detach()) * n
            for name, a in out.aux_losses.items():
                sums[f"aux_{name}"] += float(a.detach()) * n
            for name, v in weighting.log_values().items():
                sums[name] += v * n
        scheduler.step()
        row: dict[str, float] = {"epoch": epoch, **{k: v / max(count, 1) for k, v in sums.items()}}
        row["val_loss"], row["val_metric"] = math.nan, math.nan
        if val_targets is not None:
            val_out = predict(model, head_modules, val_ds, batch_size=fit.batch_size, device=device, fit=fit)  # type: ignore[arg-type]
            for t, o in objectives.items():
                v = float(o.loss(val_out[t], val_targets))
                if len(objectives) > 1:
                    row[f"val_loss_{t}"] = v
                if t == primary:
                    row["val_loss"] = v
                    row["val_metric"] = obj_primary.metric(val_out[t], val_targets)
        row["lr"], row["seconds"] = lr, time.perf_counter() - t_epoch
        history.append(row)
        if monitor == "train":
            score = row["train_task_loss"]
        elif fit.monitor == "metric":
            score = -row["val_metric"] if math.isfinite(row["val_metric"]) else math.inf
        else:
            score = row["val_loss"]
        improved = score < best_score
        if improved:
            best_score, best_epoch, bad_epochs = score, epoch, 0
            best_loss = row["val_loss"] if monitor == "val" else row["train_task_loss"]
            best_state = {"model": _cpu_state(model), "heads": _cpu_state(head_modules)}
        else:
            bad_epochs += 1
        logger.info("fold %d epoch %d/%d: train_loss=%.4f val_loss=%.4f val_%s=%.4f (%.1f s)%s", fold, epoch,
                    fit.epochs, row["train_loss"], row["val_loss"], obj_primary.metric_name, row["val_metric"],
                    row["seconds"], " *" if improved else "")
        _write_history(out_dir, history, prov)
        resume_state = {
            "epoch": epoch, "model": _cpu_state(model), "heads": _cpu_state(head_modules),
            "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
            "weighting": weighting.state_dict(),
            "scaler": scaler.state_dict() if scaler is not None else None,
            "policies": [p.state_dict() if hasattr(p, "state_dict") else {} for p in policies],
            "history": history, "best_state": best_state, "best_score": best_score, "best_loss": best_loss,
            "best_epoch": best_epoch, "bad_epochs": bad_epochs, "step": step, "rng": _rng_state(),
            "provenance": dict(prov),
        }
        save_epoch_checkpoint_(last_path, resume_state)
        if fit.keep_epoch_checkpoints:
            shutil.copyfile(last_path, out_dir / f"epoch_{epoch:03d}.pt")
        if bad_epochs >= fit.patience:
            logger.info("fold %d: early stop after epoch %d (best epoch %d, %s %s %.4f)", fold, epoch, best_epoch,
                        monitor, fit.monitor, best_score)
            break
    if fit.select_epoch == "last" and history:  # keep the weights the loop ended with
        last = history[-1]
        best_epoch = int(last["epoch"])
        best_loss = last["val_loss"] if monitor == "val" else last["train_task_loss"]
        best_state = {"model": _cpu_state(model), "heads": _cpu_state(head_modules)}
    if best_state:
        model.load_state_dict(best_state["model"])
        head_modules.load_state_dict(best_state["heads"])

    frames = []
    test_attention: list[np.ndarray | None] = []
    for split in SPLITS:
        ds = datasets.get(split)
        if ds is None or len(ds) == 0:
            continue
        outputs = predict(model, head_modules, ds, batch_size=fit.batch_size, device=device, fit=fit,
                          attention=test_attention if split == "test" else None)
        frames.append(prediction_frame(obj_primary, outputs[primary], targets_batch(ds), model_name=model_name,
                                       fold=fold, split=split))
    predictions = pd.concat(frames, ignore_index=True)[obj_primary.prediction_columns]
    history_df = _history_frame(history)

    primary_head = head_modules[primary]
    checkpoint = {
        "model_state": best_state.get("model", _cpu_state(model)),
        "head_state": {k.removeprefix(f"{primary}."): v for k, v in
                       best_state.get("heads", _cpu_state(head_modules)).items() if k.startswith(f"{primary}.")},
        "heads_state": best_state.get("heads", _cpu_state(head_modules)),
        "head_class": type(primary_head).__name__,
        "card": model.card.to_dict() if model.card is not None else None,
        "model_name": model_name, "task": primary, "task_kind": obj_primary.task.kind,
        "class_names": list(obj_primary.task.class_names), "tasks": list(heads),
        "objectives": objectives_state(objectives), "fit": asdict(fit),
        "fold": fold, "best_epoch": best_epoch, "best_loss": best_loss, "monitor": monitor,
        "monitor_metric": fit.monitor, "select_epoch": fit.select_epoch,
        "gliofuse_version": __version__, "code_version": code_version(), "torch_version": torch.__version__,
        "provenance": dict(prov), **dict(checkpoint_extra or {}),
    }
    with atomic_path(out_dir / "checkpoint.pt") as tmp:
        torch.save(checkpoint, tmp)
    write_table_(out_dir / "history.tsv", history_df, prov=prov)
    write_table_(out_dir / "gc_dynamics.tsv", dynamics_frame(policies), prov=prov)
    attention_path = out_dir / ATTENTION_FILE
    if any(a is not None for a in test_attention):
        n_slides = write_attention_(attention_path, datasets["test"], test_attention, split="test",
                                    attrs={"model": model_name, "task": primary, "fold": fold,
                                           "provenance": _jsonable_str(prov)})
        logger.info("fold %d: attention of %d test slide(s) -> %s", fold, n_slides, attention_path)
    else:
        attention_path.unlink(missing_ok=True)  # no stale file from an earlier run
    write_table_(out_dir / "predictions.tsv", predictions, prov=prov)
    last_path.unlink(missing_ok=True)
    seconds = time.perf_counter() - t0
    logger.info("fold %d: done in %.1f s (%s epoch %d, %s loss %.4f) -> %s", fold, seconds, fit.select_epoch,
                best_epoch, monitor, best_loss, out_dir)
    return FitResult(best_epoch=best_epoch, best_loss=best_loss, monitor=monitor, history=history_df,
                     predictions=predictions, seconds=seconds, resumed_from=start - 1)


def _history_frame(history: list[dict[str, float]]) -> pd.DataFrame:
    extra = sorted({k for row in history for k in row} - set(HISTORY_COLUMNS))
    return pd.DataFrame(history, columns=[*HISTORY_COLUMNS, *extra])


def _write_history(out_dir: Path, history: list[dict[str, float]], prov: Mapping[str, Any]) -> None:
    write_table_(out_dir / "history.tsv", _history_frame(history), prov=prov)
