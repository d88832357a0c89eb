"""Common test setup: offline hub, PATH with the venv's console scripts, shared-data location."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("MPLBACKEND", "Agg")
# the `gliofuse` console script lives next to the interpreter running the tests
os.environ["PATH"] = str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", "")

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data (real public TCGA tables and slides); tests may read it, the product may not."""
    if not SHARED.exists():
        pytest.fail(f"{SHARED} is missing: the test suite needs ../shared beside the checkout")
    return SHARED
