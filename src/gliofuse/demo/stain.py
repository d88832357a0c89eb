"""Stain shift of an H&E image: another lab's staining and another scanner's colour rendition.

In optical density (OD = -ln((I + 1) / 256) per RGB channel) an H&E pixel is ``c_H v_H + c_E v_E`` with the
Ruifrok & Johnston stain vectors (Anal Quant Cytol Histol 2001). The shift

1. deconvolves OD into haematoxylin / eosin / residual concentrations and scales them
   (``haematoxylin_scale``, ``eosin_scale``: staining time, dye batch);
2. rotates the OD vectors about the grey axis (1, 1, 1) by ``hue_deg`` (scanner colour rendition: a hue
   change that leaves white glass and grey levels unchanged).

Glass (OD 0) stays white, so tissue detection still works; the mean tissue colour moves.
"""

from __future__ import annotations

import math

import numpy as np

RUIFROK_HE: np.ndarray = np.array([[0.650, 0.704, 0.286],   # haematoxylin
                                   [0.072, 0.990, 0.105],   # eosin
                                   [0.268, 0.570, 0.776]])  # third vector (DAB of the H-E-DAB matrix), left unscaled
"""Rows: OD stain vectors (unit length) of haematoxylin, eosin and the third channel (Ruifrok & Johnston 2001)."""


def _grey_axis_rotation(deg: float) -> np.ndarray:
    """(3, 3) rotation by ``deg`` about (1, 1, 1)/sqrt(3) (Rodrigues), acting on row vectors (x @ R)."""
    k = np.ones(3) / math.sqrt(3.0)
    kx = np.array([[0.0, -k[2], k[1]], [k[2], 0.0, -k[0]], [-k[1], k[0], 0.0]])
    t = math.radians(deg)
    r = np.eye(3) + math.sin(t) * kx + (1.0 - math.cos(t)) * (kx @ kx)
    return r.T


def stain_transform(*, haematoxylin_scale: float, eosin_scale: float, hue_deg: float) -> np.ndarray:
    """(3, 3) matrix M of the shift in OD space: ``od_shifted = od @ M`` (row vectors)."""
    v = RUIFROK_HE / np.linalg.norm(RUIFROK_HE, axis=1, keepdims=True)
    scale = np.diag([haematoxylin_scale, eosin_scale, 1.0])
    return np.linalg.inv(v) @ scale @ v @ _grey_axis_rotation(hue_deg)


def shift_stain(rgb: np.ndarray, *, haematoxylin_scale: float, eosin_scale: float, hue_deg: float,
                chunk_rows: int = 512) -> np.ndarray:
    """Apply the stain shift to ``rgb`` (H, W, 3) uint8; returns a new (H, W, 3) uint8 array.

    Processed in row chunks of ``chunk_rows`` to bound memory (float32 work arrays of one chunk).
    """
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"rgb must be (H, W, 3) uint8, got {rgb.shape} {rgb.dtype}")
    m = stain_transform(haematoxylin_scale=haematoxylin_scale, eosin_scale=eosin_scale,
                        hue_deg=hue_deg).astype(np.float32)
    # lookup table uint8 -> OD
    od_of = (-np.log((np.arange(256, dtype=np.float32) + 1.0) / 256.0)).astype(np.float32)
    out = np.empty_like(rgb)
    for y in range(0, rgb.shape[0], chunk_rows):
        od = od_of[rgb[y:y + chunk_rows]]
        shifted = np.clip(od @ m, 0.0, None)
        np.clip(256.0 * np.exp(-shifted) - 1.0 + 0.5, 0, 255, out=shifted)
        out[y:y + chunk_rows] = shifted.astype(np.uint8)
    return out
