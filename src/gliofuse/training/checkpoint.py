"""A fold's checkpoints: the resume state (``last.pt``, RNG included) and the final ``checkpoint.pt``.

``checkpoint.pt`` (docs/data-contracts.md §8) carries :data:`CHECKPOINT_FORMAT_VERSION`;
:func:`load_checkpoint_` refuses a file of another format, model or task with a message naming what
differs, so a deployment never runs weights it cannot interpret.
"""

from __future__ import annotations

import json
import logging
import pickle
import random
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from gliofuse import __version__
from gliofuse.errors import InputDataError
from gliofuse.io import atomic_path, code_version
from gliofuse.models.base import FusionModel
from gliofuse.training.objectives import Objective, objectives_state
from gliofuse.training.provenance import jsonable_str, same_provenance

logger = logging.getLogger(__name__)

CHECKPOINT_FORMAT_VERSION = 1
"""Layout version of ``checkpoint.pt``; raised when a key is renamed or its meaning changes."""

LAST_CHECKPOINT = "last.pt"
"""The resume state after the last finished epoch, beside the fold's outputs while it trains."""

def cpu_state(module: nn.Module) -> dict[str, Tensor]:
    """A detached CPU copy of ``module.state_dict()``."""
    return {k: v.detach().cpu().clone() for k, v in module.state_dict().items()}


def rng_state() -> dict[str, Any]:
    """The Python, NumPy and torch (CPU and, where present, CUDA) random states."""
    state = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: Mapping[str, Any]) -> None:
    """Restore :func:`rng_state`."""
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_epoch_checkpoint_(path: Path, state: Mapping[str, Any]) -> None:
    """Write the resume state atomically (a kill mid-write keeps the previous epoch's file)."""
    with atomic_path(path) as tmp:
        torch.save(dict(state), tmp)


def load_resume_state_(path: Path, prov: Mapping[str, Any]) -> dict[str, Any] | None:
    """The resume state at ``path`` when it exists, reads and was written for ``prov``; else None (logged)."""
    if not path.exists():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except (OSError, RuntimeError, EOFError, pickle.UnpicklingError) as exc:  # a corrupt file: start over
        logger.warning("cannot read %s (%s); training from scratch", path, exc)
        return None
    if not same_provenance(state.get("provenance", {}), prov):
        logger.info("%s belongs to another configuration or input; training from scratch", path)
        return None
    return state


def fold_checkpoint(*, model: FusionModel, heads: nn.ModuleDict, objectives: Mapping[str, Objective], primary: str,
                    model_name: str, best_state: Mapping[str, dict[str, Tensor]], fit: Mapping[str, Any], fold: int,
                    best_epoch: int, best_loss: float, monitor: str, prov: Mapping[str, Any],
                    extra: Mapping[str, Any]) -> dict[str, Any]:
    """The content of ``checkpoint.pt`` (without ``format_version``, which :func:`save_checkpoint_` adds).

    ``model_state`` / ``heads_state``: the selected epoch's weights (``best_state``; the current ones where it
    is empty); ``head_state`` / ``head_class``: the primary task's head alone; ``fit``: the loop settings and
    seed; ``extra``: the assembly's fields (model params, input dims, omics preprocessing, split, ...).
    """
    heads_state = best_state.get("heads", cpu_state(heads))
    objective = objectives[primary]
    return {
        "model_state": best_state.get("model", cpu_state(model)),
        "head_state": {k.removeprefix(f"{primary}."): v for k, v in heads_state.items() if k.startswith(f"{primary}.")},
        "heads_state": heads_state,
        "head_class": type(heads[primary]).__name__,
        "card": model.card.to_dict() if model.card is not None else None,
        "model_name": model_name, "task": primary, "task_kind": objective.task.kind,
        "class_names": list(objective.task.class_names), "tasks": list(heads),
        "objectives": objectives_state(objectives), "fit": dict(fit),
        "fold": fold, "best_epoch": best_epoch, "best_loss": best_loss, "monitor": monitor,
        "monitor_metric": fit.get("monitor"), "select_epoch": fit.get("select_epoch"),
        "gliofuse_version": __version__, "code_version": code_version(), "torch_version": torch.__version__,
        "provenance": dict(prov), **dict(extra),
    }


def save_checkpoint_(path: Path, checkpoint: Mapping[str, Any]) -> None:
    """Write ``checkpoint.pt`` atomically, stamped with :data:`CHECKPOINT_FORMAT_VERSION` (first key)."""
    with atomic_path(path) as tmp:
        torch.save({"format_version": CHECKPOINT_FORMAT_VERSION, **checkpoint}, tmp)


def load_checkpoint_(path: Path, *, model_name: str | None = None, card: Mapping[str, Any] | None = None,
                     task: str | None = None) -> dict[str, Any]:
    """Read a fold's ``checkpoint.pt`` (CPU tensors) and check that it is what the caller can use.

    Parameters
    ----------
    path : ``fold_<k>/checkpoint.pt``.
    model_name, card, task : what the caller expects (None: not checked); ``card`` is a model card's
        ``to_dict()``, compared on its name, modalities and tasks.

    Raises
    ------
    InputDataError
        The file is not a checkpoint, has another ``format_version``, or another model name, card or task;
        the message names every field that differs.
    """
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=False)
    except (OSError, RuntimeError, EOFError, pickle.UnpicklingError) as exc:
        raise InputDataError(f"cannot read checkpoint {path}: {exc}. Retrain the fold.") from None
    if not isinstance(checkpoint, dict):
        raise InputDataError(f"{path} is not a gliofuse checkpoint (a {type(checkpoint).__name__}).")
    differ = []
    version = checkpoint.get("format_version")
    if version != CHECKPOINT_FORMAT_VERSION:
        differ.append(f"format_version {version!r} (this gliofuse reads {CHECKPOINT_FORMAT_VERSION})")
    if model_name is not None and checkpoint.get("model_name") != model_name:
        differ.append(f"model {checkpoint.get('model_name')!r} (expected {model_name!r})")
    if card is not None:
        have = checkpoint.get("card") or {}
        for key in ("name", "modalities", "tasks"):
            if _plain(have.get(key)) != _plain(card.get(key)):
                differ.append(f"card {key} {have.get(key)!r} (expected {card.get(key)!r})")
    if task is not None and checkpoint.get("task") != task:
        differ.append(f"task {checkpoint.get('task')!r} (expected {task!r})")
    if differ:
        raise InputDataError(f"checkpoint {path} is incompatible: " + "; ".join(differ)
                             + ". Retrain the fold with this gliofuse version and configuration.")
    return checkpoint


def _plain(value: Any) -> Any:
    """Lists and tuples compare equal (a card read back from a file holds lists)."""
    return json.loads(jsonable_str(value))
