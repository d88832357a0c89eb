"""The same tissue patched from Aperio SVS, generic tiled TIFF and DICOM WSI gives the same patches (issue 15 item 6).

The generic TIFF is written with tifffile from the SVS's pixels (JPEG tiles, resolution tags in px/cm, a
level at downsample 3: not a power of 2); the DICOM WSI is converted from the SVS by wsidicomizer. All three
have level 0 at 0.499 µm/px, so coordinates (level-0 px) must agree.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import openslide
import pytest
from PIL import Image
from slide_formats import slide_pixels

from gliofuse.config import WsiConfig
from gliofuse.demo.slide_formats import write_dicom_wsi_, write_generic_tiff_
from gliofuse.wsi import CoordsFile, read_coords_h5
from gliofuse.wsi.jpeg_tiles import JpegTileSlide, supports_raw_tiles
from gliofuse.wsi.patch import REASON_MISSING_MPP, patch_slide_
from gliofuse.wsi.reader import read_region_rgb, slide_mpp

#: tissue-fraction margin around wsi.min_tissue_fraction inside which a patch may be kept in one format only
#: (the formats' segmentation thumbnails come from different pyramid levels and JPEG encodings)
BORDERLINE = 0.05
#: mean |difference| (grey levels) of 4x4-pixel block means between the same patch read from two formats. The
#: TIFF re-encodes the SVS's JPEG Q30 pixels (Q95, chroma 4:2:0: 3-7 per pixel at level 0) and its downsample-3
#: level starts a patch up to 1/3 level px off (13 per pixel); block means measured at most 1.7 and 3.8.
#: Different patches of the slide differ by > 30.
PIXEL_TOLERANCE = 6.0
BLOCK = 4


@pytest.fixture(scope="module")
def formats(cmu_slide: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("formats")
    rgb, mpp = slide_pixels(cmu_slide)
    return {"svs": cmu_slide, "tiff": write_generic_tiff_(d / "cmu.tif", rgb, mpp=mpp, downsamples=(1, 3)),
            "dicom": write_dicom_wsi_(cmu_slide, d / "dicom")}


def test_formats_open_with_their_vendor_and_mpp(formats: dict[str, Path]) -> None:
    vendors = {}
    for name, path in formats.items():
        with openslide.OpenSlide(str(path)) as s:
            vendors[name] = s.properties["openslide.vendor"]
            assert s.dimensions == (2220, 2967), name
            assert slide_mpp(s) == (pytest.approx(0.499), "openslide.mpp-x"), name
            if name == "tiff":
                assert s.level_downsamples == (1.0, 3.0)
                assert s.properties["tiff.ResolutionUnit"] == "centimeter"
    assert vendors == {"svs": "aperio", "tiff": "generic-tiff", "dicom": "dicom"}


def _patch(path: Path, out: Path, cfg: WsiConfig, slide_id: str | None = None) -> tuple[dict, CoordsFile]:
    rec = patch_slide_(slide_path=path, cfg=cfg, out_coords=out / "c.h5", out_qc=out / "qc.png",
                       out_status=out / "s.json", slide_id=slide_id)
    return rec, read_coords_h5(out / "c.h5")


def _blocks(patches: np.ndarray) -> np.ndarray:
    """(N, S, S, 3) → (N, S / BLOCK, S / BLOCK, 3) block means."""
    n, s = patches.shape[:2]
    return patches.reshape(n, s // BLOCK, BLOCK, s // BLOCK, BLOCK, 3).mean(axis=(2, 4))


def _mean_abs(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.abs(a - b).mean(axis=(1, 2, 3))


def _patch_pixels(path: Path, coords: np.ndarray, attrs: dict) -> np.ndarray:
    """(N, S, S, 3) float patches at the target resolution: the read level and size of the coords file, box-resized."""
    level, size, out = int(attrs["read_level"]), int(attrs["read_size"]), int(attrs["patch_size"])
    with openslide.OpenSlide(str(path)) as s:
        imgs = [read_region_rgb(s, (int(x), int(y)), level, (size, size)) for x, y in coords]
    return np.stack([np.asarray(im.resize((out, out), Image.Resampling.BOX), np.float32) for im in imgs])


@pytest.mark.parametrize(("target_mpp", "patch_px", "tiff_level"), [(0.5, 256, 0), (1.5, 128, 1)])
def test_same_patches_from_svs_tiff_and_dicom(formats: dict[str, Path], tmp_path: Path, target_mpp: float,
                                              patch_px: int, tiff_level: int) -> None:
    cfg = WsiConfig(target_mpp=target_mpp, patch_px=patch_px)
    # DICOM files are named by UID: the cohort's slide id is given
    res = {name: _patch(path, tmp_path / name, cfg, slide_id=f"cmu-{name}") for name, path in formats.items()}
    ref_rec, ref = res["svs"]
    assert ref_rec["status"] == "ok" and ref_rec["n_patches"] >= 10
    ps0 = round(patch_px * target_mpp / 0.499)
    assert ref.attrs["patch_size_level0"] == ps0 and ref.attrs["read_level"] == 0
    for name in ("tiff", "dicom"):
        rec, cf = res[name]
        assert rec["status"] == "ok" and rec["mpp_source"] == "openslide.mpp-x", name
        assert rec["slide_id"] == cf.attrs["slide_id"] == f"cmu-{name}"
        assert cf.attrs["patch_size_level0"] == ps0 and cf.attrs["patch_size"] == patch_px, name
        # the TIFF's downsample-3 level serves the 1.5 µm/px patches: 385 level-0 px read as 128 px
        want_level = tiff_level if name == "tiff" else 0
        assert cf.attrs["read_level"] == want_level, name
        assert cf.attrs["read_size"] == round(ps0 / (3.0 if want_level else 1.0)), name
        frac_ref = {tuple(c): f for c, f in zip(ref.coords.tolist(), ref.tissue_fraction, strict=True)}
        frac = {tuple(c): f for c, f in zip(cf.coords.tolist(), cf.tissue_fraction, strict=True)}
        only = set(frac_ref) ^ set(frac)
        flipped = {c: frac_ref.get(c, frac.get(c)) for c in only}
        assert all(abs(f - cfg.min_tissue_fraction) < BORDERLINE for f in flipped.values()), (name, flipped)
        assert len(only) <= 0.1 * len(frac_ref), name
        common = sorted(set(frac_ref) & set(frac))
        assert max(abs(frac_ref[c] - frac[c]) for c in common) < BORDERLINE, name
        a = _patch_pixels(formats["svs"], np.array(common), ref.attrs)
        b = _patch_pixels(formats[name], np.array(common), cf.attrs)
        diff = _mean_abs(_blocks(a), _blocks(b))
        assert diff.max() < PIXEL_TOLERANCE, (name, diff)
        # other patches differ far more than the same patch across formats: the comparison can fail
        assert _mean_abs(_blocks(a), _blocks(np.roll(b, 1, axis=0))).min() > 5 * PIXEL_TOLERANCE, name


def test_raw_jpeg_tiles_only_for_the_formats_that_hold_them(formats: dict[str, Path],
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    assert supports_raw_tiles(formats["svs"], 0)
    assert supports_raw_tiles(formats["tiff"], 0) and supports_raw_tiles(formats["tiff"], 1)
    assert not supports_raw_tiles(formats["dicom"], 0)
    # a TIFF-based format with its own tile layout (Ventana BIF overlaps its tiles) is refused as a whole
    monkeypatch.setattr(openslide.OpenSlide, "detect_format", classmethod(lambda cls, path: "ventana"))
    assert not supports_raw_tiles(formats["tiff"], 0)
    with JpegTileSlide(formats["tiff"]) as s:
        assert "vendor 'ventana'" in str(s.unsupported_reason(0))


def test_tiff_without_resolution_takes_default_mpp(cmu_slide: Path, tmp_path: Path) -> None:
    rgb, _ = slide_pixels(cmu_slide)
    path = write_generic_tiff_(tmp_path / "no-mpp.tif", rgb[768:1792, 512:1536], mpp=None, downsamples=(1,))
    with openslide.OpenSlide(str(path)) as s:
        assert s.properties["openslide.vendor"] == "generic-tiff" and slide_mpp(s) == (None, "missing")
    rec, _ = _patch(path, tmp_path / "a", WsiConfig())
    assert rec["status"] == "skipped" and rec["reason"] == REASON_MISSING_MPP
    assert "wsi.default_mpp" in REASON_MISSING_MPP and "wsi.overrides_csv" in REASON_MISSING_MPP
    rec, cf = _patch(path, tmp_path / "b", WsiConfig(default_mpp=0.499))
    assert rec["status"] == "ok", rec["reason"]
    assert rec["mpp_source"] == "default_mpp" and cf.attrs["patch_size_level0"] == 257 and len(cf.coords) > 0


def test_level0_at_another_scan_resolution_keeps_the_physical_patch_size(cmu_slide: Path, tmp_path: Path) -> None:
    """A TIFF whose level 0 is the SVS halved (0.998 µm/px): half the level-0 px per patch, same µm."""
    rgb, mpp = slide_pixels(cmu_slide)
    h, w = rgb.shape[:2]
    half = np.asarray(Image.fromarray(rgb).resize((w // 2, h // 2), Image.Resampling.BOX))
    path = write_generic_tiff_(tmp_path / "half.tif", half, mpp=2 * mpp, downsamples=(1,))
    cfg = WsiConfig(target_mpp=1.5, patch_px=128)
    rec_full, full = _patch(cmu_slide, tmp_path / "full", cfg)
    rec_half, cf = _patch(path, tmp_path / "half", cfg)
    assert rec_half["mpp_level0"] == pytest.approx(0.998) and rec_half["mpp_source"] == "openslide.mpp-x"
    assert cf.attrs["patch_size_level0"] == round(128 * 1.5 / 0.998) == 192
    assert cf.attrs["patch_size_level0"] * 0.998 == pytest.approx(full.attrs["patch_size_level0"] * 0.499, rel=0.01)
    assert abs(rec_half["n_patches"] - rec_full["n_patches"]) <= 2


def test_features_of_a_dicom_slide(formats: dict[str, Path], tmp_path: Path) -> None:
    """Feature extraction reads a DICOM WSI (OpenSlide; no raw JPEG tiles) to the SVS's features."""
    from gliofuse.config import FeaturesConfig
    from gliofuse.features.extract import extract_slide_
    from gliofuse.features.store import read_features_h5_

    wsi_cfg = WsiConfig(target_mpp=1.5, patch_px=64)
    fcfg = FeaturesConfig(device="cpu", num_workers=0, batch_size=8, max_patches_per_slide=6)
    feats = []
    for name in ("svs", "dicom"):
        _patch(formats[name], tmp_path / name, wsi_cfg, slide_id="cmu")
        rec = extract_slide_(slide_path=formats[name], coords_path=tmp_path / name / "c.h5", cfg=fcfg,
                             out_path=tmp_path / f"{name}.h5", seed=1)
        assert rec["status"] == "ok" and rec["n_patches"] == 6, (name, rec)
        feats.append(read_features_h5_(tmp_path / f"{name}.h5"))
    np.testing.assert_array_equal(feats[0].coords, feats[1].coords)
    np.testing.assert_allclose(feats[0].features, feats[1].features, atol=1e-4)
    assert np.abs(feats[0].features[1:] - feats[0].features[:-1]).max() > 1e-2  # distinct patches, distinct features
