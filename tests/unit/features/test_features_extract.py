"""extract_slide_ on real slides: contract §5, status JSON, reuse, skipped slides, weights, read strategies."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from gliofuse.config import FeaturesConfig
from gliofuse.errors import ConfigError, InputDataError
from gliofuse.features.encode import DevicePreprocess
from gliofuse.features.encoders import Encoder, create_encoder
from gliofuse.features.extract import extract_slide_, subsample
from gliofuse.features.loader import BatchReader
from gliofuse.features.plan import plan_batches
from gliofuse.features.store import read_features_h5_
from gliofuse.wsi import read_coords_h5

STATUS_KEYS = {"slide_id", "encoder", "status", "reason", "n_patches", "embed_dim", "n_failed_reads", "n_read_retries",
               "reused", "resumed_batches", "seconds", "patches_per_s", "device", "precision", "read_strategy",
               "num_workers", "decoder", "decoder_fallback", "stage"}


def _extract(slide: Path, coords: Path, out: Path, seed: int = 1, **cfg: object) -> dict:
    return extract_slide_(slide_path=slide, coords_path=coords, cfg=FeaturesConfig(**cfg), out_path=out, seed=seed,
                          out_status=out.with_suffix(".json"))


@pytest.fixture(scope="module")
def cmu_features(cmu_coords: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    slide, coords = cmu_coords
    out = tmp_path_factory.mktemp("feat") / "test_resnet" / "CMU-1-Small-Region.h5"
    return out, _extract(slide, coords, out, batch_size=5, read_strategy="patch")


def test_features_contract(cmu_coords: tuple[Path, Path], cmu_features: tuple[Path, dict]) -> None:
    _, coords_p = cmu_coords
    out, res = cmu_features
    cf = read_coords_h5(coords_p)
    n = len(cf.coords)
    assert res["status"] == "ok" and res["n_patches"] == n and res["embed_dim"] == 96 and not res["reused"]
    assert set(res) == STATUS_KEYS and json.loads(out.with_suffix(".json").read_text()) == res
    assert (res["n_failed_reads"], res["n_read_retries"], res["device"], res["precision"]) == (0, 0, "cpu", "fp32")
    with h5py.File(out, "r") as f:
        assert f["features"].dtype == np.float32 and f["features"].shape == (n, 96)
        assert f["coords"].dtype == np.int64
        assert isinstance(f.attrs["embed_dim"], np.integer) and isinstance(f.attrs["target_mpp"], np.floating)
    ff = read_features_h5_(out)
    assert np.isfinite(ff.features).all() and ff.features.std(0).mean() > 0
    np.testing.assert_array_equal(ff.coords, cf.coords)
    a = ff.attrs
    assert (a["encoder"], a["embed_dim"], a["patch_size"], a["target_mpp"]) == ("test_resnet", 96, 256, 0.5)
    assert (a["slide_id"], a["status"], a["reason"]) == ("CMU-1-Small-Region", "ok", "")
    assert (a["n_failed_reads"], a["input_size"], a["precision"]) == (0, 160, "fp32") and len(a["extract_key"]) == 16
    assert ff.read_failed is not None and not ff.read_failed.any() and ff.read_failed.shape == (n,)
    prov = json.loads(a["provenance"])
    assert set(prov["inputs"]) == {"slide", "coords"} and prov["extra"]["input_size"] == 160
    assert not list(out.parent.glob(".*.tmp"))


def test_rerun_skips(cmu_coords: tuple[Path, Path], cmu_features: tuple[Path, dict]) -> None:
    slide, coords = cmu_coords
    out, first = cmu_features
    mtime = out.stat().st_mtime_ns
    res = _extract(slide, coords, out, batch_size=7, read_strategy="region")  # same result, other read plan
    assert res["reused"] and res["n_patches"] == first["n_patches"] and res["status"] == "ok"
    assert out.stat().st_mtime_ns == mtime
    assert json.loads(out.with_suffix(".json").read_text())["reused"]


@pytest.mark.parametrize("strategy,workers,batch,region_px", [("region", 0, 32, 2048), ("region", 2, 6, 700),
                                                              ("patch", 2, 9, 2048)])
def test_read_strategy_and_workers_do_not_change_features(
        cmu_coords: tuple[Path, Path], cmu_features: tuple[Path, dict], tmp_path: Path, strategy: str, workers: int,
        batch: int, region_px: int) -> None:
    """Region vs per-patch reads, 0 vs 2 workers and the batch size give the same features, row i = coords[i]."""
    slide, coords = cmu_coords
    ref = read_features_h5_(cmu_features[0])
    res = _extract(slide, coords, tmp_path / "f.h5", batch_size=batch, read_strategy=strategy, num_workers=workers,
                   region_px=region_px)
    assert (res["read_strategy"], res["num_workers"]) == (strategy, workers)
    np.testing.assert_allclose(read_features_h5_(tmp_path / "f.h5").features, ref.features, rtol=1e-4, atol=1e-5)


def test_batch_rows_consistent(cmu_coords: tuple[Path, Path], cmu_features: tuple[Path, dict], tmp_path: Path) -> None:
    """A subsample encodes the same patches as the full run (row i = coords[i])."""
    slide, coords = cmu_coords
    ref = read_features_h5_(cmu_features[0])
    sub = _extract(slide, coords, tmp_path / "sub.h5", max_patches_per_slide=7, seed=1)
    s = read_features_h5_(tmp_path / "sub.h5")
    assert sub["n_patches"] == 7 and s.features.shape == (7, 96)
    rows = [int(np.flatnonzero((ref.coords == c).all(1))[0]) for c in s.coords]
    assert rows == sorted(rows)
    np.testing.assert_allclose(s.features, ref.features[rows], rtol=1e-4, atol=1e-5)


def test_subsample_seeded() -> None:
    c = np.arange(2 * 53).reshape(53, 2)
    a = subsample(c, 11, seed=5, slide_id="s1")
    assert len(a) == 11 and (np.diff(a) > 0).all()
    np.testing.assert_array_equal(a, subsample(c, 11, seed=5, slide_id="s1"))
    assert not np.array_equal(a, subsample(c, 11, seed=6, slide_id="s1"))
    np.testing.assert_array_equal(subsample(c, None, seed=5, slide_id="s1"), np.arange(53))


def test_skipped_coords_give_empty_features(skipped_coords: tuple[Path, Path], tmp_path: Path) -> None:
    slide, coords = skipped_coords
    res = _extract(slide, coords, tmp_path / "skip.h5", encoder="test_vit")
    assert res["status"] == "skipped" and res["reason"].startswith("missing_mpp") and res["n_patches"] == 0
    ff = read_features_h5_(tmp_path / "skip.h5")
    assert ff.features.shape == (0, 64) and ff.features.dtype == np.float32 and ff.coords.shape == (0, 2)
    assert ff.attrs["status"] == "skipped" and ff.attrs["reason"].startswith("missing_mpp")


def test_weights_file_matches_random_model(cmu_coords: tuple[Path, Path], cmu_features: tuple[Path, dict],
                                           tmp_path: Path) -> None:
    """A .pth saved from the random-init model (seed 1) reproduces that model's features exactly."""
    slide, coords = cmu_coords
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(1)
        enc = create_encoder("test_resnet", weights=None)
    w = tmp_path / "test_resnet_seed1.pth"
    torch.save(enc.model.state_dict(), w)
    res = _extract(slide, coords, tmp_path / "w.h5", seed=12345, weights=str(w), batch_size=5)
    assert res["status"] == "ok"
    ff = read_features_h5_(tmp_path / "w.h5")
    np.testing.assert_array_equal(ff.features, read_features_h5_(cmu_features[0]).features)
    assert "weights" in json.loads(ff.attrs["provenance"])["inputs"]


def test_batch_reader_region_equals_patches(cmu_coords: tuple[Path, Path]) -> None:
    """Patches cut from one region read equal per-patch reads; beyond the slide edge is white."""
    slide, _ = cmu_coords
    coords = np.array([[1800, 2500], [2101, 2500], [1800, 2801], [2120, 2866]], np.int64)  # partly outside
    out = {}
    for strategy in ("region", "patch"):
        batches = plan_batches(coords, read_size=301, downsample=1.0, batch_size=4, strategy=strategy, region_px=4096)
        r = BatchReader(slide, batches, read_level=0, read_size=301)
        item = r[0]
        r.close()
        out[strategy] = item["patches"].numpy()[np.argsort(item["rows"].numpy())]
        assert len(batches[0].units) == (1 if strategy == "region" else 4)
    assert out["region"].shape == (4, 301, 301, 3) and out["region"].dtype == np.uint8
    np.testing.assert_array_equal(out["region"], out["patch"])
    assert (out["patch"][3, -60:, -60:] == 255).all()


def test_40x_without_20x_level_gives_same_physical_patches(roi_slides: dict[str, Path],
                                                           roi_coords: dict[str, Path]) -> None:
    """A 40x slide (levels 1 and 4 only) is read as 512-px level-0 patches and resized on the device;
    the encoder sees the same tissue as from the 20x scan of the same ROI."""
    c20, c40 = read_coords_h5(roi_coords["20x"]), read_coords_h5(roi_coords["40x"])
    assert (c40.attrs["read_level"], c40.attrs["read_size"], c20.attrs["read_size"]) == (0, 512, 256)
    np.testing.assert_array_equal(c40.coords, 2 * c20.coords)
    assert len(c20.coords) == 4
    enc = Encoder(name="id", model=torch.nn.Identity(), embed_dim=0, input_size=224, mean=(0.5,) * 3, std=(0.25,) * 3)
    pre = DevicePreprocess(enc, torch.device("cpu"))
    xs = {}
    for k, cf in (("20x", c20), ("40x", c40)):
        s = int(cf.attrs["read_size"])
        batches = plan_batches(cf.coords, read_size=s, downsample=1.0, batch_size=8)
        r = BatchReader(roi_slides[k], batches, read_level=0, read_size=s)
        item = r[0]
        r.close()
        x = pre(item["patches"])[np.argsort(item["rows"].numpy())]
        assert x.shape == (4, 3, 224, 224) and x.is_contiguous(memory_format=torch.channels_last)
        xs[k] = x
    same = (xs["20x"] - xs["40x"]).abs().mean((1, 2, 3))
    other = (xs["20x"] - xs["40x"].roll(1, 0)).abs().mean((1, 2, 3))
    assert (same < 0.1).all() and (same < 0.5 * other).all()


def test_bad_coords_file(cmu_coords: tuple[Path, Path], tmp_path: Path) -> None:
    slide, _ = cmu_coords
    bad = tmp_path / "bad.h5"
    with h5py.File(bad, "w") as f:
        f.create_dataset("coords", data=np.zeros((3, 2), np.int64))
    with pytest.raises(InputDataError, match=r"bad\.h5.*tissue_fraction"):
        _extract(slide, bad, tmp_path / "o.h5")
    with pytest.raises(InputDataError, match="not found"):
        _extract(slide, tmp_path / "absent.h5", tmp_path / "o.h5")


def test_coords_from_another_slide(cmu_coords: tuple[Path, Path], skipped_coords: tuple[Path, Path],
                                   tmp_path: Path) -> None:
    _, coords = cmu_coords
    other_slide, _ = skipped_coords
    with pytest.raises(InputDataError, match="slide_hash"):
        _extract(other_slide, coords, tmp_path / "o.h5")


def test_device_and_precision_on_cpu(cmu_coords: tuple[Path, Path], cmu_features: tuple[Path, dict],
                                     tmp_path: Path) -> None:
    """bf16 autocast applies on CUDA only: on CPU the result equals fp32."""
    slide, coords = cmu_coords
    _extract(slide, coords, tmp_path / "bf16.h5", device="cpu", precision="bf16", batch_size=5)
    np.testing.assert_array_equal(read_features_h5_(tmp_path / "bf16.h5").features,
                                  read_features_h5_(cmu_features[0]).features)


def test_absent_gpu_is_a_config_error_naming_features_device(cmu_coords: tuple[Path, Path], tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    slide, coords = cmu_coords
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ConfigError, match=r"features\.device = 'cuda' but CUDA is not available"):
        _extract(slide, coords, tmp_path / "gpu.h5", device="cuda")
    assert not (tmp_path / "gpu.h5").exists()


def test_cpu_bf16_is_opt_in(cmu_coords: tuple[Path, Path], cmu_features: tuple[Path, dict], tmp_path: Path) -> None:
    slide, coords = cmu_coords
    res = _extract(slide, coords, tmp_path / "bf.h5", device="cpu", precision="bf16", cpu_bf16=True, batch_size=16)
    assert res["precision"] == "bf16"
    ff, ref = read_features_h5_(tmp_path / "bf.h5"), read_features_h5_(cmu_features[0])
    assert ff.attrs["precision"] == "bf16" and ff.attrs["extract_key"] != ref.attrs["extract_key"]
    cos = (ff.features * ref.features).sum(1) / np.linalg.norm(ff.features, axis=1) / np.linalg.norm(ref.features, axis=1)
    assert cos.min() > 0.98


def test_qc_table_shows_feature_status(cmu_coords: tuple[Path, Path], cmu_features: tuple[Path, dict],
                                       skipped_coords: tuple[Path, Path], tmp_path: Path) -> None:
    """The report's slide QC table gains the features status columns (failed slides are visible there)."""
    from gliofuse.report.qc import qc_table

    _, coords = cmu_coords
    out, _ = cmu_features
    slide2, coords2 = skipped_coords
    _extract(slide2, coords2, tmp_path / "skip.h5")
    wsi_status = [coords.with_suffix(".json"), coords2.with_suffix(".json")]
    t = qc_table(wsi_status, [out.with_suffix(".json"), tmp_path / "skip.json"])
    assert list(t.columns[-5:]) == ["features_status", "features_reason", "features_n_patches",
                                    "features_n_failed_reads", "features_seconds"]
    row = t.set_index("slide_id").loc["CMU-1-Small-Region"]
    assert (row["status"], row["features_status"], row["features_n_failed_reads"]) == ("ok", "ok", 0)
    assert row["features_n_patches"] == row["n_patches"]
    assert t.set_index("slide_id").loc[slide2.stem, "features_status"] == "skipped"
    assert list(qc_table(wsi_status).columns) == ["slide_id", "status", "reason", "n_patches", "mpp_level0",
                                                  "mpp_source", "tissue_fraction"]
