"""``extract_slide_``: encode every patch of one slide into a features h5 (docs/data-contracts.md §5).

A slide goes through two phases, so that a shard of slides (:mod:`gliofuse.features.shard`) can
prepare the next slide while the current one encodes:

1. :func:`prepare_slide` (no encoder forward): read and check the coords file, decide whether a
   complete features file of the same run can be reused, choose the reader (``features.decoder``),
   plan the batches (:func:`~gliofuse.features.plan.plan_batches`) and optionally read the first ones;
2. :func:`encode_prepared`: :func:`~gliofuse.features.encode.encode_patches` (falling back from raw
   JPEG tiles to OpenSlide on any raw-tile error when ``decoder: auto``) and write the h5 + status.
"""

from __future__ import annotations

import hashlib
import json
import logging
import sys
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch
from tqdm import tqdm

from gliofuse.config import FeaturesConfig
from gliofuse.device import resolve_device
from gliofuse.errors import InputDataError, RawTilesUnsupportedError
from gliofuse.features.encode import effective_precision, encode_patches
from gliofuse.features.encoders import Encoder, create_encoder
from gliofuse.features.loader import BatchReader, auto_workers
from gliofuse.features.plan import Batch, plan_batches, plan_hash
from gliofuse.features.resume import ResumeFolder
from gliofuse.features.status import FeatureRecord, write_feature_status_
from gliofuse.features.store import features_complete, write_features_h5_
from gliofuse.io import config_hash, file_hash, provenance
from gliofuse.wsi.coords import CoordsFile, read_coords_h5
from gliofuse.wsi.jpeg_tiles import supports_raw_tiles
from gliofuse.wsi.reader import open_slide

log = logging.getLogger(__name__)


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


def run_settings(cfg: FeaturesConfig, num_workers: int | None = None) -> tuple[torch.device, str, int]:
    """(device, precision actually used, DataLoader workers) of a run; ``num_workers`` overrides the config."""
    device = resolve_device(cfg.device, key="features.device")
    precision = effective_precision(device, cfg.precision, cfg.cpu_bf16)
    workers = num_workers if num_workers is not None else (
        cfg.num_workers if cfg.num_workers is not None else auto_workers(device))
    return device, precision, workers


@dataclass
class SlideJob:
    """One slide to encode: its file, coords h5 (§4), features h5 and status JSON (§5; None: not written)."""

    slide_path: Path
    coords_path: Path
    out_path: Path
    out_status: Path | None = None


@dataclass
class Prepared:
    """A slide after :func:`prepare_slide`: what :func:`encode_prepared` needs."""

    job: SlideJob
    cf: CoordsFile
    coords: np.ndarray  # (N, 2) int64, after the subsample; (0, 2) for a skipped slide
    key: str
    record: FeatureRecord
    t0: float
    reused: bool = False
    decoder: str = "openslide"
    batches: list[Batch] = field(default_factory=list)
    prefetched: dict[int, dict[str, Any]] = field(default_factory=dict)


def choose_decoder(cfg: FeaturesConfig, slide_path: Path, read_level: int) -> str:
    """``raw`` or ``openslide`` for this slide by ``features.decoder`` (raw tiles need a tiled-JPEG level)."""
    if cfg.decoder == "openslide":
        return "openslide"
    if supports_raw_tiles(slide_path, read_level):
        return "raw"
    if cfg.decoder == "raw":
        raise RawTilesUnsupportedError(f"{slide_path}: level {read_level} is not stored as tiled JPEG, and "
                                       "features.decoder is 'raw'. Set features.decoder: auto (OpenSlide reads it).")
    return "openslide"


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
    """Identity of a features result: coords, geometry, encoder, weights, kwargs, precision, features.decoder
    (and the seed if random)."""
    return config_hash({
        "coords": hashlib.sha256(np.ascontiguousarray(coords, np.int64).tobytes()).hexdigest(),
        "geometry": [int(cf.attrs[k]) for k in ("read_level", "read_size", "patch_size")],
        "slide_hash": str(cf.attrs["slide_hash"]), "encoder": cfg.encoder, "kwargs": cfg.encoder_kwargs,
        "weights": file_hash(cfg.weights) if cfg.weights else f"random:{seed}",
        "precision": effective_precision(device, cfg.precision, cfg.cpu_bf16), "device": device.type,
        "decoder": cfg.decoder,
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


def prepare_slide(job: SlideJob, *, cfg: FeaturesConfig, seed: int, encoder: Encoder | None = None,
                  prefetch: int = 0) -> Prepared:
    """Phase 1 of a slide: coords, reuse check, reader choice, batch plan, and (``prefetch`` > 0, with
    ``encoder`` given) the first ``prefetch`` batches read — all without running the encoder.

    Raises ``InputDataError`` for a coords file that does not belong to the slide, ``SlideReadError``
    for a slide that cannot be opened.
    """
    t0 = time.perf_counter()
    cf = read_coords_h5(job.coords_path)
    slide_id = str(cf.attrs["slide_id"])
    rows = subsample(cf.coords, cfg.max_patches_per_slide, seed=seed, slide_id=slide_id)
    coords = cf.coords[rows] if cf.status == "ok" else np.zeros((0, 2), np.int64)
    device, precision, workers = run_settings(cfg)
    record = FeatureRecord(slide_id=slide_id, encoder=cfg.encoder, status="ok", device=str(device),
                           precision=precision, read_strategy=cfg.read_strategy, num_workers=workers)
    key = extract_key(cfg=cfg, coords=coords, cf=cf, seed=seed, device=device)
    prep = Prepared(job=job, cf=cf, coords=coords, key=key, record=record, t0=t0)
    if _reuse(job.out_path, key, record):
        prep.reused = True
        return prep
    _check_coords(cf, job.slide_path, job.coords_path)
    if cf.status != "ok" or len(coords) == 0:
        return prep
    read_level, read_size = int(cf.attrs["read_level"]), int(cf.attrs["read_size"])
    with open_slide(job.slide_path) as slide:
        ds = float(slide.level_downsamples[read_level])
    prep.decoder = choose_decoder(cfg, job.slide_path, read_level)
    prep.batches = plan_batches(coords, read_size=read_size, downsample=ds, batch_size=cfg.batch_size,
                                strategy=cfg.read_strategy, region_px=cfg.region_px)
    fresh = not ResumeFolder(job.out_path, "").dir.exists()
    if prefetch > 0 and encoder is not None and fresh and not (prep.decoder == "raw" and device.type == "cuda"):
        _prefetch(prep, encoder, on_cpu=device.type == "cpu", retries=cfg.read_retries, n=prefetch)
    return prep


def _prefetch(prep: Prepared, encoder: Encoder, *, on_cpu: bool, retries: int, n: int) -> None:
    """Read the first ``n`` batches of a fresh slide in this thread (a raw-tile error drops them: the encode
    phase meets it again and falls back)."""
    read_level, read_size = int(prep.cf.attrs["read_level"]), int(prep.cf.attrs["read_size"])
    reader = BatchReader(prep.job.slide_path, prep.batches, read_level=read_level, read_size=read_size,
                         retries=retries, resize_to=encoder.input_size if on_cpu else None,
                         resize_mode=encoder.interpolation, decoder=prep.decoder)
    try:
        for b in prep.batches[:n]:
            prep.prefetched[b.index] = reader[b.index]
    except Exception as exc:  # noqa: BLE001 - any read error is handled (and reported) by the encode phase
        log.debug("prefetch of %s stopped: %s", prep.job.slide_path.name, exc)
        prep.prefetched.clear()
    finally:
        reader.close()


def _encode(prep: Prepared, cfg: FeaturesConfig, encoder: Encoder, *, decoder: str, num_workers: int | None,
            on_started: Callable[[], None] | None = None) -> tuple[np.ndarray, np.ndarray, Any]:
    """encode_patches of a prepared slide with ``decoder``, resumable (the run key includes the decoder)."""
    device, precision, workers = run_settings(cfg, num_workers)
    resume = ResumeFolder(prep.job.out_path, f"{prep.key}-{plan_hash(prep.batches)}-{decoder}")
    with tqdm(total=len(prep.coords), desc=f"features {prep.record.slide_id}", unit="patch", file=sys.stderr,
              mininterval=1.0 if sys.stderr.isatty() else 15.0) as bar:
        out = encode_patches(
            prep.job.slide_path, prep.coords, read_level=int(prep.cf.attrs["read_level"]),
            read_size=int(prep.cf.attrs["read_size"]), encoder=encoder, device=device, batches=prep.batches,
            precision=precision, batch_size=cfg.batch_size, num_workers=workers,
            prefetch_factor=cfg.prefetch_factor, retries=cfg.read_retries, compile_model=cfg.compile,
            decoder=decoder, resume=resume, checkpoint_s=cfg.checkpoint_s,
            prefetched=prep.prefetched if decoder == prep.decoder else None, progress=bar, on_started=on_started)
    return out


def _encode_with_fallback(prep: Prepared, cfg: FeaturesConfig, encoder: Encoder, num_workers: int | None,
                          on_started: Callable[[], None] | None) -> tuple[np.ndarray, np.ndarray, Any]:
    """Encode with the chosen reader; ``decoder: auto`` redoes the slide with OpenSlide after a raw-tile error."""
    record = prep.record
    record.decoder = prep.decoder
    try:
        return _encode(prep, cfg, encoder, decoder=prep.decoder, num_workers=num_workers, on_started=on_started)
    except Exception as exc:
        if prep.decoder != "raw" or cfg.decoder != "auto":
            raise
        reason = " ".join(str(exc).split())[:300]
        log.warning("features %s: raw JPEG tiles failed (%s); reading the slide with OpenSlide", record.slide_id,
                    reason)
        record.decoder, record.decoder_fallback = "openslide", f"{type(exc).__name__}: {reason}"
        return _encode(prep, cfg, encoder, decoder="openslide", num_workers=num_workers, on_started=on_started)


def encode_prepared(prep: Prepared, *, cfg: FeaturesConfig, seed: int, encoder: Encoder | None = None,
                    num_workers: int | None = None, on_started: Callable[[], None] | None = None) -> dict[str, Any]:
    """Phase 2 of a slide: encode (unless reused or skipped), write the features h5 and status JSON.

    ``encoder``: the configured one (None: :func:`get_encoder`, built only if the slide is not reused).
    ``on_started``: passed to :func:`~gliofuse.features.encode.encode_patches` (called once reading is under way).

    Returns the status record as a dict (:class:`~gliofuse.features.status.FeatureRecord`).
    """
    job, cf, record = prep.job, prep.cf, prep.record
    slide_id, coords = record.slide_id, prep.coords
    if prep.reused:
        log.info("features %s: %s exists and is complete; skipped", slide_id, job.out_path)
        record.seconds = round(time.perf_counter() - prep.t0, 3)
        return write_feature_status_(job.out_status, record) if job.out_status else record.to_dict()
    encoder = encoder if encoder is not None else get_encoder(cfg, seed=seed)
    device, precision, workers = run_settings(cfg, num_workers)
    record.num_workers = workers
    if device.type != "cuda" and cfg.precision != precision:
        log.info("features.precision=%s applies on CUDA; running %s on %s (features.cpu_bf16=%s)", cfg.precision,
                 precision, device, cfg.cpu_bf16)
    failed = np.zeros(0, bool)
    if cf.status != "ok" or len(coords) == 0:
        record.status, record.reason = "skipped", cf.reason or "no_patches: the coords file has no patches"
        feats = np.zeros((0, encoder.embed_dim), np.float32)
        coords = np.zeros((0, 2), np.int64)
    else:
        feats, failed, stats = _encode_with_fallback(prep, cfg, encoder, num_workers, on_started)
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
    _write(prep, cfg, seed=seed, encoder=encoder, feats=feats, coords=coords, failed=failed)
    ResumeFolder(job.out_path, "").clear()  # the progress folder, once the h5 is written
    record.seconds = round(time.perf_counter() - prep.t0, 3)
    log.info("features %s: %s, %d patches x %d dims (%s on %s, %s, %s reader, %d workers), %d failed reads, "
             "%.2f s", slide_id, record.status, len(feats), encoder.embed_dim, cfg.encoder, device, precision,
             record.decoder or "no", workers, record.n_failed_reads, record.seconds)
    return write_feature_status_(job.out_status, record) if job.out_status else record.to_dict()


def _write(prep: Prepared, cfg: FeaturesConfig, *, seed: int, encoder: Encoder, feats: np.ndarray,
           coords: np.ndarray, failed: np.ndarray) -> None:
    """Write the features h5 (§5) of a prepared slide atomically, with its provenance."""
    job, cf, record = prep.job, prep.cf, prep.record
    inputs: dict[str, Path | str] = {"slide": job.slide_path, "coords": job.coords_path}
    if cfg.weights:
        inputs["weights"] = cfg.weights
    prov = provenance(config=cfg.model_dump(mode="json"), inputs=inputs, extra={
        "stage": "features_extract", "seed": seed, "input_size": encoder.input_size, "mean": encoder.mean,
        "std": encoder.std, "interpolation": encoder.interpolation, "device": record.device,
        "precision": record.precision, "decoder": record.decoder, "n_patches_coords": len(cf.coords),
        "torch_version": torch.__version__})
    write_features_h5_(job.out_path, feats, coords, {
        "encoder": cfg.encoder, "embed_dim": encoder.embed_dim, "patch_size": int(cf.attrs["patch_size"]),
        "target_mpp": float(cf.attrs["target_mpp"]), "slide_id": record.slide_id, "status": record.status,
        "reason": record.reason, "input_size": encoder.input_size, "precision": record.precision,
        "n_failed_reads": record.n_failed_reads, "n_read_retries": record.n_read_retries, "extract_key": prep.key,
        "provenance": json.dumps(prov, sort_keys=True)}, read_failed=failed if len(failed) else None)


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
    job = SlideJob(Path(slide_path), Path(coords_path), Path(out_path), Path(out_status) if out_status else None)
    prep = prepare_slide(job, cfg=cfg, seed=seed)
    return encode_prepared(prep, cfg=cfg, seed=seed, num_workers=num_workers)
