"""Write slides in formats other than Aperio SVS that OpenSlide reads: generic tiled TIFF and DICOM WSI.

Used by the demo's external site (``gliofuse.demo.site_build``) and by the slide-format tests.

* generic tiled TIFF (tifffile): a tiled JPEG pyramid with resolution tags in px/cm (OpenSlide vendor
  ``generic-tiff``, mpp from the tags);
* DICOM WSI (wsidicomizer, converted from an SVS; OpenSlide vendor ``dicom``): one folder per slide, one
  ``.dcm`` file per pyramid level. UIDs (and so file names) are derived from a caller-given key, so the same
  slide converts to the same file names.
"""

from __future__ import annotations

import itertools
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

from gliofuse.io import atomic_path


def write_generic_tiff_(path: str | os.PathLike[str], rgb: np.ndarray, *, mpp: float | None,
                        downsamples: tuple[int, ...] = (1, 3), tile: int = 256, quality: int = 95) -> Path:
    """Write ``rgb`` (H, W, 3) uint8 as a tiled JPEG pyramid TIFF, atomically; returns ``path``.

    Levels are area-reduced by ``downsamples`` (relative to level 0; need not be powers of 2).
    ``mpp`` (µm/px of level 0) is stored as resolution tags in px/cm; None: no resolution tags (OpenSlide
    then reports no mpp).
    """
    import tifffile

    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"rgb must be (H, W, 3) uint8, got {rgb.shape} {rgb.dtype}")
    h, w = rgb.shape[:2]
    with atomic_path(path) as tmp, tifffile.TiffWriter(tmp, bigtiff=False) as tw:
        for i, ds in enumerate(downsamples):
            level = rgb if ds == 1 else np.asarray(
                Image.fromarray(rgb).resize((w // ds, h // ds), Image.Resampling.BOX))
            res = {} if mpp is None else {"resolution": (1e4 / mpp / ds, 1e4 / mpp / ds),
                                          "resolutionunit": "CENTIMETER"}
            tw.write(level, tile=(tile, tile), compression="jpeg", compressionargs={"level": quality},
                     photometric="rgb", metadata=None, subfiletype=0 if i == 0 else 1, **res)
    return Path(path)


def _uid_generator(key: str) -> Callable[[], str]:
    """UIDs ``2.25.<hash of key and a counter>``: the same key gives the same sequence of UIDs."""
    from pydicom.uid import generate_uid

    counter = itertools.count()
    return lambda: generate_uid(prefix=None, entropy_srcs=[key, str(next(counter))])


def write_dicom_wsi_(src: str | os.PathLike[str], out_dir: str | os.PathLike[str], *,
                     uid_key: str | None = None) -> Path:
    """Convert the slide ``src`` (e.g. an Aperio SVS) to DICOM WSI in ``out_dir`` (replaced if it exists).

    Files are named ``level_<k>.dcm`` (k = 0 for the largest level). ``uid_key``: derive the DICOM UIDs from
    it (deterministic); None: random UIDs. Returns the level-0 file; OpenSlide opens the whole series (every
    level) from any file of the folder.

    Raises ``RuntimeError`` naming the fix when libturbojpeg (needed by wsidicomizer's reader) is missing, and
    when OpenSlide does not recognise the written level-0 file.
    """
    import openslide
    import pydicom
    from wsidicomizer import WsiDicomizer

    out = Path(out_dir)
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    uids = _uid_generator(uid_key) if uid_key is not None else None
    try:
        files = [Path(f) for f in WsiDicomizer.convert(src, tmp, workers=1, uid_generator=uids,
                                                      include_label=False, include_overview=False,
                                                      include_thumbnail=False)]
    except RuntimeError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if "turbojpeg" in str(exc).lower():
            raise RuntimeError(f"converting {src} to DICOM WSI needs the system library libturbojpeg "
                               "(Debian/Ubuntu: apt-get install libturbojpeg0; conda: libjpeg-turbo)") from exc
        raise
    sizes = {f: int(pydicom.dcmread(f, stop_before_pixels=True).TotalPixelMatrixColumns) for f in files}
    for k, f in enumerate(sorted(files, key=lambda f: (-sizes[f], f.name))):
        f.rename(tmp / f"level_{k}.dcm")
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    first = out / "level_0.dcm"
    if openslide.OpenSlide.detect_format(str(first)) != "dicom":
        raise RuntimeError(f"OpenSlide does not recognise {first} (converted from {src}) as DICOM WSI")
    return first
