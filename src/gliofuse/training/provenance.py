"""What a fold's outputs depend on, and whether finished outputs (or a ``last.pt``) can be reused. Torch-free."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gliofuse.config import GliofuseConfig
from gliofuse.io import sidecar_path

if TYPE_CHECKING:
    from gliofuse.features.store import FeatureFileInfo

REUSE_KEYS: tuple[str, ...] = ("gliofuse_version", "config_hash", "inputs", "extra")
"""Provenance fields that must match for finished outputs to be reused or a ``last.pt`` to be resumed."""

_NOT_IN_FOLD_CONFIG = frozenset({"models", "tasks", "device", "resume", "keep_epoch_checkpoints", "model_overrides",
                                 "model_training", "folds_per_job"})


def fold_settings(cfg: GliofuseConfig, model_name: str, task: str, params: dict[str, Any],
                  tasks: Sequence[str] = ()) -> dict[str, Any]:
    """The settings a fold's result depends on (model list, device and bookkeeping options excluded)."""
    training = cfg.training.for_model(model_name).for_task(task)
    t = training.model_dump(mode="json")
    settings = {k: v for k, v in t.items() if k not in _NOT_IN_FOLD_CONFIG}
    if not training.multitask:
        settings.pop("loss_weights")
    return {"seed": cfg.seed, "model": model_name, "task": task, "model_params": params,
            "trained_tasks": list(tasks or [task]), **settings}


def features_digest(infos: Sequence[FeatureFileInfo]) -> str:
    """Cheap identity of the feature files: name, shape and their own provenance attribute."""
    blob = json.dumps([[i.path.name, i.status, i.n_patches, i.embed_dim, i.provenance] for i in infos])
    return "sha256:" + hashlib.sha256(blob.encode()).hexdigest()


def jsonable_str(obj: Any) -> str:
    """Canonical JSON text (sorted keys; non-JSON values as ``str``)."""
    return json.dumps(obj, sort_keys=True, default=str)


def same_provenance(old: Mapping[str, Any], new: Mapping[str, Any]) -> bool:
    """True when the :data:`REUSE_KEYS` of two provenance records agree (compared as canonical JSON)."""
    return all(json.loads(jsonable_str(old.get(k))) == json.loads(jsonable_str(new.get(k))) for k in REUSE_KEYS)


def is_fold_done(out_dir: Path, prov: Mapping[str, Any]) -> bool:
    """True when ``out_dir`` holds finished outputs whose provenance matches ``prov``."""
    pred = Path(out_dir) / "predictions.tsv"
    side = sidecar_path(pred)
    if not (pred.exists() and side.exists() and (Path(out_dir) / "checkpoint.pt").exists()):
        return False
    try:
        old = json.loads(side.read_text())
    except (OSError, json.JSONDecodeError):
        return False
    return same_provenance(old, prov)
