"""The package's import layering (pyproject.toml [tool.importlinter]) holds, and the contracts do catch a breach."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO

LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(root / "src")}
    return subprocess.run([str(LINT_IMPORTS), "--no-cache", "--config", str(root / "pyproject.toml")], cwd=root,
                          env=env, check=False, capture_output=True, text=True, timeout=120)


def test_import_layers_are_kept() -> None:
    res = _lint_imports(REPO)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "4 kept, 0 broken" in res.stdout


def test_contracts_catch_a_report_importing_training_and_src_importing_tests(tmp_path: Path) -> None:
    shutil.copytree(REPO / "src", tmp_path / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    with (tmp_path / "src/gliofuse/report/tables.py").open("a") as fh:
        fh.write("\nimport gliofuse.training.fit  # noqa: E402,F401\n")
    with (tmp_path / "src/gliofuse/wsi/grid.py").open("a") as fh:
        fh.write("\nimport gliofuse.features.store  # noqa: E402,F401\n")
    with (tmp_path / "src/gliofuse/io.py").open("a") as fh:
        fh.write("\nimport tests.fakes  # noqa: E402,F401\n")
    res = _lint_imports(tmp_path)
    assert res.returncode != 0
    out = " ".join(res.stdout.split())
    assert "gliofuse.report is not allowed to import gliofuse.training" in out
    assert "gliofuse.wsi.grid -> gliofuse.features.store" in out
    assert "gliofuse is not allowed to import tests" in out and "gliofuse.io -> tests" in out
    assert "3 broken" in out  # training stack (wsi -> features), report torch-free, no test code
