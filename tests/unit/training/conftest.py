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


SUBSPACE_SMALL: dict[str, Any] = {"dim": 16, "gene_hidden_dims": [12, 8], "grid_size": 8, "heads": 2, "dim_head": 8}
DEFORM_SMALL: dict[str, Any] = {"offset_groups": 2, "downsample": 2, "offset_kernel": 3, "cpb_hidden": 8}


def _subspace_small(name: str) -> dict[str, Any]:
    from gliofuse.models.registry import get_model_card

    defaults = get_model_card(name).defaults
    return {k: v for k, v in {**SUBSPACE_SMALL, **DEFORM_SMALL}.items() if k in defaults}


SMALL_OVERRIDES: dict[str, dict[str, Any]] = {
    "abmil": {"embed_dim": 24, "attn_dim": 12, "dropout": 0.1},
    "snn": {"hidden_dims": [24, 24], "dropout": 0.1},
    "abmil_snn_concat": {"wsi_embed_dim": 24, "attn_dim": 12, "omics_hidden_dims": [24, 24],
                         "fusion_dim": 24, "dropout": 0.1},
    **{name: _subspace_small(name) for name in ("subspace_fusion", "subspace_fusion_no_split",
                                                "subspace_fusion_no_deform", "subspace_fusion_no_cons",
                                                "subspace_fusion_no_gc")},
}


def small_config(**training: Any) -> Any:
    from gliofuse.config import parse_config

    t = {"epochs": 3, "batch_size": 8, "lr": 3e-3, "weight_decay": 1e-4, "patience": 10, "max_patches": 9,
         "n_top_genes": 19, "device": "cpu", "model_overrides": SMALL_OVERRIDES}
    overrides = training.pop("model_overrides", {})
    t.update(training)
    t["model_overrides"] = {k: {**SMALL_OVERRIDES.get(k, {}), **overrides.get(k, {})}
                            for k in {*SMALL_OVERRIDES, *overrides}}
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
def subspace_inputs(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A 90-patient cohort with two latent factors, real gene symbols and patch coordinates."""
    return load_fold_factory().make_subspace_inputs(tmp_path_factory.mktemp("subspace_inputs"), n_patients=90)


@pytest.fixture(scope="module")
def fold_inputs(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A 36-patient synthetic cohort with 3 folds (module-scoped: read-only inputs)."""
    return load_fold_factory().make_fold_inputs(tmp_path_factory.mktemp("fold_inputs"))
