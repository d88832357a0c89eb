"""Read planned batches of patches from a slide, in DataLoader workers, robust to corrupt tiles.

Each worker process opens its own OpenSlide handle (lazily, on its first batch). A failed read
(``OpenSlideError``, e.g. a corrupt JPEG tile) re-opens the slide (an OpenSlide handle is unusable
after an error) and is retried ``retries`` times; a region that still fails is re-read patch by
patch, and a patch that still fails is filled white and flagged. Workers return uint8 patches at
the read level; resizing and normalisation happen on the device (:mod:`gliofuse.features.encode`).

With ``decoder="raw"`` a worker reads each batch from the slide's raw JPEG tiles instead
(:class:`~gliofuse.wsi.raw_patches.RawPatchReader`, libjpeg-turbo on the CPU); a tile that does not
decode raises ``CorruptTileError`` (no retries: the caller reads the slide again with OpenSlide).
``decoder="corners"`` reads nothing and returns the patch corners, for decoding on the GPU.
"""

from __future__ import annotations

import ctypes
import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import openslide
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

from gliofuse.errors import SlideReadError
from gliofuse.features.plan import Batch, ReadUnit
from gliofuse.wsi.raw_patches import RawPatchReader
from gliofuse.wsi.reader import open_slide, rgba_to_rgb

log = logging.getLogger(__name__)

FILL_VALUE = 255  # unreadable patches become white (background)


class BatchReader(Dataset):
    """Map-style dataset over planned batches: item ``i`` = batch ``batches[i]``.

    ``__getitem__`` returns a dict: ``index`` (int), ``rows`` (B,) int64, ``patches`` (B, S, S, 3) uint8
    with S = ``read_size`` (px of ``read_level``) or ``resize_to``, ``failed`` (B,) bool (filled white),
    ``retries`` (int, reads repeated after an error) and ``corners`` (B, 2) int64 level-0 corners.
    ``decoder``: ``openslide``, ``raw`` (JPEG tiles) or ``corners`` (``patches`` empty, (0, 0, 0, 3)).

    ``resize_to``: resize the uint8 patches here (antialiased ``resize_mode``), i.e. in the worker —
    used when the encoder runs on the CPU, so resizing is parallel and less data crosses processes.
    """

    def __init__(self, slide_path: str | os.PathLike[str], batches: Sequence[Batch], *, read_level: int,
                 read_size: int, retries: int = 1, resize_to: int | None = None, resize_mode: str = "bilinear",
                 read_fn: Callable[[openslide.AbstractSlide, ReadUnit, int], np.ndarray] | None = None,
                 decoder: str = "openslide") -> None:
        if decoder not in ("openslide", "raw", "corners"):
            raise ValueError(f"unknown decoder {decoder!r}; expected 'openslide', 'raw' or 'corners'")
        self.path = Path(slide_path)
        self.decoder = decoder
        self._raw: RawPatchReader | None = None
        self._raw_pid = -1
        self.batches = list(batches)
        self.read_level, self.read_size, self.retries = int(read_level), int(read_size), int(retries)
        self.resize_to, self.resize_mode = resize_to, resize_mode
        self.read_fn = read_fn or read_unit
        self._slide: openslide.AbstractSlide | None = None
        self._pid = -1

    def __len__(self) -> int:
        return len(self.batches)

    def _handle(self) -> openslide.AbstractSlide:
        """This process's slide handle (opened on first use, and again after a fork or an error)."""
        if self._slide is None or self._pid != os.getpid():
            self._slide, self._pid = open_slide(self.path), os.getpid()
        return self._slide

    def _drop_handle(self) -> None:
        if self._slide is not None and self._pid == os.getpid():
            try:
                self._slide.close()
            except openslide.OpenSlideError:  # pragma: no cover - closing a broken handle
                pass
        self._slide = None

    def close(self) -> None:
        """Close this process's slide handles."""
        self._drop_handle()
        if self._raw is not None and self._raw_pid == os.getpid():
            self._raw.close()
        self._raw = None

    def _read_raw(self, corners: np.ndarray) -> torch.Tensor:
        """Patches at ``corners`` from the raw JPEG tiles → (B, S, S, 3) uint8 (S = resize_to or read_size)."""
        if self._raw is None or self._raw_pid != os.getpid():
            self._raw = RawPatchReader(self.path, level=self.read_level, read_size=self.read_size,
                                       out_size=self.resize_to, mode=self.resize_mode)
            self._raw_pid = os.getpid()
        return self._raw.read(corners).permute(0, 2, 3, 1).contiguous()

    def _read(self, unit: ReadUnit) -> tuple[np.ndarray | None, int]:
        """Read a unit with up to ``retries`` retries, each on a re-opened handle → (pixels or None, retries used)."""
        for attempt in range(self.retries + 1):
            try:
                return self.read_fn(self._handle(), unit, self.read_level), attempt
            except (openslide.OpenSlideError, SlideReadError) as exc:
                log.warning("%s: read at level-0 (%d, %d), %dx%d px of level %d failed (attempt %d of %d): %s",
                            self.path.name, unit.x0, unit.y0, unit.width, unit.height, self.read_level,
                            attempt + 1, self.retries + 1, exc)
                self._drop_handle()  # an OpenSlide handle is unusable after an error
        return None, self.retries

    def __getitem__(self, i: int) -> dict[str, Any]:
        batch = self.batches[i]
        corners = np.concatenate([u.corners for u in batch.units]).astype(np.int64)
        n = len(corners)
        item = {"index": batch.index, "rows": torch.from_numpy(batch.rows), "failed": torch.zeros(n, dtype=torch.bool),
                "retries": 0, "corners": torch.from_numpy(corners)}
        if self.decoder == "corners":
            return {**item, "patches": torch.empty((0, 0, 0, 3), dtype=torch.uint8)}
        if self.decoder == "raw":
            return {**item, "patches": self._read_raw(corners)}
        return {**item, **self._read_openslide(batch, n)}

    def _read_openslide(self, batch: Batch, n: int) -> dict[str, Any]:
        s = self.read_size
        out = np.empty((n, s, s, 3), np.uint8)
        failed = np.zeros(n, bool)
        retries = 0
        k = 0
        for unit in batch.units:
            region, r = self._read(unit)
            retries += r
            if region is not None:
                for j, (ox, oy) in enumerate(unit.offsets.tolist()):
                    out[k + j] = region[oy:oy + s, ox:ox + s, :3]
            else:  # re-read patch by patch; what still fails is filled white
                for j in range(len(unit.rows)):
                    patch, r = self._read(unit.single(j, s)) if len(unit.rows) > 1 else (None, 0)
                    retries += r
                    if patch is None:
                        out[k + j] = FILL_VALUE
                        failed[k + j] = True
                    else:
                        out[k + j] = patch[:, :, :3]
            k += len(unit.rows)
        patches = torch.from_numpy(out)
        if self.resize_to is not None and self.resize_to != s:
            patches = resize_uint8(patches, self.resize_to, self.resize_mode)
        return {"patches": patches, "failed": torch.from_numpy(failed), "retries": retries}


def resize_uint8(patches: torch.Tensor, size: int, mode: str = "bilinear") -> torch.Tensor:
    """(B, S, S, 3) uint8 → (B, size, size, 3) uint8, antialiased (torch's vectorised CPU kernel)."""
    x = F.interpolate(patches.permute(0, 3, 1, 2), size=(size, size), mode=mode, align_corners=False, antialias=True)
    return x.permute(0, 2, 3, 1).contiguous()


def read_unit(slide: openslide.AbstractSlide, unit: ReadUnit, level: int) -> np.ndarray:
    """``read_region`` of one unit → (height, width, 3) uint8 RGB, transparent pixels composited on white.

    Reads OpenSlide's premultiplied ARGB straight into a numpy buffer (no PIL image, one copy less;
    ~25 % faster for large regions) when openslide-python exposes it, else via ``read_region``.
    Opaque regions come back as a strided view of that buffer.
    """
    w, h = unit.width, unit.height
    osr = getattr(slide, "_osr", None)
    if _LOWLEVEL_READ is None or osr is None:
        return rgba_to_rgb(np.asarray(slide.read_region((unit.x0, unit.y0), level, (w, h))))
    buf = np.empty((h, w), np.uint32)
    _LOWLEVEL_READ(osr, buf.ctypes.data_as(ctypes.POINTER(ctypes.c_uint32)), unit.x0, unit.y0, level, w, h)
    bgra = buf.view(np.uint8).reshape(h, w, 4)  # little-endian ARGB words
    alpha = bgra[..., 3]
    rgb = bgra[..., 2::-1]
    if alpha.min() == 255:
        return rgb
    # premultiplied colour over white: c' + (255 - a)
    return np.minimum(rgb.astype(np.uint16) + (255 - alpha.astype(np.uint16))[..., None], 255).astype(np.uint8)


try:  # private but stable in openslide-python 1.x (pinned): the ctypes binding of openslide_read_region
    from openslide.lowlevel import _read_region as _LOWLEVEL_READ
except ImportError:  # pragma: no cover - other openslide-python versions
    _LOWLEVEL_READ = None


def auto_workers(device: torch.device) -> int:
    """Default worker count: 0 on CPU; min(16, usable cores - 1) on CUDA."""
    if device.type != "cuda":
        return 0
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - non-Linux
        cores = os.cpu_count() or 1
    return max(0, min(16, cores - 1))


def make_loader(reader: BatchReader, order: Sequence[int], *, num_workers: int, pin_memory: bool,
                prefetch_factor: int) -> DataLoader:
    """DataLoader yielding the batches ``order`` (indices into ``reader``) one at a time, read ahead by workers."""
    kwargs: dict[str, Any] = {}
    if num_workers > 0:
        kwargs.update(prefetch_factor=prefetch_factor, persistent_workers=False,
                      multiprocessing_context="fork" if "fork" in _start_methods() else None)
    return DataLoader(reader, batch_size=None, sampler=list(order), num_workers=num_workers,
                      pin_memory=pin_memory, **kwargs)


def _start_methods() -> list[str]:
    import multiprocessing

    return multiprocessing.get_all_start_methods()
