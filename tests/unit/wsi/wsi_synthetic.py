"""Synthetic H&E-like slides: tissue ellipses on white, defined in micrometres (resolution independent)."""

from __future__ import annotations

import numpy as np

# physical layout of the synthetic tissue (µm): ellipses (cx, cy, rx, ry)
WIDTH_UM, HEIGHT_UM = 1101.5, 800.5
BLOBS = [(300.0, 300.0, 220.0, 170.0), (760.0, 420.0, 230.0, 260.0), (420.0, 640.0, 160.0, 110.0)]
SPECK = (1030.0, 80.0, 30.0)  # small round fleck (area ~2800 µm² < min_tissue_area_um2): removed
HOLE = (760.0, 420.0, 25.0)  # small round hole inside a blob (area ~2000 µm²): filled
BIG_HOLE = (760.0, 420.0, 90.0)  # large round hole (area ~25,400 µm² > min_hole_area_um2): kept


def tissue_image(mpp: float, *, blank: bool = False, big_hole: bool = False,
                 seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Synthetic H&E-like image at ``mpp`` µm/px → ((H, W, 3) uint8, (H, W) bool true tissue mask).

    ``big_hole``: the hole in the second blob is ``BIG_HOLE`` (kept by the segmentation) instead of ``HOLE``.
    """
    w, h = round(WIDTH_UM / mpp), round(HEIGHT_UM / mpp)
    xs = (np.arange(w, dtype=np.float32) + 0.5) * mpp
    ys = (np.arange(h, dtype=np.float32) + 0.5) * mpp
    X, Y = xs[None, :], ys[:, None]
    tissue = np.zeros((h, w), bool)
    if not blank:
        for cx, cy, rx, ry in BLOBS:
            tissue |= ((X - cx) / rx) ** 2 + ((Y - cy) / ry) ** 2 <= 1
        cx, cy, r = SPECK
        tissue |= (X - cx) ** 2 + (Y - cy) ** 2 <= r * r
        cx, cy, r = BIG_HOLE if big_hole else HOLE
        tissue &= ~((X - cx) ** 2 + (Y - cy) ** 2 <= r * r)
    rng = np.random.default_rng(seed)
    # texture defined on a 2-µm lattice so both scan resolutions see the same tissue
    lattice = rng.normal(0, 18, size=(int(HEIGHT_UM / 2) + 2, int(WIDTH_UM / 2) + 2)).astype(np.float32)
    tex = lattice[np.ix_((ys / 2).astype(int), (xs / 2).astype(int))]
    img = np.empty((h, w, 3), np.uint8)
    for c, (tissue_v, white_v) in enumerate(((205, 244), (120, 243), (175, 245))):
        img[..., c] = np.where(tissue, np.clip(tissue_v + tex, 0, 255), white_v)
    return img, tissue
