"""extract_slide_ on real slides: contract §5, reuse, skipped slides, weights."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from gliofuse.config import FeaturesConfig
from gliofuse.errors import ConfigError, InputDataError
from gliofuse.features import create_encoder, extract_slide_, read_features_h5
from gliofuse.features.extract import PatchReader, resolve_device, subsample
from gliofuse.wsi import read_coords_h5


def _extract(slide: Path, coords: Path, out: Path, seed: int = 1, **cfg: object) -> dict:
    return extract_slide_(slide_path=slide, coords_path=coords, cfg=FeaturesConfig(**cfg), out_path=out, seed=seed)


@pytest.fixture(scope="module")
def cmu_features(cmu_coords: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    slide, coords = cmu_coords
    out = tmp_path_factory.mktemp("feat") / "test_resnet" / "CMU-1-Small-Region.h5"
    return out, _extract(slide, coords, out, batch_size=5)


def test_features_contract(cmu_coords: tuple[Path, Path], cmu_features: tuple[Path, dict]) -> None:
    _, coords_p = cmu_coords
    out, res = cmu_features
    cf = read_coords_h5(coords_p)
    n = len(cf.coords)
    assert res["status"] == "ok" and res["n_patches"] == n and res["embed_dim"] == 96 and not res["reused"]
    with h5py.File(out, "r") as f:
        assert f["features"].dtype == np.float32 and f["features"].shape == (n, 96)
        assert f["coords"].dtype == np.int64
        assert isinstance(f.attrs["embed_dim"], np.integer) and isinstance(f.attrs["target_mpp"], np.floating)
    ff = read_features_h5(out)
    assert np.isfinite(ff.features).all() and ff.features.std(0).mean() > 0
    np.testing.assert_array_equal(ff.coords, cf.coords)
    a = ff.attrs
    assert (a["encoder"], a["embed_dim"], a["patch_size"], a["target_mpp"]) == ("test_resnet", 96, 256, 0.5)
    assert (a["slide_id"], a["status"], a["reason"]) == ("CMU-1-Small-Region", "ok", "")
    prov = json.loads(a["provenance"])
    assert set(prov["inputs"]) == {"slide", "coords"} and prov["extra"]["input_size"] == 160
    assert not list(out.parent.glob(".*.tmp"))


def test_rerun_skips(cmu_coords: tuple[Path, Path], cmu_features: tuple[Path, dict]) -> None:
    slide, coords = cmu_coords
    out, first = cmu_features
    mtime = out.stat().st_mtime_ns
    res = _extract(slide, coords, out, batch_size=5)
    assert res["reused"] and res["n_patches"] == first["n_patches"]
    assert out.stat().st_mtime_ns == mtime


def test_batch_size_and_rows_consistent(cmu_coords: tuple[Path, Path], cmu_features: tuple[Path, dict],
                                        tmp_path: Path) -> None:
    """Batch size does not change results, and row i encodes the patch at coords[i]."""
    slide, coords = cmu_coords
    ref = read_features_h5(cmu_features[0])
    _extract(slide, coords, tmp_path / "b32.h5", batch_size=32)
    np.testing.assert_allclose(read_features_h5(tmp_path / "b32.h5").features, ref.features, rtol=1e-4, atol=1e-5)
    sub = _extract(slide, coords, tmp_path / "sub.h5", max_patches_per_slide=7, seed=1)
    s = read_features_h5(tmp_path / "sub.h5")
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
    ff = read_features_h5(tmp_path / "skip.h5")
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
    ff = read_features_h5(tmp_path / "w.h5")
    np.testing.assert_array_equal(ff.features, read_features_h5(cmu_features[0]).features)
    assert "weights" in json.loads(ff.attrs["provenance"])["inputs"]


def test_patch_reader_white_outside(cmu_coords: tuple[Path, Path]) -> None:
    slide, _ = cmu_coords
    with PatchReader(slide, read_level=0, read_size=301, patch_size=151) as r:
        p = r.read(2220 - 100, 2967 - 100)  # mostly beyond the slide edge
    assert p.shape == (151, 151, 3) and p.dtype == np.uint8
    assert (p[-40:, -40:] == 255).all()


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
    """bf16 autocast applies on CUDA only: on CPU the result equals fp32; an absent GPU is a ConfigError."""
    slide, coords = cmu_coords
    _extract(slide, coords, tmp_path / "bf16.h5", device="cpu", precision="bf16", batch_size=5)
    np.testing.assert_array_equal(read_features_h5(tmp_path / "bf16.h5").features,
                                  read_features_h5(cmu_features[0]).features)
    assert resolve_device("cpu").type == "cpu"
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match=r"features\.device"):
            _extract(slide, coords, tmp_path / "gpu.h5", device="cuda")
