"""Fixtures for the features tests: coords files of the real test slides."""

from __future__ import annotations

import os
from pathlib import Path

os.environ["HF_HUB_OFFLINE"] = "1"

import pytest

from gliofuse.config import WsiConfig
from gliofuse.wsi import patch_slide_

CMU = "CMU-1-Small-Region.svs"
TCGA_NO_MPP = "tcga-cr-7395-01a-01-ts1.svs"


def _patch(slide: Path, out: Path, cfg: WsiConfig) -> Path:
    coords = out / f"{slide.stem}.h5"
    patch_slide_(slide_path=slide, cfg=cfg, out_coords=coords, out_qc=out / f"{slide.stem}.png",
                 out_status=out / f"{slide.stem}.json")
    return coords


@pytest.fixture(scope="session")
def cmu_coords(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(slide, coords h5) of CMU-1-Small-Region patched at 20x: ~30 patches of 256 px."""
    slide = shared_data / "slides" / CMU
    return slide, _patch(slide, tmp_path_factory.mktemp("coords_cmu"), WsiConfig())


@pytest.fixture(scope="session")
def skipped_coords(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(slide, coords h5) of the slide without mpp: status skipped, 0 patches."""
    slide = shared_data / "slides" / TCGA_NO_MPP
    return slide, _patch(slide, tmp_path_factory.mktemp("coords_skip"), WsiConfig())
