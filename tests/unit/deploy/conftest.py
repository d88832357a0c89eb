"""Fixtures for bundle tests: a tiny real training run (2 folds of 3) per model and task, with the fold
predictions captured at full precision (``predictions.tsv`` holds 6 significant digits)."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pandas as pd
import pytest

TRAINING_TESTS = Path(__file__).resolve().parents[1] / "training"


def _load(name: str, path: Path) -> ModuleType:
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


def fold_factory() -> ModuleType:
    return _load("gliofuse_tests_fold_factory", TRAINING_TESTS / "fold_factory.py")


def small_config(**training: Any) -> Any:
    return _load("gliofuse_tests_training_conftest", TRAINING_TESTS / "conftest.py").small_config(**training)


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread() -> Any:
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """36 synthetic patients, 3 folds, feature files with coords (encoder ``test_encoder``, D = 37), 23 genes."""
    return fold_factory().make_fold_inputs(tmp_path_factory.mktemp("cohort"))


@pytest.fixture(scope="module")
def train_run(cohort: Any, tmp_path_factory: pytest.TempPathFactory) -> Callable[..., tuple[Path, dict[int, pd.DataFrame]]]:
    """``train_run(model, task, **training)`` -> (training dir, {fold: full-precision predictions}) of folds 0, 1."""
    import gliofuse.training.fit as fit_module
    from gliofuse.training.fold import train_fold_

    done: dict[str, tuple[Path, dict[int, pd.DataFrame]]] = {}

    def run(model: str, task: str, **training: Any) -> tuple[Path, dict[int, pd.DataFrame]]:
        key = repr((model, task, sorted(training.items())))
        if key in done:
            return done[key]
        cfg = small_config(epochs=1, **training)
        root = tmp_path_factory.mktemp(f"train_{model}_{task}")
        captured: dict[int, pd.DataFrame] = {}
        real = fit_module.write_table_

        def capture(path: Path, df: pd.DataFrame, *, prov: Any) -> None:
            if Path(path).name == "predictions.tsv":
                captured[int(df["fold"].iloc[0])] = df.copy()
            real(path, df, prov=prov)

        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(fit_module, "write_table_", capture)
            for k in (0, 1):
                train_fold_(cfg=cfg, model_name=model, task=task, split_path=cohort.split_paths[k],
                            labels_path=cohort.labels_path, omics_path=cohort.omics_path,
                            feature_paths=cohort.feature_paths, out_dir=root / model / task / f"fold_{k}")
        done[key] = root, captured
        return root, captured

    return run


@pytest.fixture(scope="module")
def bundle_of(train_run: Any, cohort: Any) -> Callable[..., tuple[Path, dict[int, pd.DataFrame]]]:
    """``bundle_of(model, task, **training)`` -> (bundle folder, {fold: full-precision predictions})."""
    from gliofuse.deploy.bundle import export_bundles_

    def export(model: str, task: str, **training: Any) -> tuple[Path, dict[int, pd.DataFrame]]:
        root, captured = train_run(model, task, **training)
        [path] = export_bundles_(cfg=small_config(epochs=1, **training),
                                 checkpoints=sorted(root.glob(f"{model}/{task}/fold_*/checkpoint.pt")),
                                 omics_path=cohort.omics_path, feature_paths=cohort.feature_paths,
                                 out_root=root / "models")
        return path.parent, captured

    return export


@pytest.fixture(scope="session")
def factory() -> ModuleType:
    """tests/unit/training/fold_factory.py (writers of synthetic feature files and omics matrices)."""
    return fold_factory()


@pytest.fixture(scope="session")
def make_config() -> Callable[..., Any]:
    """``make_config(**training)`` -> the small training config of tests/unit/training."""
    return small_config
