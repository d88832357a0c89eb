#!/usr/bin/env python
"""Feature-extraction throughput: a naive CLAM-style loop vs gliofuse's extractor, on a TCGA-size slide.

1. Writes (once, cached) a synthetic 40x Aperio SVS of ``--width`` x ``--height`` level-0 px (default
   40,000 x 30,000 at 0.25 µm/px; 240-px JPEG tiles as Aperio writes them; levels 1, 4, 16 like a TCGA scan, so there is no
   20x level). Tiles are generated on the fly from a small pool of H&E-like textures and written by
   tifffile from a generator, so memory stays bounded.
2. Times segmentation + patching (``gliofuse.wsi.patch_slide_``: 256-px patches at 0.5 µm/px).
3. On the first ``--max-patches`` patches of the coords file (row-major), measures patches/s of
   (a) naive: one ``read_region`` of 512 level-0 px per patch, PIL resize to 224 and normalisation on
       the CPU in DataLoader workers, fp32 model (the CLAM ``extract_features_fp.py`` pattern);
   (b) gliofuse: :func:`gliofuse.features.encode.encode_patches` (region reads split into patches,
       uint8 to the device, resize + normalisation there, channels_last, bf16 autocast (on CPU too, as
       with ``features.cpu_bf16``), optional torch.compile) — also at fp32, to separate the data-path gain
       from the precision gain,
   for each encoder (random weights: speed does not depend on them), plus both data paths without a
   model ("read-only").

Example (GPU box)::

    python benchmarks/feature_extraction.py --device cuda --workers 15 --batch-size 256 \
        --max-patches 8192 --vit-max-patches 8192 --out results/benchmarks/feature_extraction.json

Keep out of the test suite: it takes minutes and its numbers depend on the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import openslide
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from gliofuse.config import WsiConfig
from gliofuse.demo.svs import aperio_description
from gliofuse.features.encode import DevicePreprocess, encode_patches
from gliofuse.features.encoders import Encoder, create_encoder
from gliofuse.features.loader import BatchReader, make_loader
from gliofuse.features.plan import plan_batches
from gliofuse.wsi import read_coords_h5
from gliofuse.wsi.patch import patch_slide_

TILE = 240  # Aperio/TCGA tile side: 512-px patches straddle tiles, as on real slides
MPP_40X = 0.25
#: tissue = union of ellipses (cx, cy, rx, ry) in fractions of the slide width/height (~45 % of the area)
ELLIPSES = ((0.30, 0.45, 0.22, 0.33), (0.66, 0.52, 0.20, 0.36), (0.50, 0.16, 0.12, 0.10))
VIT_ENCODERS = ("vit_", "uni", "virchow")


# --------------------------------------------------------------------------- synthetic slide
def _texture_pool(n: int, seed: int, texture_dir: Path | None = None) -> np.ndarray:
    """(n, TILE, TILE, 3) uint8 tissue tiles at 40x.

    From ``texture_dir``: tiles cut from its PNG/JPEG images (e.g. real H&E regions of interest), with
    random flips and rotations. Otherwise procedural H&E-like texture: pink stroma with fibres and fine
    grain, densely packed purple nuclei (~18 KB per JPEG tile at quality 80).
    """
    rng = np.random.default_rng(seed)
    if texture_dir is not None:
        tiles = []
        for f in sorted(p for p in texture_dir.iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg")):
            img = np.asarray(Image.open(f).convert("RGB"))
            for y in range(0, img.shape[0] - TILE + 1, TILE):
                for x in range(0, img.shape[1] - TILE + 1, TILE):
                    tiles.append(img[y:y + TILE, x:x + TILE])
        if not tiles:
            raise SystemExit(f"--texture-dir {texture_dir}: no PNG/JPEG image of at least {TILE} px")
        picks = rng.integers(0, len(tiles), n)
        return np.stack([np.rot90(tiles[i], k=int(rng.integers(4)))[:, :: 1 if rng.random() < 0.5 else -1]
                         for i in picks])
    yy, xx = np.mgrid[0:TILE, 0:TILE].astype(np.float32)
    pool = np.empty((n, TILE, TILE, 3), np.uint8)

    def noise(cells: int, resample: Image.Resampling) -> np.ndarray:
        low = rng.normal(0, 1, (cells, cells)).astype(np.float32)
        return np.asarray(Image.fromarray(low).resize((TILE, TILE), resample))

    for i in range(n):
        smooth, fine = noise(TILE // 16 + 1, Image.Resampling.BICUBIC), noise(TILE // 2, Image.Resampling.BILINEAR)
        fibres = np.sin((xx * np.cos(i) + yy * np.sin(i)) / 6.0 + smooth * 2.0)
        img = np.stack([228 + 8 * smooth, 160 + 18 * fibres + 10 * smooth, 200 + 10 * fibres], -1)
        img = img + 20 * fine[..., None] * np.array([0.6, 1.0, 0.7]) + rng.normal(0, 6, img.shape)
        for _ in range(rng.integers(30, 60)):  # nuclei, 4-8 µm radius at 0.25 µm/px
            cx, cy = rng.uniform(0, TILE, 2)
            rx, ry = rng.uniform(8, 16, 2)
            m = ((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2 <= 1
            img[m] = np.array([95, 60, 140]) + 25 * fine[m][:, None] + rng.normal(0, 10, (m.sum(), 3))
        pool[i] = np.clip(img, 0, 255).astype(np.uint8)
    return pool


def _downsample_pool(pool: np.ndarray, factor: int) -> np.ndarray:
    if factor == 1:
        return pool
    n, s = pool.shape[0], TILE // factor
    return pool.reshape(n, s, factor, s, factor, 3).mean((2, 4)).round().astype(np.uint8)


def _tissue_mask(x0: np.ndarray, y0: np.ndarray, width: int, height: int) -> np.ndarray:
    """Tissue mask at level-0 positions x0 (W,) and y0 (H,) → (H, W) bool."""
    X, Y = (x0 / width)[None, :], (y0 / height)[:, None]
    m = np.zeros((len(y0), len(x0)), bool)
    for cx, cy, rx, ry in ELLIPSES:
        m |= ((X - cx) / rx) ** 2 + ((Y - cy) / ry) ** 2 <= 1
    return m


def _level_tiles(level_ds: int, width: int, height: int, tissue: np.ndarray, background: np.ndarray):
    """Yield the 256² tiles of one pyramid level (row-major), content consistent across levels."""
    lw, lh = -(-width // level_ds), -(-height // level_ds)
    sub = TILE // level_ds  # px of one level-0 texture tile at this level
    t_pool, b_pool = _downsample_pool(tissue, level_ds), _downsample_pool(background, level_ds)
    per = TILE // sub  # level-0 tiles per side of one tile of this level
    for ty in range(-(-lh // TILE)):
        for tx in range(-(-lw // TILE)):
            gx0, gy0 = tx * per, ty * per  # index of the first level-0 tile covered
            idx = (np.arange(gy0, gy0 + per)[:, None] * 7919 + np.arange(gx0, gx0 + per)[None, :] * 104729) % len(t_pool)
            tis = t_pool[idx].transpose(0, 2, 1, 3, 4).reshape(TILE, TILE, 3)
            bg = b_pool[idx % len(b_pool)].transpose(0, 2, 1, 3, 4).reshape(TILE, TILE, 3)
            xs = (tx * TILE + np.arange(TILE) + 0.5) * level_ds
            ys = (ty * TILE + np.arange(TILE) + 0.5) * level_ds
            m = _tissue_mask(xs, ys, width, height)
            yield np.where(m[..., None], tis, bg)


def write_synthetic_slide(path: Path, *, width: int, height: int, quality: int = 80, seed: int = 0,
                          texture_dir: Path | None = None) -> dict[str, Any]:
    """Write a pyramidal 40x Aperio SVS (levels 1, 4, 16) tile by tile; return its description."""
    import tifffile

    t0 = time.perf_counter()
    tissue = _texture_pool(32, seed, texture_dir)
    rng = np.random.default_rng(seed + 1)
    background = np.clip(rng.normal(243, 2.5, (4, TILE, TILE, 3)), 0, 255).astype(np.uint8)
    desc = aperio_description(width=width, height=height, app_mag=40, mpp=MPP_40X, tile=TILE, quality=quality,
                              filename=path.stem)
    tmp = path.with_name(path.name + ".tmp")
    path.parent.mkdir(parents=True, exist_ok=True)
    with tifffile.TiffWriter(tmp, bigtiff=width * height > 3 * 10**9) as tw:
        for i, ds in enumerate((1, 4, 16)):
            lw, lh = -(-width // ds), -(-height // ds)
            tw.write(_level_tiles(ds, width, height, tissue, background), shape=(lh, lw, 3), dtype=np.uint8,
                     tile=(TILE, TILE), compression="jpeg", compressionargs={"level": quality}, photometric="rgb",
                     description=desc if i == 0 else None, metadata=None, subfiletype=0 if i == 0 else 1)
    os.replace(tmp, path)
    with tifffile.TiffFile(path) as tf:
        counts = np.asarray(tf.pages[0].databytecounts)
    return {"path": str(path), "width": width, "height": height, "mpp": MPP_40X, "levels": [1, 4, 16],
            "texture": str(texture_dir) if texture_dir else "procedural", "jpeg_quality": quality,
            "bytes": path.stat().st_size, "tile_kb_p90": round(float(np.percentile(counts, 90)) / 1e3, 1),
            "seconds_to_write": round(time.perf_counter() - t0, 1)}


# --------------------------------------------------------------------------- naive CLAM-style loop
class NaivePatches(Dataset):
    """One ``read_region`` per patch at level 0, CPU resize + normalise (the CLAM pattern)."""

    def __init__(self, slide: Path, coords: np.ndarray, size0: int, encoder: Encoder) -> None:
        self.slide, self.coords, self.size0 = str(slide), coords, size0
        self.out = encoder.input_size
        self.mean = torch.tensor(encoder.mean).view(3, 1, 1)
        self.std = torch.tensor(encoder.std).view(3, 1, 1)
        self.wsi: openslide.OpenSlide | None = None

    def __len__(self) -> int:
        return len(self.coords)

    def __getitem__(self, i: int) -> torch.Tensor:
        if self.wsi is None:
            self.wsi = openslide.OpenSlide(self.slide)
        x, y = self.coords[i].tolist()
        img = self.wsi.read_region((x, y), 0, (self.size0, self.size0)).convert("RGB")
        img = img.resize((self.out, self.out), Image.Resampling.BILINEAR)
        t = torch.from_numpy(np.array(img)).permute(2, 0, 1).float().div_(255.0)
        return (t - self.mean) / self.std


def run_naive(slide: Path, coords: np.ndarray, size0: int, encoder: Encoder | None, enc_for_pre: Encoder, *,
              device: torch.device, workers: int, batch_size: int) -> dict[str, Any]:
    ds = NaivePatches(slide, coords, size0, enc_for_pre)
    loader = DataLoader(ds, batch_size=batch_size, num_workers=workers, pin_memory=device.type == "cuda")
    model = encoder.model.to(device).eval() if encoder is not None else None
    if model is not None:
        with torch.inference_mode():
            model(torch.zeros(2, 3, enc_for_pre.input_size, enc_for_pre.input_size, device=device))
    _sync(device)
    t0 = time.perf_counter()
    n = 0
    with torch.inference_mode():
        for x in loader:
            if model is not None:
                model(x.to(device)).float().cpu().numpy()
            n += len(x)
    _sync(device)
    return _rate(n, time.perf_counter() - t0)


# --------------------------------------------------------------------------- gliofuse
def run_gliofuse(slide: Path, coords: np.ndarray, read_size: int, encoder: Encoder, *, device: torch.device,
                 workers: int, batch_size: int, precision: str, compile_model: bool) -> dict[str, Any]:
    warm = coords[:batch_size] if compile_model else coords[:2]
    encode_patches(slide, warm, read_level=0, read_size=read_size, encoder=encoder, device=device,
                   batches=plan_batches(warm, read_size=read_size, downsample=1.0, batch_size=batch_size),
                   precision=precision, batch_size=batch_size, num_workers=0, compile_model=compile_model)
    _sync(device)
    t0 = time.perf_counter()
    batches = plan_batches(coords, read_size=read_size, downsample=1.0, batch_size=batch_size)
    feats, failed, _ = encode_patches(slide, coords, read_level=0, read_size=read_size, encoder=encoder,
                                      device=device, batches=batches, precision=precision, batch_size=batch_size,
                                      num_workers=workers, compile_model=compile_model)
    _sync(device)
    assert feats.shape == (len(coords), encoder.embed_dim) and not failed.any()
    return _rate(len(coords), time.perf_counter() - t0)


def run_gliofuse_read_only(slide: Path, coords: np.ndarray, read_size: int, encoder: Encoder, *,
                           device: torch.device, workers: int, batch_size: int) -> dict[str, Any]:
    batches = plan_batches(coords, read_size=read_size, downsample=1.0, batch_size=batch_size)
    reader = BatchReader(slide, batches, read_level=0, read_size=read_size,  # as encode_patches does
                         resize_to=encoder.input_size if device.type == "cpu" else None)
    loader = make_loader(reader, range(len(batches)), num_workers=workers, pin_memory=device.type == "cuda",
                         prefetch_factor=4)
    pre = DevicePreprocess(encoder, device)
    t0 = time.perf_counter()
    n = 0
    for item in loader:
        pre(item["patches"].to(device, non_blocking=True))
        n += len(item["rows"])
    _sync(device)
    return _rate(n, time.perf_counter() - t0)


# --------------------------------------------------------------------------- helpers
def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _rate(n: int, seconds: float) -> dict[str, Any]:
    return {"patches": n, "seconds": round(seconds, 3), "patches_per_s": round(n / seconds, 2)}


def _measure(variants: dict[str, Any], coords: np.ndarray, repeats: int) -> dict[str, Any]:
    """Run each variant ``repeats`` times, interleaved (the machine may be shared); report the median rate and
    each ``gliofuse*`` variant's ratio to ``naive``."""
    rates: dict[str, list[float]] = {k: [] for k in variants}
    for _ in range(repeats):
        for k, fn in variants.items():
            rates[k].append(fn(coords)["patches_per_s"])
    out: dict[str, Any] = {"patches": len(coords)}
    for k, v in rates.items():
        out[k] = {"patches_per_s": round(float(np.median(v)), 2), "all": v}
    if "naive" in rates:
        for k in rates:
            if k != "naive":
                out[f"ratio_{k}"] = round(out[k]["patches_per_s"] / out["naive"]["patches_per_s"], 2)
    return out


def machine_info(device: torch.device) -> dict[str, Any]:
    cpu = ""
    try:
        cpu = next(ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                   if ln.startswith("model name"))
    except (OSError, StopIteration):
        cpu = platform.processor()
    info = {"nproc": len(os.sched_getaffinity(0)), "cpu_model": cpu, "torch": torch.__version__,
            "python": platform.python_version(), "device": str(device), "torch_threads": torch.get_num_threads()}
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def select_patches(coords: np.ndarray, n: int) -> np.ndarray:
    """The first ``n`` patches of the coords file (row-major, the order a CLAM-style loop reads them)."""
    return coords[:n]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--slide", type=Path, default=None, help="use this slide instead of the synthetic one")
    ap.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "gliofuse-bench",
                    help="where the synthetic slide and coords are cached")
    ap.add_argument("--texture-dir", type=Path, default=None,
                    help="folder of H&E images to cut the tissue tiles from (default: procedural texture)")
    ap.add_argument("--width", type=int, default=40000)
    ap.add_argument("--height", type=int, default=30000)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--workers", type=int, default=max(0, len(os.sched_getaffinity(0)) - 1))
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--max-patches", type=int, default=512, help="patches per measurement (CNN and read-only)")
    ap.add_argument("--vit-max-patches", type=int, default=48, help="patches per ViT measurement (CPU: ViTs are slow)")
    ap.add_argument("--encoders", nargs="+", default=["resnet50_trunc", "vit_l16"])
    ap.add_argument("--precision", default="bf16", choices=["fp32", "bf16", "fp16"],
                    help="gliofuse autocast (CUDA; bf16 also on CPU, like features.cpu_bf16); the naive loop is fp32")
    ap.add_argument("--compile", action="store_true", help="torch.compile the encoder in the gliofuse run")
    ap.add_argument("--skip-naive", action="store_true")
    ap.add_argument("--repeats", type=int, default=1, help="interleaved repetitions; the median is reported")
    ap.add_argument("--out", type=Path, default=Path("results/benchmarks/feature_extraction.json"))
    args = ap.parse_args(argv)

    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    result: dict[str, Any] = {"machine": machine_info(device), "args": {k: str(v) for k, v in vars(args).items()}}
    print(json.dumps(result["machine"]), flush=True)

    if args.slide is None:
        tex = f"-{args.texture_dir.name}" if args.texture_dir else ""
        slide = args.workdir / f"synthetic-40x-{args.width}x{args.height}{tex}.svs"
        if not slide.is_file():
            print(f"writing {slide} ...", flush=True)
            result["slide"] = write_synthetic_slide(slide, width=args.width, height=args.height,
                                                    texture_dir=args.texture_dir)
        else:
            result["slide"] = {"path": str(slide), "width": args.width, "height": args.height, "cached": True,
                               "bytes": slide.stat().st_size}
    else:
        slide = args.slide
        result["slide"] = {"path": str(slide)}
    print(json.dumps(result["slide"]), flush=True)

    out = args.workdir / "wsi"
    t0 = time.perf_counter()
    rec = patch_slide_(slide_path=slide, cfg=WsiConfig(), out_coords=out / f"{slide.stem}.h5",
                       out_qc=out / f"{slide.stem}.png", out_status=out / f"{slide.stem}.json",
                       out_geojson=out / f"{slide.stem}.geojson", out_thumbnail=out / f"{slide.stem}.jpg",
                       out_contours=out / f"{slide.stem}.contours.jpg")
    result["segmentation_patching"] = {"seconds": round(time.perf_counter() - t0, 2), "n_patches": rec["n_patches"],
                                       "tissue_fraction": rec["tissue_fraction"], "status": rec["status"]}
    print(json.dumps(result["segmentation_patching"]), flush=True)
    cf = read_coords_h5(out / f"{slide.stem}.h5")
    if int(cf.attrs["read_level"]) != 0:
        raise SystemExit("benchmark expects patches read at level 0 (a 40x slide tiled at 20x)")
    read_size = int(cf.attrs["read_size"])

    runs: dict[str, Any] = {}
    probe = create_encoder("resnet50_trunc", weights=None)  # preprocessing (224 px, ImageNet) of the read-only runs
    coords = select_patches(cf.coords, args.max_patches)
    common = {"device": device, "workers": args.workers, "batch_size": args.batch_size}
    variants: dict[str, Any] = {}
    if not args.skip_naive:
        variants["naive"] = lambda c: run_naive(slide, c, read_size, None, probe, **common)
    variants["gliofuse"] = lambda c: run_gliofuse_read_only(slide, c, read_size, probe, **common)
    runs["read_only"] = _measure(variants, coords, args.repeats)
    print("read_only", json.dumps(runs["read_only"]), flush=True)

    for name in args.encoders:
        torch.manual_seed(0)
        enc = create_encoder(name, weights=None)
        n = args.vit_max_patches if name.startswith(VIT_ENCODERS) else args.max_patches
        c = select_patches(cf.coords, n)
        variants = {}
        if not args.skip_naive:
            variants["naive"] = lambda c, enc=enc: run_naive(slide, c, read_size, enc, enc, **common)
        if args.precision != "fp32":  # same precision as the naive loop: isolates the data-path gain
            variants["gliofuse_fp32"] = lambda c, enc=enc: run_gliofuse(slide, c, read_size, enc, precision="fp32",
                                                                        compile_model=False, **common)
        variants["gliofuse"] = lambda c, enc=enc: run_gliofuse(slide, c, read_size, enc, precision=args.precision,
                                                               compile_model=args.compile, **common)
        runs[name] = {"embed_dim": enc.embed_dim, "gliofuse_precision": args.precision,
                      **_measure(variants, c, args.repeats)}
        print(name, json.dumps(runs[name]), flush=True)
        del enc
    result["runs"] = runs
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
