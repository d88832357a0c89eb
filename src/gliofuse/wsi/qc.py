"""QC thumbnail: the slide with the tissue contour (green) and the kept patch grid (blue) drawn on it."""

from __future__ import annotations

import os

import numpy as np
from PIL import Image, ImageDraw
from scipy import ndimage

from gliofuse.io import atomic_path

CONTOUR_RGB = (0, 200, 0)
GRID_RGB = (30, 60, 230)


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
        bbox = draw.multiline_textbbox((4, 4), text)
        draw.rectangle([bbox[0] - 3, bbox[1] - 3, bbox[2] + 3, bbox[3] + 3], fill=(255, 255, 255))
        draw.multiline_text((4, 4), text, fill=(0, 0, 0))
    return img


def write_qc_png_(path: str | os.PathLike[str], image: Image.Image) -> None:
    """Save a PNG atomically."""
    with atomic_path(path) as tmp:
        image.save(tmp, format="PNG")
