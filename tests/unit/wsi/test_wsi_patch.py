"""patch_slide_ (gliofuse.wsi.patch, what the CLI calls) end to end: outputs follow docs/data-contracts.md §4."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest
from PIL import Image

from gliofuse.config import WsiConfig
from gliofuse.wsi import REASON_MISSING_MPP, read_coords_h5
from gliofuse.wsi.patch import patch_slide_

STATUS_KEYS = {"slide_id", "stage", "status", "reason", "n_patches", "mpp_level0", "mpp_source", "tissue_fraction",
               "preset", "overrides", "n_tissue_regions", "n_holes", "seg_threshold"}


def _run(slide: Path, out: Path, cfg: WsiConfig | None = None, **kw: Any) -> tuple[dict, Path, Path, Path]:
    paths = out / "coords" / f"{slide.stem}.h5", out / "qc" / f"{slide.stem}.png", out / "status" / f"{slide.stem}.json"
    rec = patch_slide_(slide_path=slide, cfg=cfg or WsiConfig(), out_coords=paths[0], out_qc=paths[1],
                       out_status=paths[2], out_geojson=out / "geojson" / f"{slide.stem}.geojson",
                       out_thumbnail=out / "thumbnails" / f"{slide.stem}.jpg",
                       out_contours=out / "contours" / f"{slide.stem}.jpg", **kw)
    return rec, *paths


def test_cmu_contract(cmu_slide: Path, tmp_path: Path) -> None:
    rec, coords_p, qc_p, status_p = _run(cmu_slide, tmp_path)
    assert rec["status"] == "ok" and rec["reason"] == ""
    assert set(rec) == STATUS_KEYS and json.loads(status_p.read_text()) == rec
    with h5py.File(coords_p, "r") as f:
        assert f["coords"].dtype == np.int64 and f["coords"].shape == (rec["n_patches"], 2)
        assert f["tissue_fraction"].dtype == np.float32
        for name in ("patch_size", "patch_size_level0", "read_level", "read_size"):
            assert isinstance(f.attrs[name], np.integer), name
        for name in ("level0_magnification", "target_magnification", "mpp_level0", "target_mpp"):
            assert isinstance(f.attrs[name], np.floating), name
        for name in ("mpp_source", "slide_id", "slide_hash", "status", "reason", "provenance"):
            assert isinstance(f.attrs[name], str), name
    cf = read_coords_h5(coords_p)
    a = cf.attrs
    assert a["patch_size"] == 256 and abs(a["patch_size_level0"] - 256) <= 1
    assert a["mpp_level0"] == 0.499 and a["mpp_source"] == "openslide.mpp-x" and a["target_mpp"] == 0.5
    assert a["slide_id"] == "CMU-1-Small-Region" and a["slide_hash"].startswith("sha256:")
    prov = json.loads(a["provenance"])
    assert set(prov) >= {"gliofuse_version", "code_version", "config_hash", "inputs"} and "slide" in prov["inputs"]
    assert 15 <= len(cf.coords) <= 60
    assert (cf.tissue_fraction >= 0.5).all() and (cf.tissue_fraction <= 1).all()
    ps0 = a["patch_size_level0"]
    assert (cf.coords % ps0 == 0).all()
    assert (cf.coords[:, 0] + ps0 <= 2220).all() and (cf.coords[:, 1] + ps0 <= 2967).all()
    assert (np.lexsort((cf.coords[:, 0], cf.coords[:, 1])) == np.arange(len(cf.coords))).all()
    assert 0.25 < rec["tissue_fraction"] < 0.45
    assert json.loads(a["parameters"])["seg_mpp"] == 8.0 and json.loads(a["parameters"])["overrides"] == []
    assert (a["level0_width"], a["level0_height"]) == (2220, 2967)
    with h5py.File(coords_p, "r") as f:  # TRIDENT/CLAM-compatible attributes on the coords dataset
        d = dict(f["coords"].attrs)
    assert d["patch_size"] == 256 and d["patch_size_level0"] == a["patch_size_level0"] and d["patch_level"] == 0
    assert d["level0_magnification"] == pytest.approx(20.04, abs=0.01) and d["target_magnification"] == 20.0
    assert d["name"] == "CMU-1-Small-Region" and d["overlap"] == 0 and list(d["level_dim"]) == [2220, 2967]
    assert list(d["downsample"]) == [1.0, 1.0] and list(d["downsampled_level_dim"]) == [2220, 2967]
    qc = Image.open(qc_p)
    assert qc.format == "PNG" and max(qc.size) == 1024
    for sub in ("thumbnails", "contours"):
        im = Image.open(tmp_path / sub / "CMU-1-Small-Region.jpg")
        assert im.format == "JPEG" and im.size == qc.size
    gj = json.loads((tmp_path / "geojson" / "CMU-1-Small-Region.geojson").read_text())
    assert gj["type"] == "FeatureCollection" and len(gj["features"]) == rec["n_tissue_regions"] >= 1
    assert rec["seg_threshold"] >= 8 and rec["preset"] is None and rec["overrides"] == []
    assert not [p for p in tmp_path.rglob(".*.tmp")]  # atomic writes left no temporaries


def test_missing_mpp_is_skipped_not_crash(tcga_no_mpp_slide: Path, tmp_path: Path) -> None:
    rec, coords_p, qc_p, _ = _run(tcga_no_mpp_slide, tmp_path)
    assert rec["status"] == "skipped" and rec["reason"] == REASON_MISSING_MPP
    assert rec["mpp_level0"] is None and rec["mpp_source"] == "missing" and rec["n_patches"] == 0
    cf = read_coords_h5(coords_p)
    assert cf.coords.shape == (0, 2) and cf.coords.dtype == np.int64 and cf.tissue_fraction.shape == (0,)
    assert cf.status == "skipped" and cf.reason.startswith("missing_mpp")
    assert np.isnan(cf.attrs["mpp_level0"]) and qc_p.is_file()
    gj = json.loads((tmp_path / "geojson" / f"{tcga_no_mpp_slide.stem}.geojson").read_text())
    assert gj["features"] == [] and gj["properties"]["status"] == "skipped"
    assert (tmp_path / "thumbnails" / f"{tcga_no_mpp_slide.stem}.jpg").is_file()


def test_missing_mpp_with_default_or_override(tcga_no_mpp_slide: Path, tmp_path: Path) -> None:
    rec, coords_p, *_ = _run(tcga_no_mpp_slide, tmp_path / "a", WsiConfig(default_mpp=0.25))
    assert rec["status"] == "ok" and rec["mpp_source"] == "default_mpp" and rec["n_patches"] > 10
    a = read_coords_h5(coords_p).attrs
    assert (a["patch_size_level0"], a["read_level"], a["read_size"]) == (512, 1, 256)
    rec2, *_ = _run(tcga_no_mpp_slide, tmp_path / "b", WsiConfig(default_mpp=0.25), mpp_override=0.5)
    assert rec2["mpp_source"] == "override" and rec2["mpp_level0"] == 0.5
    assert rec2["n_patches"] > 2 * rec["n_patches"]


def test_40x_vs_20x_same_tissue(synthetic_slides: dict[str, Path], tmp_path: Path) -> None:
    r20, c20, *_ = _run(synthetic_slides["20x"], tmp_path)
    r40, c40, *_ = _run(synthetic_slides["40x"], tmp_path)
    a20, a40 = read_coords_h5(c20), read_coords_h5(c40)
    assert a20.attrs["patch_size_level0"] == 256
    assert a40.attrs["patch_size_level0"] == 2 * a20.attrs["patch_size_level0"]
    assert a40.attrs["level0_magnification"] == 40.0 and a20.attrs["level0_magnification"] == 20.0
    assert r20["n_patches"] > 10
    assert abs(r40["n_patches"] - r20["n_patches"]) <= max(2, 0.1 * r20["n_patches"])
    # same physical grid: 40x coords are 2x the 20x coords for the patches both keep
    s20 = {tuple(c) for c in (a20.coords * 2).tolist()}
    s40 = {tuple(c) for c in a40.coords.tolist()}
    assert len(s20 & s40) >= 0.9 * min(len(s20), len(s40))


def test_blank_slide_no_tissue(synthetic_slides: dict[str, Path], tmp_path: Path) -> None:
    rec, coords_p, *_ = _run(synthetic_slides["blank"], tmp_path)
    assert rec["status"] == "skipped" and rec["reason"] == "no_tissue" and rec["n_patches"] == 0
    assert read_coords_h5(coords_p).coords.shape == (0, 2)


def test_strict_tissue_fraction_keeps_fewer(synthetic_slides: dict[str, Path], tmp_path: Path) -> None:
    loose, *_ = _run(synthetic_slides["20x"], tmp_path / "l", WsiConfig(min_tissue_fraction=0.0))
    strict, *_ = _run(synthetic_slides["20x"], tmp_path / "s", WsiConfig(min_tissue_fraction=1.0))
    assert loose["n_patches"] > strict["n_patches"] > 0
