"""Raw JPEG tiles decoded in batches give the patches OpenSlide gives (real Aperio and synthetic 40x SVS).

Measured on CPU (torchvision 0.29.1 vs OpenSlide 4.0.1, both libjpeg-turbo): level-0 patches are
bit-identical (max and mean |difference| 0) on CMU-1-Small-Region.svs (Aperio, RGB JPEG tiles with
shared tables) and on the synthetic 40x slide (YCbCr 4:2:0 JFIF tiles). The bound allows ±2 grey
levels of rounding between libjpeg builds; a 1-px shift already gives a mean of ~1-8 on this tissue.
At level 1 (downsample 4.002) OpenSlide resamples the fractional corner positions; rounding them to
the nearest pixel leaves a mean |difference| of 1.25 (max 67 at tissue edges).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import openslide
import pytest
import torch
import torch.nn.functional as F

from gliofuse.errors import CorruptTileError, RawTilesUnsupportedError
from gliofuse.wsi.jpeg_tiles import ADOBE_RGB, JpegTileSlide, supports_raw_tiles
from gliofuse.wsi.raw_patches import RawPatchReader, read_patches_raw
from gliofuse.wsi.reader import rgba_to_rgb

LEVEL0_MAX_DIFF, LEVEL0_MEAN_DIFF = 2, 0.05  # JPEG-decoder tolerance, grey levels (measured: 0 and 0)
SUBPIXEL_MEAN_DIFF = 2.0  # level > 0: OpenSlide's sub-pixel resampling vs nearest px (measured: 1.25)


def openslide_patches(path: Path, coords: np.ndarray, level: int, size: int) -> np.ndarray:
    """(B, size, size, 3) uint8: ``read_region`` composited on white, as the project reads patches."""
    with openslide.OpenSlide(str(path)) as s:
        return np.stack([rgba_to_rgb(np.asarray(s.read_region((int(x), int(y)), level, (size, size))))
                         for x, y in coords])


def grid(width0: int, height0: int, step0: int, margin0: int) -> np.ndarray:
    """Level-0 corners from ``-margin0`` past the right/bottom edge: crosses tile seams and the border."""
    xs = np.arange(-margin0, width0, step0)
    ys = np.arange(-margin0, height0, step0)
    return np.stack(np.meshgrid(xs, ys), -1).reshape(-1, 2).astype(np.int64)


def raw_hwc(path: Path, coords: np.ndarray, level: int, size: int, out_size: int | None = None,
            device: str = "cpu") -> np.ndarray:
    """``read_patches_raw`` → (B, S, S, 3) uint8 numpy, after checking its (B, 3, S, S) uint8 contract."""
    out = read_patches_raw(path, coords, level=level, read_size=size, out_size=out_size, device=device)
    s = out_size or size
    assert out.dtype == torch.uint8 and out.shape == (len(coords), 3, s, s)
    return out.permute(0, 2, 3, 1).cpu().numpy()


def diff(a: np.ndarray, b: np.ndarray) -> tuple[int, float]:
    d = np.abs(a.astype(np.int16) - b.astype(np.int16))
    return int(d.max()), float(d.mean())


def test_supports_raw_tiles(cmu_slide: Path, tcga_no_mpp_slide: Path, synthetic_slides: dict[str, Path],
                            tmp_path: Path) -> None:
    assert supports_raw_tiles(cmu_slide, 0)
    assert supports_raw_tiles(synthetic_slides["40x"], 0) and supports_raw_tiles(synthetic_slides["40x"], 1)
    assert not supports_raw_tiles(synthetic_slides["40x"], 2)  # no such level
    assert not supports_raw_tiles(tcga_no_mpp_slide, 0) and not supports_raw_tiles(tcga_no_mpp_slide, 1)
    junk = tmp_path / "not-a-slide.svs"
    junk.write_bytes(b"plain text" * 50)
    assert not supports_raw_tiles(junk, 0)
    assert not supports_raw_tiles(tmp_path / "missing.svs", 0)


def test_jpeg2000_is_refused(tcga_no_mpp_slide: Path) -> None:
    """Aperio JPEG 2000 (compression 33003) goes to OpenSlide: a typed error naming slide and reason."""
    with pytest.raises(RawTilesUnsupportedError, match=r"tcga-cr-7395.*JPEG 2000"):
        read_patches_raw(tcga_no_mpp_slide, np.zeros((1, 2)), level=0, read_size=256)


def test_aperio_rgb_tiles_match_openslide(cmu_slide: Path) -> None:
    """CMU-1-Small-Region: 240-px Aperio tiles, photometric RGB, shared JPEG tables; 2220x2967 px."""
    with JpegTileSlide(cmu_slide) as s:
        lv = s.level(0)
        assert (lv.width, lv.height, lv.tile_width) == (2220, 2967, 240) and ADOBE_RGB in lv.header
    coords = grid(2220, 2967, step0=311, margin0=100)  # 311 is prime to 240: every seam offset
    ref = openslide_patches(cmu_slide, coords, 0, 256)
    got = raw_hwc(cmu_slide, coords, 0, 256)
    max_d, mean_d = diff(got, ref)
    assert max_d <= LEVEL0_MAX_DIFF and mean_d <= LEVEL0_MEAN_DIFF, (max_d, mean_d)
    border = (coords < 0).any(1) | (coords[:, 0] + 256 > 2220) | (coords[:, 1] + 256 > 2967)
    assert border.sum() >= 10 and (got[border] == 255).all(-1).any()  # white beyond the image, as OpenSlide


def test_synthetic_40x_matches_openslide(synthetic_slides: dict[str, Path]) -> None:
    """40x slide without a 20x level: 20x patches of 256 px are read as 512 level-0 px and resized."""
    path = synthetic_slides["40x"]
    with openslide.OpenSlide(str(path)) as s:
        (w, h), ds1 = s.dimensions, s.level_downsamples[1]
    coords = grid(w, h, step0=700, margin0=300)
    ref = openslide_patches(path, coords, 0, 512)
    max_d, mean_d = diff(raw_hwc(path, coords, 0, 512), ref)
    assert max_d <= LEVEL0_MAX_DIFF and mean_d <= LEVEL0_MEAN_DIFF, (max_d, mean_d)
    # resized on the device like today's uint8 path (antialiased bilinear)
    ref_256 = F.interpolate(torch.from_numpy(ref).permute(0, 3, 1, 2), size=(256, 256), mode="bilinear",
                            align_corners=False, antialias=True).permute(0, 2, 3, 1).numpy()
    max_d, mean_d = diff(raw_hwc(path, coords, 0, 512, out_size=256), ref_256)
    assert max_d <= LEVEL0_MAX_DIFF and mean_d <= LEVEL0_MEAN_DIFF, (max_d, mean_d)
    # level 1: fractional level positions, which OpenSlide resamples
    coords1 = grid(w, h, step0=round(128 * ds1 * 0.8), margin0=200)
    max_d, mean_d = diff(raw_hwc(path, coords1, 1, 128), openslide_patches(path, coords1, 1, 128))
    assert mean_d <= SUBPIXEL_MEAN_DIFF, (max_d, mean_d)


def test_missing_tile_and_off_slide_are_white(synthetic_slides: dict[str, Path]) -> None:
    with RawPatchReader(synthetic_slides["40x"], level=0, read_size=256) as reader:
        reader.level.counts[reader.level.tiles_across + 1] = 0  # tile (1, 1): no data, as OpenSlide → white
        patch = reader.read(np.array([[256, 256], [300, 300], [-5000, 0]])).permute(0, 2, 3, 1).numpy()
        assert reader.read(np.zeros((0, 2))).shape == (0, 3, 256, 256)
    assert (patch[0] == 255).all() and (patch[2] == 255).all()  # missing tile; wholly off the slide
    assert (patch[1, :212, :212] == 255).all() and not (patch[1] == 255).all()


def test_corrupt_tile_names_slide_and_tile(synthetic_slides: dict[str, Path], tmp_path: Path) -> None:
    path = tmp_path / "corrupt-40x.svs"
    shutil.copyfile(synthetic_slides["40x"], path)
    with JpegTileSlide(path) as s:
        lv = s.level(0)
        k = 3 * lv.tiles_across + 5  # tile (3, 5), inside a tissue blob
        off, n = int(lv.offsets[k]), int(lv.counts[k])
    assert n > 1500
    with path.open("r+b") as f:
        f.seek(off + 600)
        f.write(bytes(range(256)) * 3)  # garbage in the entropy-coded data
    coords = np.array([[5 * 256, 3 * 256], [0, 0]])
    with pytest.raises(CorruptTileError, match=r"corrupt-40x\.svs.*row 3, col 5\) of level 0"):
        read_patches_raw(path, coords, level=0, read_size=256)
    with path.open("r+b") as f:
        f.seek(off)
        f.write(b"\x00\x00")  # not even a JPEG stream
    with pytest.raises(CorruptTileError, match=r"corrupt-40x\.svs.*row 3, col 5\) of level 0"):
        read_patches_raw(path, coords, level=0, read_size=256)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_decode_matches_cpu(cmu_slide: Path, synthetic_slides: dict[str, Path]) -> None:
    """nvJPEG vs libjpeg-turbo (provisional bound: not yet measured on a GPU)."""
    for path, size in ((cmu_slide, 256), (synthetic_slides["40x"], 512)):
        coords = grid(2000, 2000, step0=377, margin0=100)
        cpu = raw_hwc(path, coords, 0, size)
        gpu = raw_hwc(path, coords, 0, size, device="cuda")
        max_d, mean_d = diff(gpu, cpu)
        assert mean_d <= 1.0, (path.name, max_d, mean_d)
