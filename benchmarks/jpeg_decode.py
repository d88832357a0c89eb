#!/usr/bin/env python
"""Patch reading throughput: OpenSlide ``read_region`` vs raw JPEG tiles decoded in batches.

1. Writes (cached in ``--workdir``) a synthetic TCGA-like 40x Aperio SVS: 240-px JPEG tiles stored as
   Aperio stores them (RGB colour space, no chroma subsampling, photometric RGB; ``--jpeg ycbcr`` for
   4:2:0 YCbCr tiles instead), levels 1, 4, 16 (no 20x level), H&E-like texture everywhere.
2. Reads the same 20x patches (256 px at 0.5 µm/px = 512 level-0 px) in the same batches with
   (a) OpenSlide, one ``read_region`` per patch (the CLAM pattern),
   (b) OpenSlide, the project's region reads (``features.plan`` + ``features.loader.BatchReader``),
   (c) raw tiles: :class:`gliofuse.wsi.raw_patches.RawPatchReader` on ``--device``,
   each at the read size and resized to 224 px, single process, ``--threads`` torch threads.

Example: ``python benchmarks/jpeg_decode.py`` (CPU, < 1 min on 2 cores);
``python benchmarks/jpeg_decode.py --device cuda --max-patches 8192 --batch-size 256`` (GPU box).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import openslide
import torch
from PIL import Image

from gliofuse.demo.svs import aperio_description
from gliofuse.features.loader import BatchReader
from gliofuse.features.plan import plan_batches
from gliofuse.wsi.raw_patches import RawPatchReader
from gliofuse.wsi.reader import rgba_to_rgb

TILE, MPP_40X, READ_SIZE, OUT_SIZE = 240, 0.25, 512, 224


def _texture(n: int, seed: int) -> np.ndarray:
    """(n, TILE, TILE, 3) uint8 H&E-like tiles: pink stroma with grain, purple nuclei."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:TILE, 0:TILE].astype(np.float32)
    out = np.empty((n, TILE, TILE, 3), np.uint8)
    for i in range(n):
        low = np.asarray(Image.fromarray(rng.normal(0, 1, (16, 16)).astype(np.float32)).resize(
            (TILE, TILE), Image.Resampling.BICUBIC))
        img = np.stack([228 + 8 * low, 160 + 14 * low, 200 + 10 * low], -1) + rng.normal(0, 3, (TILE, TILE, 3))
        for _ in range(int(rng.integers(30, 60))):
            cx, cy, rx, ry = *rng.uniform(0, TILE, 2), *rng.uniform(8, 16, 2)
            m = ((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2 <= 1
            img[m] = np.array([95, 60, 140]) + rng.normal(0, 12, (int(m.sum()), 3))
        out[i] = np.clip(img, 0, 255).astype(np.uint8)
    return out


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def _tiles(pool: np.ndarray, ds: int, width: int, height: int) -> Iterator[np.ndarray]:
    """Row-major tiles of the level with downsample ``ds`` (texture repeated, downsampled by box mean)."""
    small = pool.reshape(len(pool), TILE // ds, ds, TILE // ds, ds, 3).mean((2, 4)).astype(np.uint8) if ds > 1 else pool
    per = ds  # level-0 tiles per side of one tile of this level
    for ty in range(_ceil_div(_ceil_div(height, ds), TILE)):
        for tx in range(_ceil_div(_ceil_div(width, ds), TILE)):
            idx = ((ty * per + np.arange(per))[:, None] * 7919 + (tx * per + np.arange(per))[None, :] * 104729) % len(pool)
            yield small[idx].transpose(0, 2, 1, 3, 4).reshape(TILE, TILE, 3)


def write_slide(path: Path, width: int, height: int, jpeg: str, quality: int = 80) -> None:
    """Pyramidal 40x Aperio SVS (levels 1, 4, 16), tile by tile."""
    import tifffile

    pool = _texture(32, seed=0)
    args = ({"level": quality, "outcolorspace": "rgb"}, (1, 1)) if jpeg == "rgb" else ({"level": quality}, (2, 2))
    desc = aperio_description(width=width, height=height, app_mag=40, mpp=MPP_40X, tile=TILE, quality=quality)
    tmp = path.with_name(path.name + ".tmp")
    with tifffile.TiffWriter(tmp) as tw:
        for i, ds in enumerate((1, 4, 16)):
            shape = (_ceil_div(height, ds), _ceil_div(width, ds), 3)
            tw.write(_tiles(pool, ds, width, height), shape=shape, dtype=np.uint8, tile=(TILE, TILE),
                     compression="jpeg", compressionargs=dict(args[0]), subsampling=args[1], photometric="rgb",
                     description=desc if i == 0 else None, metadata=None, subfiletype=0 if i == 0 else 1)
    tmp.replace(path)


def _time(fn: Callable[[], int], device: torch.device, repeats: int) -> tuple[int, float]:
    """Patches read and the best wall time of ``repeats`` runs (s)."""
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        n = fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t0)
    return n, best


def _mean_tile_kb(slide: Path) -> float:
    import tifffile

    with tifffile.TiffFile(slide) as tf:
        return float(np.mean(tf.pages[0].databytecounts)) / 1e3


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--width", type=int, default=12000)
    ap.add_argument("--height", type=int, default=9000)
    ap.add_argument("--jpeg", choices=("rgb", "ycbcr"), default="rgb")
    ap.add_argument("--max-patches", type=int, default=192)
    ap.add_argument("--repeats", type=int, default=2, help="best of this many runs per method")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads (OpenSlide reads use one)")
    ap.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "gliofuse-bench")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    device = torch.device(a.device)
    a.workdir.mkdir(parents=True, exist_ok=True)
    slide = a.workdir / f"tcga-like-{a.width}x{a.height}-{a.jpeg}.svs"
    if not slide.exists():
        t0 = time.perf_counter()
        write_slide(slide, a.width, a.height, a.jpeg)
        print(f"wrote {slide} ({slide.stat().st_size / 1e6:.1f} MB) in {time.perf_counter() - t0:.1f} s")
    step = READ_SIZE
    xs, ys = np.arange(0, a.width - step + 1, step), np.arange(0, a.height - step + 1, step)
    coords = np.stack(np.meshgrid(xs, ys), -1).reshape(-1, 2).astype(np.int64)[: a.max_patches]
    batches = plan_batches(coords, read_size=READ_SIZE, downsample=1.0, batch_size=a.batch_size)

    def per_patch(out: int | None) -> Callable[[], int]:
        def run() -> int:
            with openslide.OpenSlide(str(slide)) as s:
                for x, y in coords.tolist():
                    img = Image.fromarray(rgba_to_rgb(np.asarray(s.read_region((x, y), 0, (READ_SIZE, READ_SIZE)))))
                    if out is not None:
                        img.resize((out, out), Image.Resampling.BILINEAR)
            return len(coords)
        return run

    def regions(out: int | None) -> Callable[[], int]:
        def run() -> int:
            reader = BatchReader(slide, batches, read_level=0, read_size=READ_SIZE, resize_to=out)
            n = sum(len(reader[i]["rows"]) for i in range(len(batches)))
            reader.close()
            return n
        return run

    def raw(out: int | None) -> Callable[[], int]:
        def run() -> int:
            with RawPatchReader(slide, level=0, read_size=READ_SIZE, out_size=out, device=device) as reader:
                return sum(len(reader.read(coords[b.rows])) for b in batches)
        return run

    raw(None)()  # warm-up: imports, decoder initialisation
    with RawPatchReader(slide, level=0, read_size=READ_SIZE, device=device) as reader:
        got = reader.read(coords[batches[0].rows]).permute(0, 2, 3, 1).cpu().numpy().astype(np.int16)
    ref = BatchReader(slide, batches[:1], read_level=0, read_size=READ_SIZE)[0]["patches"].numpy()
    check = np.abs(got - ref)
    print(f"first batch, raw vs OpenSlide: max |diff| {check.max()}, mean {check.mean():.4f} grey levels")
    rows = []
    for name, make in (("OpenSlide read_region per patch", per_patch), ("OpenSlide region reads (BatchReader)", regions),
                       (f"raw JPEG tiles, decode on {device.type}", raw)):
        for out in (None, OUT_SIZE):
            n, sec = _time(make(out), device, a.repeats)
            rows.append((name, f"{READ_SIZE}" if out is None else f"{READ_SIZE}->{out}", n, sec))
    print(f"\n{len(coords)} patches of {READ_SIZE} level-0 px, batches of {a.batch_size}, {a.jpeg} JPEG tiles of {TILE} px "
          f"({_mean_tile_kb(slide):.1f} KB), torch threads {a.threads}, best of {a.repeats}")
    print(f"{'method':40s} {'size':>9s} {'patches':>8s} {'seconds':>8s} {'patches/s':>10s}")
    for name, size, n, sec in rows:
        print(f"{name:40s} {size:>9s} {n:8d} {sec:8.2f} {n / sec:10.1f}")


if __name__ == "__main__":
    main()
