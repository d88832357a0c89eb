"""``extract_slide_``: encode every patch of one slide into a features h5 (docs/data-contracts.md §5).

Data path, built for throughput:

1. :func:`~gliofuse.features.plan.plan_batches` groups patches into batches and each batch into
   region reads (one ``read_region`` per block of contiguous patches, split in memory);
2. :class:`~gliofuse.features.loader.BatchReader` reads them in DataLoader workers (one slide handle
   each, read-ahead ``prefetch_factor``, pinned memory on CUDA), as uint8 at the read level;
3. :class:`DevicePreprocess` resizes to the encoder input (antialiased) and normalises on the device;
4. the encoder runs under ``inference_mode``, channels_last, bf16/fp16 autocast on CUDA and, optionally,
   ``torch.compile``. Finished batches are saved every ``checkpoint_s`` so a killed job resumes.

Features do not depend on the read strategy or the worker count (up to float rounding).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import sys
import time
import zlib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from gliofuse.config import FeaturesConfig
from gliofuse.device import resolve_device
from gliofuse.errors import InputDataError
from gliofuse.features.encoders import Encoder, create_encoder
from gliofuse.features.loader import BatchReader, auto_workers, make_loader, resize_uint8
from gliofuse.features.plan import plan_batches, plan_hash
from gliofuse.features.resume import Finished, ResumeFolder
from gliofuse.features.status import FeatureRecord, write_feature_status_
from gliofuse.features.store import features_complete, write_features_h5_
from gliofuse.io import config_hash, file_hash, provenance
from gliofuse.wsi.coords import CoordsFile, read_coords_h5
from gliofuse.wsi.reader import open_slide

log = logging.getLogger(__name__)


def effective_precision(device: torch.device, precision: str, cpu_bf16: bool = False) -> str:
    """The precision actually used: ``precision`` on CUDA; on CPU bf16 if ``cpu_bf16`` else fp32."""
    if device.type == "cuda":
        return precision
    return "bf16" if cpu_bf16 else "fp32"


def _autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager[Any]:
    if precision == "fp32" or device.type not in ("cuda", "cpu"):
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16 if precision == "bf16" else torch.float16)


class DevicePreprocess:
    """(B, S, S, 3) uint8 on the device → (B, 3, I, I) float32 encoder input, channels_last.

    Resizes S → I = ``encoder.input_size`` with the encoder's filter (antialiased), then applies
    ``(x / 255 - mean) / std``. On CPU the resize runs on uint8 (torch's vectorised path, ~10x faster
    than float; rounds to integers); on CUDA it runs in float32.
    """

    def __init__(self, encoder: Encoder, device: torch.device) -> None:
        std = torch.tensor(encoder.std, dtype=torch.float32, device=device).view(1, 3, 1, 1)
        mean = torch.tensor(encoder.mean, dtype=torch.float32, device=device).view(1, 3, 1, 1)
        self.scale = 1.0 / (255.0 * std)
        self.shift = -mean / std
        self.size = int(encoder.input_size)
        self.mode = encoder.interpolation
        self.uint8 = device.type == "cpu"

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.uint8 and x.shape[1] != self.size:
            x = resize_uint8(x, self.size, self.mode)
        x = x.permute(0, 3, 1, 2)  # NHWC memory = channels_last NCHW
        if x.shape[-1] != self.size or x.shape[-2] != self.size:
            x = F.interpolate(x.float(), size=(self.size, self.size), mode=self.mode, align_corners=False,
                              antialias=True)
            if self.mode == "bicubic":
                x = x.clamp_(0.0, 255.0)
        return torch.addcmul(self.shift, x.float(), self.scale).contiguous(memory_format=torch.channels_last)


@lru_cache(maxsize=1)
def _cached_encoder(name: str, weights: str | None, weights_mtime: float, kwargs_json: str, seed: int) -> Encoder:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)  # random-init encoders get the same weights for every slide
        return create_encoder(name, weights=weights, kwargs=json.loads(kwargs_json))


def get_encoder(cfg: FeaturesConfig, *, seed: int) -> Encoder:
    """The configured encoder (cached per process; random init is seeded by ``seed``)."""
    mtime = Path(cfg.weights).stat().st_mtime if cfg.weights and Path(cfg.weights).is_file() else 0.0
    if cfg.weights is None:
        log.warning("features.weights is null: encoder %r has random weights (tests/demo only)", cfg.encoder)
    return _cached_encoder(cfg.encoder, cfg.weights, mtime, json.dumps(cfg.encoder_kwargs, sort_keys=True), seed)


def subsample(coords: np.ndarray, max_patches: int | None, *, seed: int, slide_id: str) -> np.ndarray:
    """Row indices of a seeded random subset of ≤ ``max_patches`` rows, kept in their original order."""
    n = len(coords)
    if max_patches is None or n <= max_patches:
        return np.arange(n)
    rng = np.random.default_rng([seed, zlib.crc32(slide_id.encode())])
    return np.sort(rng.choice(n, size=max_patches, replace=False))


@dataclass
class EncodeStats:
    """Counters of one :func:`encode_patches` call."""

    n_patches: int = 0
    n_batches: int = 0
    n_failed_reads: int = 0
    n_read_retries: int = 0
    resumed_batches: int = 0
    num_workers: int = 0
    seconds: float = 0.0


def encode_patches(slide_path: str | Path, coords: np.ndarray, *, read_level: int, read_size: int,
                   encoder: Encoder, device: torch.device, precision: str = "fp32", batch_size: int = 32,
                   strategy: str = "region", region_px: int = 2048, num_workers: int = 0,
                   prefetch_factor: int = 4, retries: int = 1, compile_model: bool = False,
                   resume: ResumeFolder | None = None, checkpoint_s: float | None = None,
                   progress: tqdm | None = None) -> tuple[np.ndarray, np.ndarray, EncodeStats]:
    """Read and encode the patches at ``coords``.

    Parameters
    ----------
    coords : (N, 2) int64 level-0 (x, y) patch corners.
    read_level, read_size : pyramid level and patch side in px of that level (coords h5 attributes).
    resume : progress folder; batches saved there are not recomputed, new ones are saved every
        ``checkpoint_s`` seconds (None: never).

    Returns
    -------
    features : (N, D) float32, row i = patch ``coords[i]``.
    failed : (N,) bool, unreadable patches (encoded as white tiles).
    stats : counters.
    """
    t0 = time.perf_counter()
    coords = np.asarray(coords, np.int64).reshape(-1, 2)
    n, d = len(coords), encoder.embed_dim
    feats = np.zeros((n, d), np.float32)
    failed = np.zeros(n, bool)
    stats = EncodeStats(n_patches=n, num_workers=num_workers)
    if n == 0:
        return feats, failed, stats
    with open_slide(slide_path) as slide:
        downsample = float(slide.level_downsamples[read_level])
    batches = plan_batches(coords, read_size=read_size, downsample=downsample, batch_size=batch_size,
                           strategy=strategy, region_px=region_px)
    stats.n_batches = len(batches)
    done: set[int] = set()
    if resume is not None:
        for part in resume.load():
            feats[part.rows] = part.features
            failed[part.rows] = part.failed
            done.update(int(b) for b in part.batches)
        stats.resumed_batches = len(done)
        if done:
            log.info("resuming %s: %d of %d batches done by an earlier run", Path(slide_path).name, len(done),
                     len(batches))
        resume.start()
    todo = [b.index for b in batches if b.index not in done]
    if progress is not None:
        progress.update(sum(len(batches[i].rows) for i in done))
    on_cpu = device.type == "cpu"  # CPU: resize in the reader (parallel across workers, 5x less data to pass)
    reader = BatchReader(slide_path, batches, read_level=read_level, read_size=read_size, retries=retries,
                         resize_to=encoder.input_size if on_cpu else None, resize_mode=encoder.interpolation)
    loader = make_loader(reader, todo, num_workers=num_workers, pin_memory=device.type == "cuda",
                         prefetch_factor=prefetch_factor)
    model = encoder.model.to(device=device, memory_format=torch.channels_last).eval()
    if compile_model:
        model = torch.compile(model, dynamic=False)
    pre = DevicePreprocess(encoder, device)
    pending: list[tuple[int, torch.Tensor, torch.Tensor, torch.Tensor]] = []
    last_flush = time.perf_counter()

    def flush() -> None:
        nonlocal last_flush
        if not pending:
            return
        idx = np.array([p[0] for p in pending], np.int64)
        rows = torch.cat([p[1] for p in pending]).numpy()
        ys = torch.cat([p[2] for p in pending]).float().cpu().numpy()
        fl = torch.cat([p[3] for p in pending]).numpy()
        feats[rows], failed[rows] = ys, fl
        if resume is not None and checkpoint_s is not None:
            resume.save(Finished(batches=idx, rows=rows, features=ys, failed=fl))
        pending.clear()
        last_flush = time.perf_counter()

    try:
        with torch.inference_mode(), _autocast(device, precision):
            for item in loader:
                x = item["patches"].to(device, non_blocking=True)
                b = x.shape[0]
                if compile_model and b < batch_size:  # fixed shapes: no recompilation for the last batch
                    x = torch.cat([x, x.new_zeros((batch_size - b, *x.shape[1:]))])
                y = model(pre(x))[:b]
                if y.shape != (b, d):
                    raise RuntimeError(f"encoder {encoder.name!r} returned shape {tuple(y.shape)}, expected ({b}, {d})")
                pending.append((int(item["index"]), item["rows"], y.detach(), item["failed"]))
                stats.n_read_retries += int(item["retries"])
                if progress is not None:
                    progress.update(b)
                if checkpoint_s is not None and time.perf_counter() - last_flush >= checkpoint_s:
                    flush()
            flush()
    finally:
        reader.close()
    stats.n_failed_reads = int(failed.sum())
    stats.seconds = time.perf_counter() - t0
    return feats, failed, stats


def _check_coords(cf: CoordsFile, slide_path: Path, coords_path: Path) -> None:
    if cf.status == "ok" and len(cf.coords):
        for name in ("read_level", "read_size", "patch_size"):
            if int(cf.attrs[name]) < 0 or (name != "read_level" and int(cf.attrs[name]) < 1):
                raise InputDataError(f"coords file {coords_path}: attribute {name} = {cf.attrs[name]} is invalid "
                                     "for an 'ok' slide. Rerun wsi_patch.")
        if str(cf.attrs["slide_hash"]) != file_hash(slide_path):
            raise InputDataError(f"coords file {coords_path} was computed from a different file than {slide_path} "
                                 "(slide_hash differs). Rerun wsi_patch for this slide.")


def extract_key(*, cfg: FeaturesConfig, coords: np.ndarray, cf: CoordsFile, seed: int, device: torch.device) -> str:
    """Identity of a features result: coords, geometry, encoder, weights, kwargs, precision (and seed if random)."""
    return config_hash({
        "coords": hashlib.sha256(np.ascontiguousarray(coords, np.int64).tobytes()).hexdigest(),
        "geometry": [int(cf.attrs[k]) for k in ("read_level", "read_size", "patch_size")],
        "slide_hash": str(cf.attrs["slide_hash"]), "encoder": cfg.encoder, "kwargs": cfg.encoder_kwargs,
        "weights": file_hash(cfg.weights) if cfg.weights else f"random:{seed}",
        "precision": effective_precision(device, cfg.precision, cfg.cpu_bf16), "device": device.type,
    })


def _reuse(out_path: Path, key: str, record: FeatureRecord) -> bool:
    if not features_complete(out_path, encoder=record.encoder, key=key):
        return False
    with h5py.File(out_path, "r") as f:
        a = f.attrs
        record.status, record.reason = str(a["status"]), str(a.get("reason", ""))
        record.n_patches, record.embed_dim = int(f["features"].shape[0]), int(f["features"].shape[1])
        record.n_failed_reads = int(a.get("n_failed_reads", 0))
        record.n_read_retries = int(a.get("n_read_retries", 0))
    record.reused = True
    return True


def extract_slide_(*, slide_path: Path, coords_path: Path, cfg: FeaturesConfig, out_path: Path, seed: int,
                   out_status: Path | None = None, num_workers: int | None = None) -> dict[str, Any]:
    """Encode the patches of one slide and write ``features`` (N, D) float32 + ``coords`` (N, 2) to ``out_path``.

    Parameters
    ----------
    slide_path : the slide the coords were computed from.
    coords_path : coords h5 from ``patch_slide_`` (docs/data-contracts.md §4).
    cfg : the ``features`` config section.
    out_path : features h5 (§5), written atomically.
    seed : seeds the patch subsample (``cfg.max_patches_per_slide``) and random-init encoders.
    out_status : status JSON (:class:`~gliofuse.features.status.FeatureRecord`); None: not written.
    num_workers : overrides ``cfg.num_workers``.

    Returns
    -------
    The status record as a dict. An existing complete ``out_path`` of the same run (same
    ``extract_key``) is reused (``reused`` True). A skipped or empty coords file gives a (0, D)
    features file with status ``skipped``; too many unreadable patches give status ``failed``.
    """
    t0 = time.perf_counter()
    slide_path, coords_path, out_path = Path(slide_path), Path(coords_path), Path(out_path)
    cf = read_coords_h5(coords_path)
    slide_id = str(cf.attrs["slide_id"])
    rows = subsample(cf.coords, cfg.max_patches_per_slide, seed=seed, slide_id=slide_id)
    coords = cf.coords[rows] if cf.status == "ok" else np.zeros((0, 2), np.int64)
    device = resolve_device(cfg.device, key="features.device")
    precision = effective_precision(device, cfg.precision, cfg.cpu_bf16)
    workers = num_workers if num_workers is not None else (
        cfg.num_workers if cfg.num_workers is not None else auto_workers(device))
    record = FeatureRecord(slide_id=slide_id, encoder=cfg.encoder, status="ok", device=str(device),
                           precision=precision, read_strategy=cfg.read_strategy, num_workers=workers)
    key = extract_key(cfg=cfg, coords=coords, cf=cf, seed=seed, device=device)
    if _reuse(out_path, key, record):
        log.info("features %s: %s exists and is complete; skipped", slide_id, out_path)
        record.seconds = round(time.perf_counter() - t0, 3)
        return write_feature_status_(out_status, record) if out_status else record.to_dict()
    _check_coords(cf, slide_path, coords_path)
    encoder = get_encoder(cfg, seed=seed)
    if device.type != "cuda" and cfg.precision != precision:
        log.info("features.precision=%s applies on CUDA; running %s on %s (features.cpu_bf16=%s)", cfg.precision,
                 precision, device, cfg.cpu_bf16)

    failed = np.zeros(0, bool)
    resume: ResumeFolder | None = None
    if cf.status != "ok" or len(coords) == 0:
        record.status, record.reason = "skipped", cf.reason or "no_patches: the coords file has no patches"
        feats = np.zeros((0, encoder.embed_dim), np.float32)
        coords = np.zeros((0, 2), np.int64)
    else:
        read_level, read_size = int(cf.attrs["read_level"]), int(cf.attrs["read_size"])
        with open_slide(slide_path) as slide:
            ds = float(slide.level_downsamples[read_level])
        plan = plan_hash(plan_batches(coords, read_size=read_size, downsample=ds, batch_size=cfg.batch_size,
                                      strategy=cfg.read_strategy, region_px=cfg.region_px))
        resume = ResumeFolder(out_path, f"{key}-{plan}")
        with tqdm(total=len(coords), desc=f"features {slide_id}", unit="patch", file=sys.stderr,
                  mininterval=1.0 if sys.stderr.isatty() else 15.0) as bar:
            feats, failed, stats = encode_patches(
                slide_path, coords, read_level=read_level, read_size=read_size, encoder=encoder, device=device,
                precision=precision, batch_size=cfg.batch_size, strategy=cfg.read_strategy,
                region_px=cfg.region_px, num_workers=workers, prefetch_factor=cfg.prefetch_factor,
                retries=cfg.read_retries, compile_model=cfg.compile, resume=resume,
                checkpoint_s=cfg.checkpoint_s, progress=bar)
        if not np.isfinite(feats).all():
            raise RuntimeError(f"features of slide {slide_id} contain NaN/inf (encoder {cfg.encoder}, precision "
                               f"{precision}); try features.precision: fp32 or bf16.")
        record.n_failed_reads, record.n_read_retries = stats.n_failed_reads, stats.n_read_retries
        record.resumed_batches = stats.resumed_batches
        record.patches_per_s = round(len(coords) / stats.seconds, 2) if stats.seconds > 0 else None
        if stats.n_failed_reads > cfg.max_failed_fraction * len(coords):
            record.status = "failed"
            record.reason = (f"read_errors: {stats.n_failed_reads} of {len(coords)} patches unreadable (more than "
                             f"features.max_failed_fraction={cfg.max_failed_fraction:g}); the slide file may be corrupt")
        elif stats.n_failed_reads:
            log.warning("features %s: %d unreadable patch(es) encoded as white tiles", slide_id, stats.n_failed_reads)
    record.n_patches, record.embed_dim = len(feats), encoder.embed_dim

    inputs: dict[str, Path | str] = {"slide": slide_path, "coords": coords_path}
    if cfg.weights:
        inputs["weights"] = cfg.weights
    prov = provenance(config=cfg.model_dump(mode="json"), inputs=inputs, extra={
        "stage": "features_extract", "seed": seed, "input_size": encoder.input_size, "mean": encoder.mean,
        "std": encoder.std, "interpolation": encoder.interpolation, "device": str(device), "precision": precision,
        "n_patches_coords": len(cf.coords), "torch_version": torch.__version__})
    write_features_h5_(out_path, feats, coords, {
        "encoder": cfg.encoder, "embed_dim": encoder.embed_dim, "patch_size": int(cf.attrs["patch_size"]),
        "target_mpp": float(cf.attrs["target_mpp"]), "slide_id": slide_id, "status": record.status,
        "reason": record.reason, "input_size": encoder.input_size, "precision": precision,
        "n_failed_reads": record.n_failed_reads, "n_read_retries": record.n_read_retries, "extract_key": key,
        "provenance": json.dumps(prov, sort_keys=True)}, read_failed=failed if len(failed) else None)
    if resume is not None:
        resume.clear()
    seconds = time.perf_counter() - t0
    record.seconds = round(seconds, 3)
    log.info("features %s: %s, %d patches x %d dims (%s on %s, %s, %d workers), %d failed reads, %.2f s",
             slide_id, record.status, len(feats), encoder.embed_dim, cfg.encoder, device, precision, workers,
             record.n_failed_reads, seconds)
    return write_feature_status_(out_status, record) if out_status else record.to_dict()
