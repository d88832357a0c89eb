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


@pytest.fixture(scope="session")
def roi_slides(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The same real TCGA glioma ROI as a 40x slide (1024² px at 0.25 µm/px; levels 1 and 4, no 20x level)
    and as a 20x slide (512² px at 0.5 µm/px)."""
    import numpy as np
    from PIL import Image

    from gliofuse.demo.svs import write_aperio_svs_

    roi = min((shared_data / "gbmlgg_rois").glob("*.png"))
    rgb = np.asarray(Image.open(roi).convert("RGB"))[:1024, :1024]
    d = tmp_path_factory.mktemp("roi_slides")
    out = {"40x": d / "roi-40x.svs", "20x": d / "roi-20x.svs"}
    write_aperio_svs_(out["40x"], np.ascontiguousarray(rgb), mpp=0.25, app_mag=40, min_level_px=256)
    half = np.asarray(Image.fromarray(rgb).resize((512, 512), Image.Resampling.BOX))
    write_aperio_svs_(out["20x"], half, mpp=0.5, app_mag=20)
    return out


@pytest.fixture(scope="session")
def roi_coords(roi_slides: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Coords h5 of ``roi_slides`` at 20x (patches of 256 px; the ROI is all tissue: every grid patch)."""
    d = tmp_path_factory.mktemp("roi_coords")
    cfg = WsiConfig(min_tissue_fraction=0.0, saturation_threshold=8)  # all tissue: Otsu would split it
    return {k: _patch(p, d, cfg) for k, p in roi_slides.items()}
