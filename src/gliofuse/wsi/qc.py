"""QC images of the patching stage (level-0 coordinates scaled onto a thumbnail).

* grid overlay (``render_qc``): tissue mask outline (green) and the kept patch grid (blue), with a caption;
* contour overlay (``render_contours``): the GeoJSON polygons, exteriors green and holes blue.
"""

from __future__ import annotations

import os

import numpy as np
from PIL import Image, ImageDraw
from scipy import ndimage

from gliofuse.io import atomic_path
from gliofuse.wsi.contours import TissuePolygon

CONTOUR_RGB = (0, 200, 0)
GRID_RGB = (30, 60, 230)
HOLE_RGB = (0, 90, 255)


def contour(mask: np.ndarray, width: int = 2) -> np.ndarray:
    """Boundary pixels of a (H, W) bool mask, ``width`` px thick (inside the mask)."""
    if not mask.any():
        return np.zeros_like(mask)
    inner = ndimage.binary_erosion(mask, iterations=width, border_value=0)
    return mask & ~inner


def render_qc(thumb: np.ndarray, *, thumb_downsample: tuple[float, float], mask: np.ndarray | None = None,
              coords: np.ndarray | None = None, patch_size_level0: int = 0, text: str = "") -> Image.Image:
    """Draw the QC overlay.

    Parameters
    ----------
    thumb : (H_t, W_t, 3) uint8 thumbnail.
    thumb_downsample : (dx, dy) level-0 px per thumbnail px.
    mask : tissue mask (any size; resized to the thumbnail) or None.
    coords : (N, 2) level-0 (x, y) patch corners, drawn as squares of ``patch_size_level0`` level-0 px.
    text : caption written in the top-left corner.
    """
    img = Image.fromarray(thumb).convert("RGB")
    if mask is not None and mask.size:
        m = np.asarray(Image.fromarray(mask.astype(np.uint8) * 255).resize(img.size, Image.Resampling.NEAREST)) > 0
        arr = np.asarray(img).copy()
        arr[contour(m)] = CONTOUR_RGB
        img = Image.fromarray(arr)
    draw = ImageDraw.Draw(img)
    dx, dy = thumb_downsample
    if coords is not None and len(coords):
        for x, y in np.asarray(coords):
            draw.rectangle([x / dx, y / dy, (x + patch_size_level0) / dx - 1, (y + patch_size_level0) / dy - 1],
                           outline=GRID_RGB, width=1)
    if text:
        _caption(img, text)
    return img


def _caption(img: Image.Image, text: str) -> None:
    draw = ImageDraw.Draw(img)
    bbox = draw.multiline_textbbox((4, 4), text)
    draw.rectangle([bbox[0] - 3, bbox[1] - 3, bbox[2] + 3, bbox[3] + 3], fill=(255, 255, 255))
    draw.multiline_text((4, 4), text, fill=(0, 0, 0))


def render_contours(thumb: np.ndarray, *, thumb_downsample: tuple[float, float],
                    polygons: list[TissuePolygon], text: str = "", width: int = 2) -> Image.Image:
    """Thumbnail with the tissue polygons drawn: exteriors ``CONTOUR_RGB``, holes ``HOLE_RGB``.

    ``polygons`` rings are in level-0 px; ``thumb_downsample`` is (dx, dy) level-0 px per thumbnail px.
    """
    img = Image.fromarray(thumb).convert("RGB")
    draw = ImageDraw.Draw(img)
    dx, dy = thumb_downsample
    for poly in polygons:
        for ring, colour in [(poly.exterior, CONTOUR_RGB)] + [(h, HOLE_RGB) for h in poly.holes]:
            pts = [(float(x) / dx, float(y) / dy) for x, y in ring]
            draw.line(pts, fill=colour, width=width, joint="curve")
    if text:
        _caption(img, text)
    return img


def write_qc_png_(path: str | os.PathLike[str], image: Image.Image) -> None:
    """Save a PNG atomically."""
    with atomic_path(path) as tmp:
        image.save(tmp, format="PNG")


def write_jpeg_(path: str | os.PathLike[str], image: Image.Image | np.ndarray, quality: int = 85) -> None:
    """Save an RGB image (PIL or (H, W, 3) uint8) as JPEG atomically."""
    img = Image.fromarray(image) if isinstance(image, np.ndarray) else image
    with atomic_path(path) as tmp:
        img.convert("RGB").save(tmp, format="JPEG", quality=quality)
