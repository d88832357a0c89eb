"""Re-encode a real slide in other formats OpenSlide reads: generic tiled TIFF (tifffile) and DICOM WSI (wsidicomizer)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import openslide
from PIL import Image


def slide_pixels(path: Path) -> tuple[np.ndarray, float]:
    """Level 0 of a slide as (H, W, 3) uint8 RGB and its mpp (µm/px, from ``openslide.mpp-x``)."""
    with openslide.OpenSlide(str(path)) as s:
        rgb = np.asarray(s.read_region((0, 0), 0, s.dimensions).convert("RGB"))
        return rgb, float(s.properties[openslide.PROPERTY_NAME_MPP_X])


def write_generic_tiff_(path: Path, rgb: np.ndarray, *, mpp: float | None, downsamples: tuple[int, ...] = (1, 3),
                        tile: int = 256, quality: int = 95) -> Path:
    """Tiled JPEG pyramid with resolution tags in px/cm (OpenSlide vendor ``generic-tiff``).

    Levels are area-reduced by ``downsamples`` (relative to level 0; need not be powers of 2).
    ``mpp`` None: no resolution tags (OpenSlide then reports no mpp).
    """
    import tifffile

    h, w = rgb.shape[:2]
    with tifffile.TiffWriter(path, bigtiff=False) as tw:
        for i, ds in enumerate(downsamples):
            level = rgb if ds == 1 else np.asarray(
                Image.fromarray(rgb).resize((w // ds, h // ds), Image.Resampling.BOX))
            res = {} if mpp is None else {"resolution": (1e4 / mpp / ds, 1e4 / mpp / ds),
                                          "resolutionunit": "CENTIMETER"}
            tw.write(level, tile=(tile, tile), compression="jpeg", compressionargs={"level": quality},
                     photometric="rgb", metadata=None, subfiletype=0 if i == 0 else 1, **res)
    return path


def write_dicom_wsi_(src: Path, out_dir: Path) -> Path:
    """Convert ``src`` to DICOM WSI with wsidicomizer into ``out_dir``; returns one file of the series."""
    from wsidicomizer import WsiDicomizer

    out_dir.mkdir(parents=True, exist_ok=True)
    files = [Path(f) for f in WsiDicomizer.convert(src, out_dir, workers=1)]
    for f in sorted(files):  # OpenSlide opens the whole series (every level) from any of its files
        if openslide.OpenSlide.detect_format(str(f)) == "dicom":
            return f
    raise RuntimeError(f"OpenSlide recognises none of the DICOM files {files}")
