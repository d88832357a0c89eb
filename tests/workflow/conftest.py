"""Workflow test helpers and ``demo_run``: the reduced demo workflow, run once per test session.

The run is shared by every pytest-xdist worker (a file lock serialises its creation; the first
worker runs it, the others wait and reuse it). Tests treat it as read-only: a test that reruns
rules, deletes files or builds the report works on a copy (:func:`copy_run`, which keeps the
modification times and Snakemake's metadata, so the copy is up to date too).
"""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO

SNAKEMAKE = str(Path(sys.executable).parent / "snakemake")

SMALL = {
    "cohort": "demo",
    "seed": 7,
    # the demo's external site (demo.external, on by default): planned by test_external_workflow's dry run
    "demo": {"n_patients": 12, "frac_two_slides": 0.2, "slide_width_um": 700.0, "slide_height_um": 500.0,
             "n_genes": 200, "external": {"enabled": False}},
    "wsi": {"patch_px": 128},
    "features": {"encoder": "test_resnet", "batch_size": 16},
    "data": {"n_folds": 2, "val_fraction": 0.2},
    # all folds of a model x task in one job, as the demo (the per-fold rule: test_slurm, test_gdc_workflow)
    "training": {"epochs": 3, "patience": 2, "n_top_genes": 32, "tasks": ["survival", "diagnosis"],
                 "folds_per_job": "all"},
    "evaluation": {"n_bootstrap": 20},
}


def snakemake(workdir: Path, *args: str, check: bool = True, timeout: int = 900) -> subprocess.CompletedProcess:
    cmd = [SNAKEMAKE, "-s", str(REPO / "Snakefile"), "--directory", str(workdir), "--cores", "2", *args]
    proc = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=timeout, cwd=workdir)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-6000:]}")
    return proc


def job_counts(output: str) -> dict[str, int]:
    """Parse Snakemake's 'Job stats' table (of a dry run or a run) into {rule: count}."""
    counts: dict[str, int] = {}
    m = re.search(r"Job stats:\n(.*?)\n\n", output, flags=re.DOTALL)
    if not m:
        return counts
    for line in m.group(1).splitlines()[2:]:
        parts = line.split()
        if len(parts) == 2 and parts[1].isdigit() and parts[0] != "total":
            counts[parts[0]] = int(parts[1])
    return counts


def write_config(workdir: Path, cfg: dict) -> Path:
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def copy_run(src: Path, dst: Path) -> Path:
    """Copy a finished workflow directory (results, config, .snakemake metadata) keeping mtimes."""
    shutil.copytree(src, dst, symlinks=True, ignore=shutil.ignore_patterns("locks", "demo_run.*"))
    return dst


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Work directory of the SMALL demo workflow, run to completion once per session (read-only)."""
    base = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        base = base.parent  # shared by the workers of this session
    run = base / "demo_run"
    done, failed = base / "demo_run.done", base / "demo_run.failed"
    with open(base / "demo_run.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if failed.exists():
                pytest.fail(f"the shared demo workflow run failed (in another worker):\n{failed.read_text()}")
            if not done.exists():
                shutil.rmtree(run, ignore_errors=True)
                write_config(run, SMALL)
                try:
                    snakemake(run)
                except AssertionError as exc:
                    failed.write_text(str(exc))
                    raise
                done.touch()
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    return run
