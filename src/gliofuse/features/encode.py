"""``encode_patches``: read the planned batches of one slide and run the encoder on them.

Data path, built for throughput:

1. :func:`~gliofuse.features.plan.plan_batches` groups patches into batches and each batch into
   region reads (one ``read_region`` per block of contiguous patches, split in memory);
2. :class:`~gliofuse.features.loader.BatchReader` reads them in DataLoader workers (one slide handle
   each, read-ahead ``prefetch_factor``, pinned memory on CUDA), as uint8 — with OpenSlide, or
   (``decoder="raw"``) from the raw JPEG tiles (:mod:`gliofuse.wsi.raw_patches`; on CUDA the tiles
   are decoded in this process with nvJPEG);
3. :class:`DevicePreprocess` resizes to the encoder input (antialiased) and normalises on the device;
4. the encoder runs under ``inference_mode``, channels_last, bf16/fp16 autocast on CUDA and, optionally,
   ``torch.compile`` (compiled once per process). Finished batches are saved every ``checkpoint_s``
   so a killed job resumes.

Features do not depend on the read strategy or the worker count (up to float rounding).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from gliofuse.features.encoders import Encoder
from gliofuse.features.loader import BatchReader, make_loader, resize_uint8
from gliofuse.features.plan import Batch
from gliofuse.features.resume import Finished, ResumeFolder
from gliofuse.wsi.raw_patches import RawPatchReader

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


_DEVICE_MODELS: dict[tuple[int, str, bool], nn.Module] = {}


def device_model(encoder: Encoder, device: torch.device, compile_model: bool) -> nn.Module:
    """The encoder on ``device`` (channels_last, eval), ``torch.compile``-d if asked — once per process, so a
    shard of slides compiles once."""
    key = (id(encoder.model), str(device), bool(compile_model))
    if key not in _DEVICE_MODELS:
        model = encoder.model.to(device=device, memory_format=torch.channels_last).eval()
        _DEVICE_MODELS.clear()  # one encoder per process: drop models of an earlier configuration
        _DEVICE_MODELS[key] = torch.compile(model, dynamic=False) if compile_model else model
    return _DEVICE_MODELS[key]


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


def _batches_in(loader: Any, todo: list[int], prefetched: dict[int, dict[str, Any]]) -> Any:
    """Items of batches ``todo``: those read ahead (``prefetched``) first, then the loader's."""
    for i in todo:
        if i in prefetched:
            yield prefetched[i]
    yield from loader


def _load_resume(resume: ResumeFolder, feats: np.ndarray, failed: np.ndarray) -> set[int]:
    """Fill ``feats``/``failed`` rows from the saved batches of a killed run; start the folder; → their indices."""
    done: set[int] = set()
    for part in resume.load():
        feats[part.rows] = part.features
        failed[part.rows] = part.failed
        done.update(int(b) for b in part.batches)
    resume.start()
    return done


def encode_patches(slide_path: str | Path, coords: np.ndarray, *, read_level: int, read_size: int,
                   encoder: Encoder, device: torch.device, batches: list[Batch], precision: str = "fp32",
                   batch_size: int = 32, num_workers: int = 0, prefetch_factor: int = 4, retries: int = 1,
                   compile_model: bool = False, decoder: str = "openslide", resume: ResumeFolder | None = None,
                   checkpoint_s: float | None = None, prefetched: dict[int, dict[str, Any]] | None = None,
                   progress: tqdm | None = None,
                   on_started: Callable[[], None] | None = None) -> tuple[np.ndarray, np.ndarray, EncodeStats]:
    """Read and encode the patches at ``coords``.

    Parameters
    ----------
    coords : (N, 2) int64 level-0 (x, y) patch corners.
    read_level, read_size : pyramid level and patch side in px of that level (coords h5 attributes).
    batches : the plan (:func:`~gliofuse.features.plan.plan_batches` of ``coords``).
    decoder : ``openslide`` or ``raw`` (JPEG tiles; raises ``SlideReadError`` if they cannot be read).
    resume : progress folder; batches saved there are not recomputed, new ones are saved every
        ``checkpoint_s`` seconds (None: never).
    prefetched : items of :class:`BatchReader` already read (by batch index), e.g. while the previous
        slide was encoding.
    on_started : called once the first batch is in (DataLoader workers are forked by then, so a thread
        started from it cannot hold a lock across a fork).

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
    stats = EncodeStats(n_patches=n, num_workers=num_workers, n_batches=len(batches))
    if n == 0:
        return feats, failed, stats
    done = _load_resume(resume, feats, failed) if resume is not None else set()
    stats.resumed_batches = len(done)
    if done:
        log.info("resuming %s: %d of %d batches done by an earlier run", Path(slide_path).name, len(done), len(batches))
    todo = [b.index for b in batches if b.index not in done]
    prefetched = {i: item for i, item in (prefetched or {}).items() if i in todo}
    if progress is not None:
        progress.update(sum(len(batches[i].rows) for i in done))
    on_cpu = device.type == "cpu"  # CPU: resize in the reader (parallel across workers, 5x less data to pass)
    device_raw = RawPatchReader(slide_path, level=read_level, read_size=read_size, device=device) \
        if decoder == "raw" and not on_cpu else None  # CUDA: decode the tiles here, on the GPU
    reader = BatchReader(slide_path, batches, read_level=read_level, read_size=read_size, retries=retries,
                         resize_to=encoder.input_size if on_cpu else None, resize_mode=encoder.interpolation,
                         decoder="corners" if device_raw is not None else decoder)
    loader = make_loader(reader, [i for i in todo if i not in prefetched],
                         num_workers=0 if device_raw is not None else num_workers,
                         pin_memory=device.type == "cuda", prefetch_factor=prefetch_factor)
    model = device_model(encoder, device, compile_model)
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
            for item in _batches_in(loader, todo, prefetched):
                if device_raw is not None:
                    x = device_raw.read(item["corners"].numpy()).permute(0, 2, 3, 1)
                else:
                    x = item["patches"].to(device, non_blocking=True)
                b = x.shape[0]
                if compile_model and b < batch_size:  # fixed shapes: no recompilation for the last batch
                    x = torch.cat([x, x.new_zeros((batch_size - b, *x.shape[1:]))])
                y = model(pre(x))[:b]
                if y.shape != (b, d):
                    raise RuntimeError(f"encoder {encoder.name!r} returned shape {tuple(y.shape)}, expected ({b}, {d})")
                pending.append((int(item["index"]), item["rows"], y.detach(), item["failed"]))
                if on_started is not None:
                    on_started()
                    on_started = None
                stats.n_read_retries += int(item["retries"])
                if progress is not None:
                    progress.update(b)
                if checkpoint_s is not None and time.perf_counter() - last_flush >= checkpoint_s:
                    flush()
            flush()
    finally:
        reader.close()
        if device_raw is not None:
            device_raw.close()
    stats.n_failed_reads = int(failed.sum())
    stats.seconds = time.perf_counter() - t0
    return feats, failed, stats
