"""Fixtures for the wsi tests: real slides and synthetic Aperio SVS slides with tissue blobs on white."""

from __future__ import annotations

import os
from pathlib import Path

os.environ["HF_HUB_OFFLINE"] = "1"

import pytest
from wsi_synthetic import tissue_image

from gliofuse.demo.svs import write_aperio_svs_

CMU = "CMU-1-Small-Region.svs"
TCGA_NO_MPP = "tcga-cr-7395-01a-01-ts1.svs"


@pytest.fixture(scope="session")
def synthetic_slides(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """``{"20x": 0.5 µm/px, "40x": 0.25 µm/px, "blank": no tissue, "mag_only": AppMag 10 without MPP,
    "holed": 20x with a large hole in one blob}``."""
    d = tmp_path_factory.mktemp("synthetic_slides")
    out = {}
    for key, mpp, mag in (("20x", 0.5, 20), ("40x", 0.25, 40)):
        rgb, _ = tissue_image(mpp)
        out[key] = d / f"synthetic-{key}.svs"
        write_aperio_svs_(out[key], rgb, mpp=mpp, app_mag=mag)
    rgb, _ = tissue_image(0.5, blank=True)
    out["blank"] = d / "synthetic-blank.svs"
    write_aperio_svs_(out["blank"], rgb, mpp=0.5, app_mag=20)
    rgb, _ = tissue_image(0.5, big_hole=True)
    out["holed"] = d / "synthetic-holed.svs"
    write_aperio_svs_(out["holed"], rgb, mpp=0.5, app_mag=20)
    rgb, _ = tissue_image(1.0)
    out["mag_only"] = d / "synthetic-mag-only.svs"
    write_aperio_svs_(out["mag_only"], rgb, mpp=None, app_mag=10)
    return out


@pytest.fixture(scope="session")
def cmu_slide(shared_data: Path) -> Path:
    """Real Aperio slide, 2220x2967 px, one level, mpp 0.499."""
    return shared_data / "slides" / CMU


@pytest.fixture(scope="session")
def tcga_no_mpp_slide(shared_data: Path) -> Path:
    """Real Aperio slide, 4443x3567 px, levels (1, 2.0005), no mpp and no objective power."""
    return shared_data / "slides" / TCGA_NO_MPP
