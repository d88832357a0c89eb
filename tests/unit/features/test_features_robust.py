"""Robustness of features_extract: corrupt JPEG tiles, flaky reads, and a killed run that resumes."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import openslide
import pytest
import tifffile
import torch
import yaml

from gliofuse.config import FeaturesConfig
from gliofuse.features import loader as loader_mod
from gliofuse.features.extract import extract_slide_
from gliofuse.features.store import read_features_h5_
from gliofuse.io import file_hash
from gliofuse.wsi import read_coords_h5


def _extract(slide: Path, coords: Path, out: Path, **cfg: object) -> dict:
    return extract_slide_(slide_path=slide, coords_path=coords, cfg=FeaturesConfig(**cfg), out_path=out, seed=1,
                          out_status=out.with_suffix(".json"))


@pytest.fixture(scope="module")
def corrupt_cmu(cmu_coords: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A copy of CMU-1-Small-Region with one level-0 JPEG tile truncated (a real corrupt file), its coords
    (re-labelled with the copy's hash) and the rows of the patches that overlap the broken tile."""
    slide, coords = cmu_coords
    d = tmp_path_factory.mktemp("corrupt")
    bad = d / "CMU-1-Small-Region.svs"
    shutil.copy(slide, bad)
    cf = read_coords_h5(coords)
    ps = int(cf.attrs["patch_size_level0"])
    x, y = cf.coords[len(cf.coords) // 2]
    with tifffile.TiffFile(bad) as t:
        page = t.pages[0]
        tw, th = page.tilewidth, page.tilelength
        ncols = -(-page.imagewidth // tw)
        col, row = (x + ps // 2) // tw, (y + ps // 2) // th
        off, cnt = page.dataoffsets[row * ncols + col], page.databytecounts[row * ncols + col]
    data = bytearray(bad.read_bytes())
    data[off + cnt // 3: off + cnt] = b"\x00" * (cnt - cnt // 3)
    bad.write_bytes(bytes(data))
    with openslide.OpenSlide(str(bad)) as s, pytest.raises(openslide.OpenSlideError, match="JPEG"):
        s.read_region((int(col * tw), int(row * th)), 0, (8, 8))
    cbad = d / "coords.h5"
    shutil.copy(coords, cbad)
    with h5py.File(cbad, "a") as f:
        f.attrs["slide_hash"] = file_hash(bad)
    c = cf.coords
    hit = ((c[:, 0] < (col + 1) * tw) & (c[:, 0] + ps > col * tw) & (c[:, 1] < (row + 1) * th) & (c[:, 1] + ps > row * th))
    return {"slide": bad, "coords": cbad, "hit": np.flatnonzero(hit)}


@pytest.fixture(scope="module")
def intact_features(cmu_coords: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> np.ndarray:
    slide, coords = cmu_coords
    out = tmp_path_factory.mktemp("intact") / "f.h5"
    _extract(slide, coords, out, batch_size=16)
    return read_features_h5_(out).features


@pytest.mark.parametrize("strategy,workers", [("region", 0), ("patch", 2)])
def test_corrupt_tile_filled_and_counted(corrupt_cmu: dict, intact_features: np.ndarray, tmp_path: Path,
                                         strategy: str, workers: int) -> None:
    out = tmp_path / "f.h5"
    res = _extract(corrupt_cmu["slide"], corrupt_cmu["coords"], out, batch_size=16, read_strategy=strategy,
                   num_workers=workers, read_retries=1, max_failed_fraction=0.5)
    hit = corrupt_cmu["hit"]
    assert 1 <= len(hit) <= 4
    assert res["status"] == "ok" and res["n_failed_reads"] == len(hit) and res["n_read_retries"] >= len(hit)
    ff = read_features_h5_(out)
    assert ff.attrs["n_failed_reads"] == len(hit) and np.flatnonzero(ff.read_failed).tolist() == hit.tolist()
    ok = np.setdiff1d(np.arange(len(ff.features)), hit)
    np.testing.assert_allclose(ff.features[ok], intact_features[ok], rtol=1e-4, atol=1e-5)  # other patches intact
    assert not np.allclose(ff.features[hit], intact_features[hit], atol=1e-3)
    status = json.loads(out.with_suffix(".json").read_text())
    assert status["n_failed_reads"] == len(hit)
    # features.decoder auto: the raw JPEG tiles hit the broken tile first; the slide is re-read with OpenSlide
    assert status["decoder"] == "openslide" and "CorruptTileError" in status["decoder_fallback"]


def test_too_many_failures_mark_slide_failed(corrupt_cmu: dict, tmp_path: Path) -> None:
    res = _extract(corrupt_cmu["slide"], corrupt_cmu["coords"], tmp_path / "f.h5", batch_size=32, read_retries=0,
                   max_failed_fraction=0.0)
    assert res["status"] == "failed" and res["reason"].startswith("read_errors:") and res["n_failed_reads"] >= 1
    ff = read_features_h5_(tmp_path / "f.h5")  # written all the same; downstream drops non-ok slides
    assert ff.attrs["status"] == "failed" and len(ff.features) == res["n_patches"]


def test_flaky_read_is_retried(cmu_coords: tuple[Path, Path], intact_features: np.ndarray, tmp_path: Path,
                               monkeypatch: pytest.MonkeyPatch) -> None:
    """A read that fails once (e.g. a network hiccup) succeeds on the retry: nothing is filled."""
    slide, coords = cmu_coords
    real = loader_mod.read_unit
    calls = {"n": 0}

    def flaky(s: openslide.AbstractSlide, unit: object, level: int) -> np.ndarray:
        calls["n"] += 1
        if calls["n"] == 2:
            raise openslide.OpenSlideError("simulated transient read error")
        return real(s, unit, level)

    monkeypatch.setattr(loader_mod, "read_unit", flaky)
    res = _extract(slide, coords, tmp_path / "f.h5", batch_size=16, num_workers=0, decoder="openslide")
    assert res["status"] == "ok" and res["n_failed_reads"] == 0 and res["n_read_retries"] == 1
    np.testing.assert_allclose(read_features_h5_(tmp_path / "f.h5").features, intact_features, rtol=1e-4, atol=1e-5)


def test_killed_run_resumes_to_identical_file(cmu_coords: tuple[Path, Path], tmp_path: Path) -> None:
    """SIGKILL `gliofuse features extract` after its first saved batches; the rerun resumes and its file equals
    an uninterrupted run's."""
    slide, coords = cmu_coords
    feats = {"encoder": "vit_s16", "encoder_kwargs": {"depth": 6}, "batch_size": 2, "checkpoint_s": 0.0,
             "num_workers": 0, "read_strategy": "region"}
    cfg_path = tmp_path / "config.yaml"
    cfg_path.write_text(yaml.safe_dump({"seed": 1, "features": feats}))
    out = tmp_path / "killed" / "f.h5"
    partial = out.with_name(out.name + ".partial")
    cmd = [sys.executable, "-m", "gliofuse", "features", "extract", "--config", str(cfg_path), "--slide", str(slide),
           "--coords", str(coords), "--out", str(out), "--out-status", str(out.with_suffix(".json")), "--threads", "1"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None and len(list(partial.glob("shard-*.npz"))) < 2:
        time.sleep(0.01)
    assert proc.poll() is None, "the run finished before it could be killed; use a slower config"
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert not out.exists() and len(list(partial.glob("shard-*.npz"))) >= 2

    rerun = subprocess.run(cmd, check=False, capture_output=True, text=True, env=env, timeout=300)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    status = json.loads(out.with_suffix(".json").read_text())
    assert status["status"] == "ok" and status["resumed_batches"] >= 2 and not partial.exists()

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        ref = tmp_path / "ref" / "f.h5"
        extract_slide_(slide_path=slide, coords_path=coords, cfg=FeaturesConfig(**feats), out_path=ref, seed=1)
    finally:
        torch.set_num_threads(threads)
    a, b = read_features_h5_(out), read_features_h5_(ref)
    np.testing.assert_array_equal(a.coords, b.coords)
    np.testing.assert_array_equal(a.features, b.features)
    assert a.attrs["extract_key"] == b.attrs["extract_key"] and a.attrs["status"] == b.attrs["status"] == "ok"


@pytest.mark.parametrize("content", [b"", b"not a slide\n", "truncated"])
def test_unreadable_slide_gives_empty_features_with_its_reason(content: bytes | str, cmu_coords: tuple[Path, Path],
                                                               tmp_path: Path) -> None:
    """wsi_patch records an unreadable slide ``failed`` (no patches); extraction records it ``skipped`` with
    wsi_patch's reason and writes an empty (0, D) features file, so the workflow goes on."""
    from gliofuse.config import WsiConfig
    from gliofuse.wsi import patch_slide_

    src, _ = cmu_coords
    slide = tmp_path / "bad.svs"
    slide.write_bytes(src.read_bytes()[:200_000] if content == "truncated" else content)
    coords = tmp_path / "bad.h5"
    wsi = patch_slide_(slide_path=slide, cfg=WsiConfig(), out_coords=coords, out_qc=tmp_path / "bad.png",
                       out_status=tmp_path / "bad_wsi.json")
    assert wsi["status"] == "failed"
    res = _extract(slide, coords, tmp_path / "feat" / "bad.h5", encoder="test_vit")
    assert res["status"] == "skipped" and res["reason"] == wsi["reason"] and res["n_patches"] == 0
    assert json.loads((tmp_path / "feat" / "bad.json").read_text())["reason"].startswith("unreadable: ")
    ff = read_features_h5_(tmp_path / "feat" / "bad.h5")
    assert ff.features.shape == (0, 64) and ff.coords.shape == (0, 2) and ff.attrs["status"] == "skipped"
