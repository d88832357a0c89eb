"""Read a real slide's pixels to re-encode them in other formats (writers: ``gliofuse.demo.slide_formats``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import openslide


def slide_pixels(path: Path) -> tuple[np.ndarray, float]:
    """Level 0 of a slide as (H, W, 3) uint8 RGB and its mpp (µm/px, from ``openslide.mpp-x``)."""
    with openslide.OpenSlide(str(path)) as s:
        rgb = np.asarray(s.read_region((0, 0), 0, s.dimensions).convert("RGB"))
        return rgb, float(s.properties[openslide.PROPERTY_NAME_MPP_X])
