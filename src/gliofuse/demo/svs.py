"""Write Aperio-style pyramidal SVS files (tiled JPEG TIFF) that OpenSlide opens as vendor ``aperio``."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image

from gliofuse.io import atomic_path


def aperio_description(*, width: int, height: int, app_mag: float | None, mpp: float | None,
                       tile: int = 256, quality: int = 80, filename: str = "demo") -> str:
    """Aperio ``ImageDescription`` of level 0. ``app_mag``/``mpp`` None: the key is left out."""
    head = f"Aperio Image Library v12.0.15 \r\n{width}x{height} [0,0 {width}x{height}] ({tile}x{tile}) JPEG/RGB Q={quality}"
    fields = []
    if app_mag is not None:
        fields.append(f"AppMag = {app_mag:g}")
    fields += ["StripeWidth = 2040", "ScanScope ID = SS1234", f"Filename = {filename}",
               "Date = 01/01/14", "Time = 12:00:00"]
    if mpp is not None:
        fields.append(f"MPP = {mpp:.4f}")
    return "|".join([head, *fields])


def write_aperio_svs_(path: str | os.PathLike[str], rgb: np.ndarray, *, mpp: float | None,
                      app_mag: float | None, tile: int = 256, quality: int = 80,
                      min_level_px: int = 512, downsample: int = 4) -> None:
    """Write ``rgb`` (H, W, 3) uint8 as a tiled JPEG pyramidal SVS, atomically.

    Level 0 carries the Aperio ImageDescription (``AppMag``, ``MPP``); further levels are
    ``downsample``-fold reductions (Aperio uses 4) written as reduced-resolution subfiles until
    the long side drops below ``min_level_px``.
    """
    import tifffile

    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"rgb must be (H, W, 3) uint8, got {rgb.shape} {rgb.dtype}")
    h, w = rgb.shape[:2]
    desc = aperio_description(width=w, height=h, app_mag=app_mag, mpp=mpp, tile=tile, quality=quality,
                              filename=Path(path).stem)
    levels = [rgb]
    img = Image.fromarray(rgb)
    while max(levels[-1].shape[:2]) // downsample >= min_level_px:
        lh, lw = levels[-1].shape[:2]
        img = img.resize((lw // downsample, lh // downsample), Image.Resampling.BOX)
        levels.append(np.asarray(img))
    with atomic_path(path) as tmp, tifffile.TiffWriter(tmp, bigtiff=False) as tw:
        for i, lvl in enumerate(levels):
            tw.write(
                lvl, tile=(tile, tile), compression="jpeg", compressionargs={"level": quality},
                photometric="rgb", description=desc if i == 0 else None, metadata=None,
                subfiletype=0 if i == 0 else 1,
            )
