"""`gliofuse train folds` (training.folds_per_job: all): several folds in one process, each exactly as its own job."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

from gliofuse.errors import ConfigError
from gliofuse.training.fold import train_folds_
from gliofuse.training.provenance import fold_settings

MODEL = "abmil_snn_concat"
FOLDS = (0, 1)


def _cli(config: Path, inp: Any, verb: str, *args: str) -> None:
    cmd = [sys.executable, "-m", "gliofuse", "train", verb, "--config", str(config), "--model", MODEL,
           "--task", "survival", "--labels", str(inp.labels_path), "--omics", str(inp.omics_path),
           "--features", *map(str, inp.feature_paths), "--threads", "1", *args]
    proc = subprocess.run(cmd, check=False, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]


@pytest.fixture(scope="module")
def two_runs(fold_inputs: Any, make_config: Any, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Folds 0 and 1 trained by one fresh process per fold (``train fold``) and by one process (``train folds``)."""
    root = tmp_path_factory.mktemp("folds")
    config = root / "config.yaml"
    config.write_text(yaml.safe_dump(make_config(epochs=4).model_dump(mode="json")))
    per_fold, per_task = root / "per_fold", root / "per_task"
    for k in FOLDS:
        _cli(config, fold_inputs, "fold", "--split", str(fold_inputs.split_paths[k]),
             "--out-dir", str(per_fold / f"fold_{k}"))
    _cli(config, fold_inputs, "folds", "--splits", *(str(fold_inputs.split_paths[k]) for k in FOLDS),
         "--out-dirs", *(str(per_task / f"fold_{k}") for k in FOLDS))
    return per_fold, per_task


@pytest.mark.parametrize("fold", FOLDS)
def test_each_fold_is_bit_identical_to_its_own_job(two_runs: tuple[Path, Path], fold: int) -> None:
    """Fold 1 trains after fold 0 in the same process: no state of fold 0 (RNG, caches, lazy imports) leaks in."""
    per_fold, per_task = (run / f"fold_{fold}" for run in two_runs)
    for name in ("predictions.tsv", "predictions.tsv.prov.json", "gc_dynamics.tsv"):
        assert (per_task / name).read_bytes() == (per_fold / name).read_bytes(), name
    a = torch.load(per_fold / "checkpoint.pt", map_location="cpu", weights_only=False)
    b = torch.load(per_task / "checkpoint.pt", map_location="cpu", weights_only=False)
    state_a, state_b = a["model_state"], b["model_state"]
    assert state_a.keys() == state_b.keys()
    assert all(torch.equal(state_a[k], state_b[k]) for k in state_a)


def test_folds_differ_from_each_other(two_runs: tuple[Path, Path]) -> None:
    """The comparison above is not vacuous: the two folds' outputs are different files."""
    _, per_task = two_runs
    assert (per_task / "fold_0" / "predictions.tsv").read_bytes() != (per_task / "fold_1" / "predictions.tsv").read_bytes()


def test_unpaired_or_repeated_out_dirs_are_rejected(fold_inputs: Any, make_config: Any, tmp_path: Path) -> None:
    kwargs = {"cfg": make_config(), "model_name": MODEL, "task": "survival", "labels_path": fold_inputs.labels_path,
              "omics_path": fold_inputs.omics_path, "feature_paths": fold_inputs.feature_paths}
    with pytest.raises(ConfigError, match="one --out-dirs folder per --splits file"):
        train_folds_(split_paths=fold_inputs.split_paths[:2], out_dirs=[tmp_path / "a"], **kwargs)
    with pytest.raises(ConfigError, match="given twice"):
        train_folds_(split_paths=fold_inputs.split_paths[:2], out_dirs=[tmp_path / "a", tmp_path / "a"], **kwargs)
    assert not (tmp_path / "a").exists()  # checked before any training


def test_folds_per_job_is_a_run_setting(make_config: Any) -> None:
    """Switching the job layout does not retrain finished folds (not in the fold's settings), nor is it per model."""
    one, all_ = make_config(folds_per_job="one"), make_config(folds_per_job="all")
    assert fold_settings(one, MODEL, "survival", {}) == fold_settings(all_, MODEL, "survival", {})
    with pytest.raises(ValueError, match="folds_per_job"):
        make_config(model_training={MODEL: {"folds_per_job": "all"}})
    with pytest.raises(ValueError, match="folds_per_job"):
        make_config(folds_per_job=3)
