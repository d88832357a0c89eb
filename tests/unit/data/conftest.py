"""Fixtures for data tests: slide feature files written with the training tests' fold factory."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

FEATURE_DIM = 37


def load_fold_factory() -> ModuleType:
    """Import tests/unit/training/fold_factory.py by path (works under any pytest import mode)."""
    name = "gliofuse_tests_fold_factory"
    if name not in sys.modules:
        path = Path(__file__).parents[1] / "training" / "fold_factory.py"
        spec = importlib.util.spec_from_file_location(name, path)
        assert spec is not None and spec.loader is not None
        sys.modules[name] = module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    return sys.modules[name]


@pytest.fixture
def fold_factory() -> ModuleType:
    return load_fold_factory()


@pytest.fixture
def feature_dim() -> int:
    return FEATURE_DIM


@pytest.fixture
def slides(tmp_path: Path, fold_factory: ModuleType) -> dict[str, Path]:
    """Two patients: TCGA-02-0001 with two ok slides (11 and 4 patches), TCGA-02-0002 with one ok slide
    (7 patches) and one skipped slide (0 patches); D = ``FEATURE_DIM``."""
    rng = np.random.default_rng(0)
    paths = {
        "a1": tmp_path / "TCGA-02-0001-01Z-00-DX1.AAAA.h5",
        "a2": tmp_path / "TCGA-02-0001-01Z-00-DX2.BBBB.h5",
        "b1": tmp_path / "TCGA-02-0002-01Z-00-DX1.CCCC.h5",
        "b_skip": tmp_path / "TCGA-02-0002-01Z-00-DX2.DDDD.h5",
    }
    fold_factory.write_feature_file(paths["a1"], rng.standard_normal((11, FEATURE_DIM)))
    fold_factory.write_feature_file(paths["a2"], rng.standard_normal((4, FEATURE_DIM)))
    fold_factory.write_feature_file(paths["b1"], rng.standard_normal((7, FEATURE_DIM)))
    fold_factory.write_feature_file(paths["b_skip"], np.zeros((0, FEATURE_DIM)), status="skipped")
    return paths
