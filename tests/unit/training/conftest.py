"""Fixtures for training tests: synthetic fold inputs and a small, fast config."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest


def load_fold_factory() -> ModuleType:
    """Import tests/unit/training/fold_factory.py by path (works under any pytest import mode)."""
    name = "gliofuse_tests_fold_factory"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, Path(__file__).with_name("fold_factory.py"))
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


SMALL_OVERRIDES: dict[str, dict[str, Any]] = {
    "abmil": {"embed_dim": 24, "attn_dim": 12, "dropout": 0.1},
    "snn": {"hidden_dims": [24, 24], "dropout": 0.1},
    "abmil_snn_concat": {"wsi_embed_dim": 24, "attn_dim": 12, "omics_hidden_dims": [24, 24],
                         "fusion_dim": 24, "dropout": 0.1},
}


def small_config(**training: Any) -> Any:
    from gliofuse.config import parse_config

    t = {"epochs": 3, "batch_size": 8, "lr": 3e-3, "weight_decay": 1e-4, "patience": 10, "max_patches": 9,
         "n_top_genes": 19, "device": "cpu", "model_overrides": SMALL_OVERRIDES}
    t.update(training)
    return parse_config({"seed": 7, "training": t})


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread() -> Iterator[None]:
    """Training tests use one intra-op thread: tiny models, and no spin-wait under ``pytest -n``."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def fold_factory() -> ModuleType:
    """The synthetic-input factory module (tests/unit/training/fold_factory.py)."""
    return load_fold_factory()


@pytest.fixture(scope="session")
def make_config() -> Any:
    """``make_config(**training)`` -> a small, fast GliofuseConfig."""
    return small_config


@pytest.fixture(scope="module")
def fold_inputs(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A 36-patient synthetic cohort with 3 folds (module-scoped: read-only inputs)."""
    return load_fold_factory().make_fold_inputs(tmp_path_factory.mktemp("fold_inputs"))
