"""Open whole-slide images with OpenSlide, resolve their physical scale and read them downsampled.

Units: "level-0 px" are pixels of the full-resolution pyramid level; mpp is micrometres per pixel.
Magnification follows the TRIDENT/CLAM convention ``magnification = 10 / mpp`` (20x = 0.5 µm/px).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import openslide
from PIL import Image

from gliofuse.errors import SlideReadError

#: mpp values outside this range are treated as bogus metadata (e.g. a 72-dpi TIFF default).
PLAUSIBLE_MPP = (0.01, 100.0)
#: relative tolerance when comparing a pyramid level's downsample with the one needed
LEVEL_TOLERANCE = 0.01
_UM_PER_UNIT = {"centimeter": 1e4, "inch": 25400.0, "millimeter": 1e3, "micrometer": 1.0}


def open_slide(path: str | os.PathLike[str]) -> openslide.OpenSlide:
    """Open a slide with OpenSlide; any failure raises ``SlideReadError`` naming the file."""
    p = Path(path)
    if not p.is_file():
        raise SlideReadError(f"slide file not found: {p}. Check data_root/slides/ (docs/data-contracts.md §1).")
    try:
        return openslide.OpenSlide(str(p))
    except (openslide.OpenSlideError, OSError) as exc:
        raise SlideReadError(
            f"cannot open slide {p} with OpenSlide ({type(exc).__name__}: {exc}). "
            "The file may be truncated (re-download it) or not in a format or compression OpenSlide reads "
            "(convert it to a tiled JPEG pyramid, e.g. `vips tiffsave in out.tif --tile --pyramid --compression jpeg`)."
        ) from None


def magnification(mpp: float) -> float:
    """Objective power for an mpp (``10 / mpp``)."""
    return 10.0 / mpp


def _positive_float(value: object) -> float | None:
    try:
        v = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    if not math.isfinite(v) or not (PLAUSIBLE_MPP[0] <= v <= PLAUSIBLE_MPP[1]):
        return None
    return v


def mpp_from_properties(props: Mapping[str, str]) -> tuple[float | None, str]:
    """mpp (µm/px) from OpenSlide properties alone; ``(None, "missing")`` if none is usable.

    Order: ``openslide.mpp-x``, ``aperio.MPP``, ``tiff.XResolution`` with ``tiff.ResolutionUnit``
    (centimeter/inch), ``openslide.objective-power`` (mpp = 10 / power).
    """
    for key in ("openslide.mpp-x", "aperio.MPP"):
        v = _positive_float(props.get(key))
        if v is not None:
            return v, key
    xres = props.get("tiff.XResolution")
    unit = str(props.get("tiff.ResolutionUnit", "")).strip().lower()
    if xres is not None and unit in _UM_PER_UNIT:
        try:
            px_per_unit = float(xres)
        except ValueError:
            px_per_unit = 0.0
        if px_per_unit > 0:
            v = _positive_float(_UM_PER_UNIT[unit] / px_per_unit)
            if v is not None:
                return v, "tiff.XResolution"
    power = _positive_float(props.get(openslide.PROPERTY_NAME_OBJECTIVE_POWER))
    if power is not None:
        return 10.0 / power, "objective-power"
    return None, "missing"


def slide_mpp(slide: openslide.AbstractSlide | Mapping[str, str], *, override: float | None = None,
              default_mpp: float | None = None) -> tuple[float | None, str]:
    """Resolve the level-0 mpp (µm per level-0 px) of a slide and say where it came from.

    Order: ``override``, slide metadata (see :func:`mpp_from_properties`), ``default_mpp``.

    Returns
    -------
    (mpp, source) : mpp is None with source ``"missing"`` when nothing is usable. Sources:
        ``override``, ``openslide.mpp-x``, ``aperio.MPP``, ``tiff.XResolution``, ``objective-power``,
        ``default_mpp``, ``missing``.
    """
    if override is not None:
        if not (math.isfinite(override) and override > 0):
            raise ValueError(f"mpp override must be a positive number, got {override!r}")
        return float(override), "override"
    props = slide if isinstance(slide, Mapping) else slide.properties
    mpp, source = mpp_from_properties(props)
    if mpp is not None:
        return mpp, source
    if default_mpp is not None:
        return float(default_mpp), "default_mpp"
    return None, "missing"


def best_level(slide: openslide.AbstractSlide, downsample: float) -> int:
    """Index of the pyramid level with the largest downsample ≤ ``downsample`` (1 % tolerance)."""
    best = 0
    for i, ds in enumerate(slide.level_downsamples):
        if ds <= downsample * (1 + LEVEL_TOLERANCE) and ds >= slide.level_downsamples[best]:
            best = i
    return best


def rgba_to_rgb(rgba: np.ndarray) -> np.ndarray:
    """Composite (H, W, 4) uint8 RGBA onto white → (H, W, 3) uint8 RGB (transparent → white)."""
    if rgba.shape[-1] == 3:
        return rgba
    alpha = rgba[..., 3]
    rgb = np.ascontiguousarray(rgba[..., :3])
    if alpha.min() == 255:
        return rgb
    part = alpha < 255
    a = alpha[part].astype(np.uint32)[:, None]
    rgb[part] = ((rgb[part].astype(np.uint32) * a + 255 * (255 - a) + 127) // 255).astype(np.uint8)
    return rgb


def _to_rgb(region: Image.Image) -> Image.Image:
    if region.mode != "RGBA":
        return region.convert("RGB")
    if region.getextrema()[3][0] == 255:  # fully opaque: drop alpha
        return region.convert("RGB")
    white = Image.new("RGBA", region.size, (255, 255, 255, 255))
    return Image.alpha_composite(white, region).convert("RGB")


def read_region_rgb(slide: openslide.AbstractSlide, location: tuple[int, int], level: int,
                    size: tuple[int, int], *, path: str | os.PathLike[str] = "") -> Image.Image:
    """``read_region`` returning an RGB image (transparent → white); errors → ``SlideReadError``.

    ``location`` is level-0 px (x, y); ``size`` is (width, height) in px of ``level``.
    """
    try:
        region = slide.read_region((int(location[0]), int(location[1])), int(level), (int(size[0]), int(size[1])))
    except openslide.OpenSlideError as exc:
        raise SlideReadError(
            f"cannot read region {location} level {level} size {size} of slide {path or '?'} ({exc}). "
            "The file may be corrupt (re-download it) or stored in a compression OpenSlide cannot decode "
            "(convert it to a tiled JPEG pyramid, e.g. `vips tiffsave in out.tif --tile --pyramid --compression jpeg`)."
        ) from None
    return _to_rgb(region)


def read_downsampled(slide: openslide.AbstractSlide, downsample: float, *, max_chunk_px: int = 4096,
                     path: str | os.PathLike[str] = "") -> tuple[np.ndarray, tuple[float, float]]:
    """Read the whole slide at ≈ ``downsample`` × level 0 (best pyramid level + area resize, in chunks).

    Memory stays bounded for any slide size: the chosen level is read in chunks of at most
    ``max_chunk_px`` level px per side.

    Returns
    -------
    image : (H_t, W_t, 3) uint8, with ``W_t = max(1, round(W0 / downsample))`` (same for H).
    (dx, dy) : level-0 px per output pixel along x and y (≈ ``downsample``).
    """
    w0, h0 = slide.dimensions
    ow, oh = max(1, round(w0 / downsample)), max(1, round(h0 / downsample))
    level = best_level(slide, downsample)
    lw, lh = slide.level_dimensions[level]
    lds = slide.level_downsamples[level]
    sx, sy = lw / ow, lh / oh  # level px per output px
    step_x = max(1, int(max_chunk_px / sx))
    step_y = max(1, int(max_chunk_px / sy))
    out = np.empty((oh, ow, 3), dtype=np.uint8)
    for oy0 in range(0, oh, step_y):
        oy1 = min(oh, oy0 + step_y)
        fy0, fy1 = oy0 * sy, oy1 * sy
        ly0, ly1 = math.floor(fy0), min(lh, math.ceil(fy1))
        for ox0 in range(0, ow, step_x):
            ox1 = min(ow, ox0 + step_x)
            fx0, fx1 = ox0 * sx, ox1 * sx
            lx0, lx1 = math.floor(fx0), min(lw, math.ceil(fx1))
            img = read_region_rgb(slide, (round(lx0 * lds), round(ly0 * lds)), level,
                                  (max(1, lx1 - lx0), max(1, ly1 - ly0)), path=path)
            box = (fx0 - lx0, fy0 - ly0, min(fx1, lx1) - lx0, min(fy1, ly1) - ly0)
            resample = Image.Resampling.BOX if sx >= 1 else Image.Resampling.BILINEAR
            img = img.resize((ox1 - ox0, oy1 - oy0), resample=resample, box=box)
            out[oy0:oy1, ox0:ox1] = np.asarray(img)
    return out, (w0 / ow, h0 / oh)
