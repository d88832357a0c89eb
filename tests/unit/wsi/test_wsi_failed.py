"""A slide that cannot be opened or read is recorded ``failed`` with its reason; its outputs are still written."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np
import pytest
import tifffile
from PIL import Image
from wsi_synthetic import tissue_image

from gliofuse.config import WsiConfig
from gliofuse.wsi import read_coords_h5
from gliofuse.wsi.patch import patch_slide_

DESCRIPTION = "Aperio Image Library v12\n256x256 -> 256x256 - |AppMag = 20|MPP = 0.5"


def _outputs(out: Path) -> dict[str, Path]:
    return {"out_coords": out / "c.h5", "out_qc": out / "qc.png", "out_status": out / "s.json",
            "out_geojson": out / "g.geojson", "out_thumbnail": out / "t.jpg", "out_contours": out / "k.jpg"}


def _patch(slide: Path, out: Path) -> tuple[dict, dict[str, Path]]:
    paths = _outputs(out)
    return patch_slide_(slide_path=slide, cfg=WsiConfig(), **paths), paths


def _truncated(ok: Path, dst: Path) -> None:
    data = ok.read_bytes()
    dst.write_bytes(data[: len(data) // 2])


def _tiled_tiff(dst: Path, compression: int | str) -> None:
    rgb, _ = tissue_image(0.5)
    with tifffile.TiffWriter(dst) as tw:
        tw.write(rgb, tile=(256, 256), compression=compression, photometric="rgb", description=DESCRIPTION,
                 metadata=None)


def _corrupt_tile(ok: Path, dst: Path) -> None:
    """A copy whose first level-0 JPEG tile is zeroed after its first third: OpenSlide opens the file, and
    reading the tile (here: the QC thumbnail, read from level 0) fails mid-slide."""
    data = bytearray(ok.read_bytes())
    with tifffile.TiffFile(ok) as t:
        off, cnt = t.pages[0].dataoffsets[0], t.pages[0].databytecounts[0]
    data[off + cnt // 3: off + cnt] = b"\x00" * (cnt - cnt // 3)
    dst.write_bytes(bytes(data))


CASES: dict[str, tuple[Callable[[Path, Path], None], str]] = {
    "truncated": (_truncated, "cannot open slide"),
    "empty": (lambda ok, dst: dst.write_bytes(b""), "is empty (0 bytes)"),
    "not_a_wsi": (lambda ok, dst: dst.write_text("this is a text file, not a slide\n"), "cannot open slide"),
    # a TIFF in a compression OpenSlide cannot decode (generic JPEG 2000, 34712)
    "unsupported_compression": (lambda ok, dst: _tiled_tiff(dst, "jpeg2000"), "Unsupported TIFF compression"),
    "corrupt_tile": (_corrupt_tile, "cannot read region"),
}


@pytest.mark.parametrize("kind", sorted(CASES))
def test_unreadable_slide_is_recorded_failed(kind: str, synthetic_slides: dict[str, Path], tmp_path: Path) -> None:
    make, message = CASES[kind]
    slide = tmp_path / f"bad-{kind}.svs"
    make(synthetic_slides["20x"], slide)
    rec, paths = _patch(slide, tmp_path / "out")
    assert rec["status"] == "failed" and rec["n_patches"] == 0
    assert rec["reason"].startswith("unreadable: ") and message in rec["reason"], rec["reason"]
    assert str(slide) in rec["reason"] and "re-download" in rec["reason"]  # names the file and the fix
    if kind == "unsupported_compression":  # the fix for a readable file in a compression OpenSlide lacks
        assert "convert it to a tiled JPEG pyramid" in rec["reason"]
    assert json.loads(paths["out_status"].read_text()) == rec
    cf = read_coords_h5(paths["out_coords"])
    assert cf.coords.shape == (0, 2) and cf.status == "failed" and cf.reason == rec["reason"]
    assert int(cf.attrs["read_level"]) == -1 and np.isnan(cf.attrs["mpp_level0"])
    with h5py.File(paths["out_coords"], "r") as f:
        assert f["coords"].attrs["name"] == slide.stem
    geo = json.loads(paths["out_geojson"].read_text())
    assert geo["features"] == [] and geo["properties"]["status"] == "failed"
    for key in ("out_qc", "out_thumbnail", "out_contours"):
        with Image.open(paths[key]) as im:
            assert im.size[0] > 0, key


def test_jpeg2000_aperio_slide_is_readable(tmp_path: Path) -> None:
    # Aperio's JPEG 2000 (compression 33005, RGB) is decoded by OpenSlide: a normal slide, not a failure
    slide = tmp_path / "jp2k.svs"
    _tiled_tiff(slide, 33005)
    rec, paths = _patch(slide, tmp_path / "out")
    assert rec["status"] == "ok" and rec["n_patches"] > 0 and rec["mpp_level0"] == pytest.approx(0.5)
    assert read_coords_h5(paths["out_coords"]).coords.shape == (rec["n_patches"], 2)


def test_good_slide_is_not_failed(synthetic_slides: dict[str, Path], tmp_path: Path) -> None:
    rec, _ = _patch(synthetic_slides["20x"], tmp_path / "out")
    assert rec["status"] == "ok" and rec["reason"] == "" and rec["n_patches"] > 0
