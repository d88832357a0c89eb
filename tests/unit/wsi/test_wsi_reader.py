"""mpp resolution, slide opening and downsampled reads."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from gliofuse.errors import SlideReadError
from gliofuse.wsi.reader import best_level, open_slide, read_downsampled, slide_mpp


def test_override_beats_metadata() -> None:
    props = {"openslide.mpp-x": "0.2520", "aperio.MPP": "0.2520", "openslide.objective-power": "40"}
    assert slide_mpp(props, override=0.5, default_mpp=1.0) == (0.5, "override")
    assert slide_mpp(props) == (0.252, "openslide.mpp-x")


def test_resolution_order() -> None:
    assert slide_mpp({"aperio.MPP": "0.499", "openslide.objective-power": "40"}) == (0.499, "aperio.MPP")
    assert slide_mpp({"tiff.XResolution": "40000", "tiff.ResolutionUnit": "centimeter",
                      "openslide.objective-power": "20"}) == (0.25, "tiff.XResolution")
    mpp, src = slide_mpp({"tiff.XResolution": "50800", "tiff.ResolutionUnit": "inch"})
    assert src == "tiff.XResolution" and mpp == pytest.approx(0.5)
    # a 72-dpi default resolution is not a scan resolution: fall through to the objective power
    assert slide_mpp({"tiff.XResolution": "72", "tiff.ResolutionUnit": "inch",
                      "openslide.objective-power": "40"}) == (0.25, "objective-power")
    # resolution without a unit is ignored
    assert slide_mpp({"tiff.XResolution": "40000", "openslide.objective-power": "20"}) == (0.5, "objective-power")


def test_default_and_missing() -> None:
    assert slide_mpp({}, default_mpp=0.25) == (0.25, "default_mpp")
    assert slide_mpp({"openslide.mpp-x": "garbage"}) == (None, "missing")
    assert slide_mpp({"openslide.mpp-x": "0"}, default_mpp=None) == (None, "missing")
    with pytest.raises(ValueError):
        slide_mpp({}, override=-1.0)


def test_real_slides_mpp(cmu_slide: Path, tcga_no_mpp_slide: Path, synthetic_slides: dict[str, Path]) -> None:
    with open_slide(cmu_slide) as s:
        assert slide_mpp(s) == (0.499, "openslide.mpp-x")
    with open_slide(tcga_no_mpp_slide) as s:
        assert slide_mpp(s) == (None, "missing")
        assert slide_mpp(s, default_mpp=0.25) == (0.25, "default_mpp")
        assert slide_mpp(s, override=0.5, default_mpp=0.25) == (0.5, "override")
    with open_slide(synthetic_slides["mag_only"]) as s:  # AppMag = 10, no MPP
        assert slide_mpp(s) == (1.0, "objective-power")


def test_open_errors_name_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "broken-slide.svs"
    bad.write_bytes(b"not a slide at all" * 100)
    with pytest.raises(SlideReadError, match="broken-slide.svs"):
        open_slide(bad)
    with pytest.raises(SlideReadError, match="missing.svs"):
        open_slide(tmp_path / "missing.svs")


def test_best_level_tolerance(tcga_no_mpp_slide: Path) -> None:
    with open_slide(tcga_no_mpp_slide) as s:  # level downsamples (1, 2.0005)
        assert best_level(s, 1.0) == 0
        assert best_level(s, 1.9) == 0
        assert best_level(s, 2.0) == 1
        assert best_level(s, 64.0) == 1


def test_read_downsampled_shape(cmu_slide: Path) -> None:
    with open_slide(cmu_slide) as s:
        img, (dx, dy) = read_downsampled(s, 7.0, max_chunk_px=333)  # odd chunking
        full, _ = read_downsampled(s, 7.0)
    assert img.shape == (round(2967 / 7), round(2220 / 7), 3) and img.dtype == np.uint8
    assert dx == pytest.approx(7.0, rel=0.01) and dy == pytest.approx(7.0, rel=0.01)
    assert np.abs(img.astype(int) - full.astype(int)).mean() < 2.0  # chunk seams do not matter
