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
                      min_level_px: int = 512, downsample: int = 4, thumbnail_px: int | None = None) -> None:
    """Write ``rgb`` (H, W, 3) uint8 as a tiled JPEG pyramidal SVS, atomically.

    Level 0 carries the Aperio ImageDescription (``AppMag``, ``MPP``); further levels are
    ``downsample``-fold reductions (Aperio uses 4) written as reduced-resolution subfiles until
    the long side drops below ``min_level_px``. ``thumbnail_px``: Aperio scanner layout, as
    opentile/wsidicomizer (tifffile) expect: a stripped thumbnail (long side ``thumbnail_px``) as the second
    page and the reductions with NewSubfileType 0; None: no thumbnail, reductions marked reduced-resolution.
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

    def level_desc(a: np.ndarray) -> str | None:  # Aperio layout: every page names its size
        if thumbnail_px is None:
            return None
        return f"Aperio Image Library v12.0.15 \r\n{w}x{h} -> {a.shape[1]}x{a.shape[0]} JPEG/RGB Q={quality}"

    with atomic_path(path) as tmp, tifffile.TiffWriter(tmp, bigtiff=False) as tw:
        for i, lvl in enumerate(levels):
            tw.write(
                lvl, tile=(tile, tile), compression="jpeg", compressionargs={"level": quality},
                photometric="rgb", description=desc if i == 0 else level_desc(lvl), metadata=None,
                subfiletype=0 if i == 0 or thumbnail_px is not None else 1,
            )
            if i == 0 and thumbnail_px is not None:
                scale = thumbnail_px / max(h, w)
                thumb = Image.fromarray(levels[-1]).resize((max(1, round(w * scale)), max(1, round(h * scale))),
                                                           Image.Resampling.BOX)
                tw.write(np.asarray(thumb), compression="jpeg", compressionargs={"level": quality},
                         photometric="rgb", description=level_desc(np.asarray(thumb)), metadata=None,
                         subfiletype=0)
