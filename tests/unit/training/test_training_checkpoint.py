"""The versioned checkpoint: a fold's checkpoint.pt loads, and an incompatible one is refused by name."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from gliofuse.errors import InputDataError
from gliofuse.training.checkpoint import CHECKPOINT_FORMAT_VERSION, load_checkpoint_, save_checkpoint_

CARD = {"name": "snn", "modalities": ["omics"], "tasks": ["survival", "grade"]}


def _write(path: Path, **fields: Any) -> Path:
    save_checkpoint_(path, {"model_name": "snn", "card": CARD, "task": "survival", "model_state": {}, **fields})
    return path


def test_a_saved_checkpoint_carries_the_format_version_and_loads(tmp_path: Path) -> None:
    path = _write(tmp_path / "checkpoint.pt")
    assert torch.load(path, weights_only=False)["format_version"] == CHECKPOINT_FORMAT_VERSION
    ckpt = load_checkpoint_(path, model_name="snn", card={**CARD, "tasks": ("survival", "grade")}, task="survival")
    assert ckpt["model_name"] == "snn"


def test_an_incompatible_checkpoint_is_refused_naming_what_differs(tmp_path: Path) -> None:
    path = _write(tmp_path / "checkpoint.pt")
    with pytest.raises(InputDataError, match=r"model 'snn' \(expected 'abmil'\).*task 'survival' \(expected 'grade'\)"):
        load_checkpoint_(path, model_name="abmil", task="grade")
    with pytest.raises(InputDataError, match="card modalities"):
        load_checkpoint_(path, card={**CARD, "modalities": ["wsi", "omics"]})
    old = tmp_path / "old.pt"
    torch.save({"model_name": "snn", "task": "survival"}, old)  # written before format_version existed
    with pytest.raises(InputDataError, match=f"format_version None \\(this gliofuse reads {CHECKPOINT_FORMAT_VERSION}\\)"):
        load_checkpoint_(old)
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(InputDataError, match="cannot read checkpoint"):
        load_checkpoint_(tmp_path / "junk.pt")


def test_a_trained_fold_checkpoint_loads_with_its_model_and_task(fold_inputs: Any, tmp_path: Path,
                                                               make_config: Any) -> None:
    from gliofuse.models.registry import get_model_card
    from gliofuse.training.fold import train_fold_

    train_fold_(cfg=make_config(epochs=1), model_name="snn", task="grade", split_path=fold_inputs.split_paths[0],
                labels_path=fold_inputs.labels_path, omics_path=fold_inputs.omics_path, feature_paths=[],
                out_dir=tmp_path)
    ckpt = load_checkpoint_(tmp_path / "checkpoint.pt", model_name="snn", card=get_model_card("snn").to_dict(),
                            task="grade")
    assert ckpt["format_version"] == CHECKPOINT_FORMAT_VERSION and ckpt["fit"]["seed"] == 7
