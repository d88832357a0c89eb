"""Shard extraction: deterministic shards, a bad slide fails only itself, per-slide resume, the shard table and its
reader, the CLI's shard form, and raw JPEG tiles giving the features OpenSlide gives."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
import tifffile

from gliofuse.cli import main
from gliofuse.config import FeaturesConfig, WsiConfig
from gliofuse.errors import ConfigError, InputDataError
from gliofuse.features.extract import SlideJob, extract_slide_
from gliofuse.features.shard import extract_shard_
from gliofuse.features.shard_table import (
    ShardRow,
    assign_shards,
    read_shard_tables_,
    shard_feature_paths,
    shard_status_paths,
    write_shard_table_,
)
from gliofuse.features.store import read_features_h5_
from gliofuse.io import file_hash
from gliofuse.wsi import patch_slide_, read_coords_h5

CFG = {"batch_size": 16}


def _job(slide: Path, coords: Path, out: Path, name: str) -> SlideJob:
    return SlideJob(slide, coords, out / f"{name}.h5", out / "status" / f"{name}.json")


def test_assign_shards_is_deterministic_and_complete() -> None:
    ids = [f"TCGA-AA-{i:04d}-01Z" for i in range(10)]
    shards = assign_shards(ids[::-1] + ids[:3], 4)  # order and duplicates do not matter
    assert shards == [ids[0:4], ids[4:8], ids[8:10]]
    assert assign_shards(ids, 4) == shards and assign_shards(ids, 100) == [ids]
    assert assign_shards([], 4) == []
    with pytest.raises(ConfigError, match="shard_size"):
        assign_shards(ids, 0)


@pytest.fixture
def bad_inputs(cmu_coords: tuple[Path, Path], tmp_path: Path) -> dict[str, tuple[Path, Path]]:
    """Slides a shard meets: a truncated file (wsi_patch recorded it failed) and a slide changed after patching."""
    src, coords = cmu_coords
    truncated = tmp_path / "truncated.svs"
    truncated.write_bytes(src.read_bytes()[:200_000])
    t_coords = tmp_path / "truncated.h5"
    patch_slide_(slide_path=truncated, cfg=WsiConfig(), out_coords=t_coords, out_qc=tmp_path / "t.png",
                 out_status=tmp_path / "t.json")
    changed = tmp_path / "changed.svs"
    changed.write_bytes(src.read_bytes()[:-1000])  # coords of the intact file: slide_hash differs
    return {"truncated": (truncated, t_coords), "changed": (changed, coords)}


def test_bad_slides_fail_only_themselves(cmu_coords: tuple[Path, Path], roi_slides: dict[str, Path],
                                         roi_coords: dict[str, Path], bad_inputs: dict[str, tuple[Path, Path]],
                                         tmp_path: Path) -> None:
    out = tmp_path / "features"
    jobs = [_job(*cmu_coords, out, "cmu"), _job(*bad_inputs["changed"], out, "changed"),
            _job(*bad_inputs["truncated"], out, "truncated"), _job(roi_slides["20x"], roi_coords["20x"], out, "roi")]
    records = extract_shard_(jobs, cfg=FeaturesConfig(**CFG), seed=1, out_table=tmp_path / "shard_0000.tsv")
    assert [r["status"] for r in records] == ["ok", "failed", "skipped", "ok"]
    changed = json.loads(jobs[1].out_status.read_text())
    assert changed["status"] == "failed" and changed["reason"].startswith("error: InputDataError:")
    assert "slide_hash" in changed["reason"] and not jobs[1].out_path.exists()
    rows = read_shard_tables_([tmp_path / "shard_0000.tsv"])
    assert [r.status for r in rows] == ["ok", "failed", "skipped", "ok"]
    assert rows[1].features == "" and rows[1].reason == changed["reason"]
    assert rows[2].reason.startswith("unreadable: ") and rows[2].n_patches == 0
    assert shard_feature_paths(rows) == [jobs[0].out_path, jobs[2].out_path, jobs[3].out_path]
    assert shard_status_paths(rows) == [j.out_status for j in jobs]
    for job, row in zip((jobs[0], jobs[3]), (rows[0], rows[3]), strict=True):
        ff = read_features_h5_(job.out_path)
        assert ff.attrs["status"] == "ok" and len(ff.features) == row.n_patches > 0
        assert row.decoder == "raw"  # both are tiled-JPEG SVS files: features.decoder auto reads raw tiles


def test_rerun_shard_encodes_only_unfinished_slides(cmu_coords: tuple[Path, Path], roi_slides: dict[str, Path],
                                                    roi_coords: dict[str, Path], tmp_path: Path) -> None:
    """A shard killed after its first slide: the rerun reuses that slide's h5 (untouched) and encodes the other."""
    out = tmp_path / "features"
    jobs = [_job(*cmu_coords, out, "cmu"), _job(roi_slides["20x"], roi_coords["20x"], out, "roi")]
    cfg = FeaturesConfig(**CFG)
    finished = extract_slide_(slide_path=jobs[0].slide_path, coords_path=jobs[0].coords_path, cfg=cfg,
                              out_path=jobs[0].out_path, seed=1, out_status=jobs[0].out_status)
    assert finished["reused"] is False
    mtime = jobs[0].out_path.stat().st_mtime_ns
    records = extract_shard_(jobs, cfg=cfg, seed=1, out_table=tmp_path / "shard.tsv")
    assert [r["reused"] for r in records] == [True, False]
    assert jobs[0].out_path.stat().st_mtime_ns == mtime  # not re-encoded
    assert json.loads(jobs[1].out_status.read_text())["status"] == "ok"
    again = extract_shard_(jobs, cfg=cfg, seed=1, out_table=tmp_path / "shard.tsv")
    assert [r["reused"] for r in again] == [True, True]
    # the shard read the second slide's batches ahead, while the first was finishing: same features as alone
    alone = tmp_path / "alone.h5"
    extract_slide_(slide_path=jobs[1].slide_path, coords_path=jobs[1].coords_path, cfg=cfg, out_path=alone, seed=1)
    np.testing.assert_array_equal(read_features_h5_(alone).features, read_features_h5_(jobs[1].out_path).features)


def test_shard_table_reader_names_the_problem(tmp_path: Path) -> None:
    status = tmp_path / "s.json"
    status.write_text("{}")
    h5 = tmp_path / "a.h5"
    h5.write_bytes(b"x")
    row = ShardRow(slide_id="TCGA-AA-0001-01Z", status="ok", reason="", n_patches=3, decoder="raw",
                   features=str(h5), status_json=str(status))
    write_shard_table_(tmp_path / "a.tsv", [row])
    assert read_shard_tables_([tmp_path / "a.tsv"]) == [row]
    write_shard_table_(tmp_path / "b.tsv", [row])
    with pytest.raises(InputDataError, match="two shard tables"):
        read_shard_tables_([tmp_path / "a.tsv", tmp_path / "b.tsv"])
    h5.unlink()
    with pytest.raises(InputDataError, match=r"a\.h5.*missing.*forcerun"):
        read_shard_tables_([tmp_path / "a.tsv"])
    (tmp_path / "c.tsv").write_text("slide_id\tstatus\nX\tok\n")
    with pytest.raises(InputDataError, match="columns"):
        read_shard_tables_([tmp_path / "c.tsv"])
    write_shard_table_(tmp_path / "d.tsv", [ShardRow(**{**row.__dict__, "status": "done", "features": ""})])
    with pytest.raises(InputDataError, match="'done'"):
        read_shard_tables_([tmp_path / "d.tsv"])


def test_cli_shard_form(cmu_coords: tuple[Path, Path], roi_slides: dict[str, Path], roi_coords: dict[str, Path],
                        tmp_path: Path) -> None:
    cfg = tmp_path / "config.yaml"
    cfg.write_text("features:\n  batch_size: 16\n")
    slides, coords = [str(cmu_coords[0]), str(roi_slides["20x"])], [str(cmu_coords[1]), str(roi_coords["20x"])]
    outs = [str(tmp_path / "a.h5"), str(tmp_path / "b.h5")]
    status = [str(tmp_path / "a.json"), str(tmp_path / "b.json")]
    base = ["features", "extract", "--config", str(cfg), "--slide", *slides, "--coords", *coords, "--out", *outs]
    assert main([*base, "--out-status", *status]) == 2  # several slides need --out-shard
    assert main([*base[:-1], "--out-status", *status, "--out-shard", str(tmp_path / "t.tsv")]) == 2  # 1 --out for 2
    assert main([*base, "--out-status", *status, "--out-shard", str(tmp_path / "t.tsv")]) == 0
    rows = read_shard_tables_([tmp_path / "t.tsv"])
    assert [r.status for r in rows] == ["ok", "ok"] and [r.features for r in rows] == outs


@pytest.mark.parametrize("slide", ["cmu", "roi-40x"])
def test_raw_tiles_give_openslide_features(slide: str, cmu_coords: tuple[Path, Path], roi_slides: dict[str, Path],
                                           roi_coords: dict[str, Path], tmp_path: Path) -> None:
    """Level-0 raw JPEG tiles decode to OpenSlide's pixels (tests/unit/wsi/test_wsi_raw_patches.py), so the features
    agree to float rounding; the status records the reader."""
    path, coords = cmu_coords if slide == "cmu" else (roi_slides["40x"], roi_coords["40x"])
    feats = {}
    for decoder in ("raw", "openslide"):
        out = tmp_path / decoder / "f.h5"
        res = extract_slide_(slide_path=path, coords_path=coords, cfg=FeaturesConfig(**CFG, decoder=decoder),
                             out_path=out, seed=1, out_status=out.with_suffix(".json"))
        assert res["status"] == "ok" and res["decoder"] == decoder and res["decoder_fallback"] == ""
        ff = read_features_h5_(out)
        assert json.loads(ff.attrs["provenance"])["extra"]["decoder"] == decoder
        feats[decoder] = ff.features
    assert feats["raw"].shape == feats["openslide"].shape and len(feats["raw"]) >= 4
    np.testing.assert_allclose(feats["raw"], feats["openslide"], rtol=1e-4, atol=1e-4)


def test_decoder_raw_refuses_a_slide_without_jpeg_tiles(cmu_coords: tuple[Path, Path], tmp_path: Path) -> None:
    """features.decoder: raw on a non-JPEG slide fails (in a shard: that slide only); auto reads it with OpenSlide."""
    src, coords = cmu_coords
    with tifffile.TiffFile(src) as t:
        rgb, desc = t.pages[0].asarray(), t.pages[0].description
    lzw = tmp_path / "CMU-1-Small-Region.svs"
    tifffile.imwrite(lzw, rgb, tile=(256, 256), compression="zlib", description=desc, photometric="rgb")
    c = tmp_path / "coords.h5"
    shutil.copy(coords, c)
    with h5py.File(c, "a") as f:
        f.attrs["slide_hash"] = file_hash(lzw)
    assert len(read_coords_h5(c).coords) > 0
    out = tmp_path / "out"
    rec = extract_shard_([_job(lzw, c, out, "a")], cfg=FeaturesConfig(**CFG, decoder="raw"), seed=1)
    assert rec[0]["status"] == "failed" and "RawTilesUnsupportedError" in rec[0]["reason"]
    rec = extract_shard_([_job(lzw, c, out, "a")], cfg=FeaturesConfig(**CFG, decoder="auto"), seed=1)
    assert rec[0]["status"] == "ok" and rec[0]["decoder"] == "openslide"


def test_cli_consumers_read_shard_tables(tmp_path: Path) -> None:
    """data splits / report qc take the status JSONs, train fold the h5 files, listed in --feature-shards."""
    from gliofuse.cli import _feature_paths, _feature_status_paths, build_parser

    rows = []
    for i, status in enumerate(("ok", "failed")):
        (tmp_path / f"{i}.json").write_text("{}")
        h5 = tmp_path / f"{i}.h5"
        if status == "ok":
            h5.write_bytes(b"x")
        rows.append(ShardRow(slide_id=f"TCGA-AA-000{i}-01Z", status=status, reason="", n_patches=3 * (status == "ok"),
                             decoder="raw", features=str(h5) if status == "ok" else "",
                             status_json=str(tmp_path / f"{i}.json")))
    write_shard_table_(tmp_path / "shard_0000.tsv", rows)
    parser = build_parser()
    splits = parser.parse_args(["data", "splits", "--config", "c", "--labels", "l", "--omics", "o", "--slides", "sh", "--slide-status", "s", "--out-cohort",
                                "c", "--out-folds", "f", "--feature-shards", str(tmp_path / "shard_0000.tsv")])
    assert _feature_status_paths(splits) == [tmp_path / "0.json", tmp_path / "1.json"]
    fold = parser.parse_args(["train", "fold", "--config", "c", "--model", "snn", "--task", "survival", "--split", "s", "--labels", "l",
                              "--out-dir", "d", "--feature-shards", str(tmp_path / "shard_0000.tsv")])
    assert _feature_paths(fold) == [tmp_path / "0.h5"]
    fold.feature_shards = None
    with pytest.raises(ConfigError, match="--feature-shards"):
        _feature_paths(fold)
