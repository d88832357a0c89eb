"""``extract_slide_``: encode every patch of one slide into a features h5 (docs/data-contracts.md §5).

Read path (swappable): :class:`PatchReader` reads one patch at ``read_level``/``read_size`` with
OpenSlide and resizes it to ``patch_size``; :func:`iter_patch_batches` groups patches into uint8
batches; :func:`encode_batches` resizes to the encoder input, normalises and runs the model.
"""

from __future__ import annotations

import contextlib
import json
import logging
import sys
import time
import zlib
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path
from typing import Any, Self

import h5py
import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from tqdm import tqdm

from gliofuse.config import FeaturesConfig
from gliofuse.errors import ConfigError, InputDataError
from gliofuse.features.encoders import Encoder, create_encoder
from gliofuse.features.store import features_complete, write_features_h5_
from gliofuse.io import file_hash, provenance
from gliofuse.wsi.coords import CoordsFile, read_coords_h5
from gliofuse.wsi.reader import open_slide, read_region_rgb

log = logging.getLogger(__name__)


class PatchReader:
    """Read patches of one slide: level-0 (x, y) → (patch_size, patch_size, 3) uint8 RGB.

    Each patch is read at ``read_level`` with side ``read_size`` (px of that level), transparent
    pixels become white, and it is resized (bilinear, antialiased) to ``patch_size``.
    """

    def __init__(self, slide_path: str | Path, *, read_level: int, read_size: int, patch_size: int) -> None:
        self.path = Path(slide_path)
        self.read_level, self.read_size, self.patch_size = int(read_level), int(read_size), int(patch_size)
        self._slide = open_slide(self.path)

    def read(self, x: int, y: int) -> np.ndarray:
        img = read_region_rgb(self._slide, (x, y), self.read_level, (self.read_size, self.read_size), path=self.path)
        if self.read_size != self.patch_size:
            img = img.resize((self.patch_size, self.patch_size), Image.Resampling.BILINEAR)
        return np.asarray(img)

    def close(self) -> None:
        self._slide.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def iter_patch_batches(reader: PatchReader, coords: np.ndarray, batch_size: int) -> Iterator[np.ndarray]:
    """Yield (B, patch_size, patch_size, 3) uint8 batches of the patches at ``coords`` (N, 2), in order."""
    for start in range(0, len(coords), batch_size):
        yield np.stack([reader.read(int(x), int(y)) for x, y in coords[start:start + batch_size]])


def resolve_device(spec: str) -> torch.device:
    """``auto`` → ``cuda`` if available else ``cpu``; an unavailable CUDA device raises ``ConfigError``."""
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if spec.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"features.device = {spec!r} but CUDA is not available; use 'auto' or 'cpu'.")
    return torch.device(spec)


def _autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager[Any]:
    if device.type != "cuda" or precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast("cuda", dtype=torch.bfloat16 if precision == "bf16" else torch.float16)


def preprocess(batch: np.ndarray, encoder: Encoder, device: torch.device) -> torch.Tensor:
    """(B, P, P, 3) uint8 → (B, 3, S, S) float normalised encoder input (S = ``encoder.input_size``), channels_last."""
    x = torch.from_numpy(batch).to(device, non_blocking=True).permute(0, 3, 1, 2).float().div_(255.0)
    if x.shape[-1] != encoder.input_size or x.shape[-2] != encoder.input_size:
        x = F.interpolate(x, size=(encoder.input_size, encoder.input_size), mode="bilinear",
                          align_corners=False, antialias=True)
    mean = torch.tensor(encoder.mean, device=device).view(1, 3, 1, 1)
    std = torch.tensor(encoder.std, device=device).view(1, 3, 1, 1)
    return ((x - mean) / std).contiguous(memory_format=torch.channels_last)


def encode_batches(batches: Iterator[np.ndarray], encoder: Encoder, *, device: torch.device, precision: str,
                   progress: tqdm | None = None) -> np.ndarray:
    """Run the encoder over uint8 batches → (N, D) float32 features."""
    model = encoder.model.to(device=device, memory_format=torch.channels_last).eval()
    out: list[np.ndarray] = []
    with torch.inference_mode(), _autocast(device, precision):
        for batch in batches:
            y = model(preprocess(batch, encoder, device))
            if y.ndim != 2 or y.shape != (len(batch), encoder.embed_dim):
                raise RuntimeError(f"encoder {encoder.name!r} returned shape {tuple(y.shape)}, expected "
                                   f"({len(batch)}, {encoder.embed_dim})")
            out.append(y.float().cpu().numpy())
            if progress is not None:
                progress.update(len(batch))
    if not out:
        return np.zeros((0, encoder.embed_dim), np.float32)
    return np.concatenate(out).astype(np.float32, copy=False)


@lru_cache(maxsize=1)
def _cached_encoder(name: str, weights: str | None, weights_mtime: float, seed: int) -> Encoder:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)  # random-init encoders get the same weights for every slide
        return create_encoder(name, weights=weights)


def get_encoder(cfg: FeaturesConfig, *, seed: int) -> Encoder:
    """The configured encoder (cached per process; random init is seeded by ``seed``)."""
    mtime = Path(cfg.weights).stat().st_mtime if cfg.weights and Path(cfg.weights).is_file() else 0.0
    if cfg.weights is None:
        log.warning("features.weights is null: encoder %r has random weights (tests/demo only)", cfg.encoder)
    return _cached_encoder(cfg.encoder, cfg.weights, mtime, seed)


def subsample(coords: np.ndarray, max_patches: int | None, *, seed: int, slide_id: str) -> np.ndarray:
    """Row indices of a seeded random subset of ≤ ``max_patches`` rows, kept in their original order."""
    n = len(coords)
    if max_patches is None or n <= max_patches:
        return np.arange(n)
    rng = np.random.default_rng([seed, zlib.crc32(slide_id.encode())])
    return np.sort(rng.choice(n, size=max_patches, replace=False))


def _check_coords(cf: CoordsFile, slide_path: Path, coords_path: Path) -> None:
    if cf.status == "ok" and len(cf.coords):
        for name in ("read_level", "read_size", "patch_size"):
            if int(cf.attrs[name]) < 0 or (name != "read_level" and int(cf.attrs[name]) < 1):
                raise InputDataError(f"coords file {coords_path}: attribute {name} = {cf.attrs[name]} is invalid "
                                     "for an 'ok' slide. Rerun wsi_patch.")
        if str(cf.attrs["slide_hash"]) != file_hash(slide_path):
            raise InputDataError(f"coords file {coords_path} was computed from a different file than {slide_path} "
                                 "(slide_hash differs). Rerun wsi_patch for this slide.")


def extract_slide_(*, slide_path: Path, coords_path: Path, cfg: FeaturesConfig, out_path: Path,
                   seed: int) -> dict[str, Any]:
    """Encode the patches of one slide and write ``features`` (N, D) float32 + ``coords`` (N, 2) to ``out_path``.

    Parameters
    ----------
    slide_path : the slide the coords were computed from.
    coords_path : coords h5 from ``patch_slide_`` (docs/data-contracts.md §4).
    cfg : the ``features`` config section.
    out_path : features h5 (§5), written atomically.
    seed : seeds the patch subsample (``cfg.max_patches_per_slide``) and random-init encoders.

    Returns
    -------
    ``{slide_id, encoder, status, reason, n_patches, embed_dim, reused, seconds}``. An existing
    complete ``out_path`` is reused (``reused`` True). A skipped or empty coords file gives a
    (0, D) features file with status ``skipped``.
    """
    t0 = time.perf_counter()
    slide_path, coords_path, out_path = Path(slide_path), Path(coords_path), Path(out_path)
    cf = read_coords_h5(coords_path)
    slide_id = str(cf.attrs["slide_id"])
    result: dict[str, Any] = {"slide_id": slide_id, "encoder": cfg.encoder, "reused": False}
    rows = subsample(cf.coords, cfg.max_patches_per_slide, seed=seed, slide_id=slide_id)
    coords = cf.coords[rows] if cf.status == "ok" else np.zeros((0, 2), np.int64)
    if features_complete(out_path, encoder=cfg.encoder):
        with h5py.File(out_path, "r") as f:
            same = np.array_equal(f["coords"][()], coords)
            if same:
                result.update(status=str(f.attrs["status"]), reason=str(f.attrs.get("reason", "")),
                              n_patches=int(f["features"].shape[0]), embed_dim=int(f["features"].shape[1]),
                              reused=True, seconds=round(time.perf_counter() - t0, 3))
        if same:
            log.info("features %s: %s exists and is complete; skipped", slide_id, out_path)
            return result
        log.info("features %s: %s exists but its coords differ from %s; recomputing", slide_id, out_path, coords_path)
    _check_coords(cf, slide_path, coords_path)
    encoder = get_encoder(cfg, seed=seed)
    device = resolve_device(cfg.device)
    if device.type != "cuda" and cfg.precision != "fp32":
        log.info("features.precision=%s applies on CUDA only; running fp32 on %s", cfg.precision, device)

    if cf.status != "ok" or len(coords) == 0:
        status, reason = "skipped", cf.reason or "no_patches: the coords file has no patches"
        feats = np.zeros((0, encoder.embed_dim), np.float32)
        coords = np.zeros((0, 2), np.int64)
    else:
        status, reason = "ok", ""
        with PatchReader(slide_path, read_level=int(cf.attrs["read_level"]), read_size=int(cf.attrs["read_size"]),
                         patch_size=int(cf.attrs["patch_size"])) as reader, \
                tqdm(total=len(coords), desc=f"features {slide_id}", unit="patch", file=sys.stderr,
                     mininterval=1.0 if sys.stderr.isatty() else 15.0) as bar:
            feats = encode_batches(iter_patch_batches(reader, coords, cfg.batch_size), encoder, device=device,
                                   precision=cfg.precision, progress=bar)
        if not np.isfinite(feats).all():
            raise RuntimeError(f"features of slide {slide_id} contain NaN/inf (encoder {cfg.encoder}, precision "
                               f"{cfg.precision}); try features.precision: fp32 or bf16.")
    inputs: dict[str, Path | str] = {"slide": slide_path, "coords": coords_path}
    if cfg.weights:
        inputs["weights"] = cfg.weights
    prov = provenance(config=cfg.model_dump(mode="json"), inputs=inputs, extra={
        "stage": "features_extract", "seed": seed, "input_size": encoder.input_size, "mean": encoder.mean,
        "std": encoder.std, "device": str(device), "n_patches_coords": len(cf.coords),
        "torch_version": torch.__version__})
    write_features_h5_(out_path, feats, coords, {
        "encoder": cfg.encoder, "embed_dim": encoder.embed_dim, "patch_size": int(cf.attrs["patch_size"]),
        "target_mpp": float(cf.attrs["target_mpp"]), "slide_id": slide_id, "status": status, "reason": reason,
        "provenance": json.dumps(prov, sort_keys=True)})
    seconds = time.perf_counter() - t0
    result.update(status=status, reason=reason, n_patches=len(feats), embed_dim=encoder.embed_dim,
                  seconds=round(seconds, 3))
    log.info("features %s: %s, %d patches x %d dims (%s on %s), %.2f s", slide_id, status, len(feats),
             encoder.embed_dim, cfg.encoder, device, seconds)
    return result
