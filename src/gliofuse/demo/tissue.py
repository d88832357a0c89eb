"""Synthetic H&E slide images driven by a patient's latent factors (vectorised numpy, no pixel loops).

Pipeline for one slide, composed at ``SYNTH_MPP`` (0.5 µm/px) and resampled to the slide's mpp:

1. tissue mask: 1-3 irregular regions (sometimes with a hole) covering 30-60 % of the slide;
2. base texture: a mosaic of real TCGA H&E crops (random crops, flips, rotations), mixed toward the two
   glioblastoma crops as ``z_tumour`` rises;
3. necrosis (``z_micro``): pale eosinophilic areas with nuclear dust, surrounded by denser nuclei
   (pseudo-palisading);
4. nuclei (``z_tumour``): hyperchromatic, pleomorphic nucleus sprites whose density, size and darkness grow
   with ``z_tumour``;
5. vessels and haemorrhage (``z_micro``): vessel profiles with red-cell-filled lumina and extravasated red cells;
6. near-white glass background (RGB ~236-244, slight noise) outside the tissue.

The latent effects are strong on purpose: mean colour of 256-px tissue patches at 0.5 µm/px tracks
``z_tumour`` (darker, more purple) and ``z_micro`` (paler pink areas, red patches).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
from PIL import Image
from scipy import ndimage

SYNTH_MPP = 0.5
"""Resolution (µm/px) at which slides are composed; 40x slides are upsampled from it."""
_STEP = 16
"""Low-resolution grid step (pixels at SYNTH_MPP) for masks and density maps."""
_NUC_RGB = np.array([105.0, 62.0, 135.0], dtype=np.float32)
_NECROSIS_RGB = np.array([228.0, 182.0, 208.0], dtype=np.float32)
_HEMATOXYLIN_OD = np.array([0.65, 0.70, 0.29], dtype=np.float32)  # Ruifrok & Johnston stain vector
_RBC_RGB = np.array([196.0, 52.0, 72.0], dtype=np.float32)
_WALL_RGB = np.array([205.0, 128.0, 172.0], dtype=np.float32)


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, int], sigma: float) -> np.ndarray:
    """Gaussian-smoothed white noise with unit standard deviation, float32 ``shape``."""
    f = ndimage.gaussian_filter(rng.standard_normal(shape).astype(np.float32), sigma, mode="wrap")
    return f / max(float(f.std()), 1e-6)


def _upsample(low: np.ndarray, h: int, w: int) -> np.ndarray:
    """Bilinear upsampling of a low-res (hl, wl) float field on the ``_STEP`` grid to (h, w) float32."""
    hl, wl = low.shape
    img = Image.fromarray(np.ascontiguousarray(low, dtype=np.float32), mode="F")
    big = np.asarray(img.resize((wl * _STEP, hl * _STEP), Image.Resampling.BILINEAR), dtype=np.float32)
    return np.array(big[:h, :w], dtype=np.float32, copy=True)


def tissue_field(rng: np.random.Generator, hl: int, wl: int) -> np.ndarray:
    """Soft tissue mask on the low-res grid, float32 (hl, wl) in [0, 1], covering 30-60 % of it.

    1-3 elliptical regions with noisy outlines, kept off the slide border; half of the slides get a hole.
    """
    aspect = wl / hl
    yy, xx = np.mgrid[0:hl, 0:wl].astype(np.float32)
    y = (yy + 0.5) / hl
    x = (xx + 0.5) / wl * aspect
    n_regions = int(rng.integers(1, 4))
    field = np.full((hl, wl), -np.inf, dtype=np.float32)
    centres = []
    for r in range(n_regions):
        if n_regions == 1:
            cx, cy = rng.uniform(0.4, 0.6) * aspect, rng.uniform(0.4, 0.6)
        else:  # spread the regions along the long axis
            cx = (r + 0.5 + rng.uniform(-0.15, 0.15)) / n_regions * aspect
            cy = rng.uniform(0.3, 0.7)
        a = rng.uniform(0.25, 0.42) * (1.0 if n_regions == 1 else 0.8)
        b = a * rng.uniform(0.55, 1.0)
        th = rng.uniform(0, math.pi)
        dx, dy = x - cx, y - cy
        u = (dx * math.cos(th) + dy * math.sin(th)) / a
        v = (-dx * math.sin(th) + dy * math.cos(th)) / b
        field = np.maximum(field, 1.0 - np.sqrt(u * u + v * v))
        centres.append((cx, cy, a, b))
    field += 0.30 * _smooth_noise(rng, (hl, wl), 4.0) + 0.08 * _smooth_noise(rng, (hl, wl), 1.2)
    if rng.random() < 0.5:  # a hole inside the first region
        cx, cy, a, b = centres[0]
        hx = cx + rng.uniform(-0.3, 0.3) * a
        hy = cy + rng.uniform(-0.3, 0.3) * b
        rad = rng.uniform(0.05, 0.09)
        d = np.sqrt((x - hx) ** 2 + ((y - hy) * rng.uniform(0.7, 1.3)) ** 2) / rad
        field -= 4.0 * np.clip(1.0 - d, 0.0, 1.0)
    border = np.minimum(np.minimum(x, aspect - x), np.minimum(y, 1.0 - y))
    field -= 4.0 * np.clip((0.06 - border) / 0.06, 0.0, 1.0)
    target = rng.uniform(0.35, 0.55)
    thr = float(np.quantile(field, 1.0 - target))
    return np.clip((field - thr) / 0.05 + 0.5, 0.0, 1.0).astype(np.float32)


def _mosaic(rng: np.random.Generator, textures: list[np.ndarray], h: int, w: int, tile: int = 384) -> np.ndarray:
    """Tile (h, w) with random crops of ``textures`` (random texture, offset, rotation, flip), float32 RGB."""
    out = np.empty((h, w, 3), dtype=np.float32)
    for ty in range(0, h, tile):
        for tx in range(0, w, tile):
            t = textures[int(rng.integers(len(textures)))]
            th_, tw_ = t.shape[:2]
            if min(th_, tw_) < tile:
                raise ValueError(f"texture of shape {t.shape} is smaller than the mosaic tile ({tile} px)")
            tsz = tile
            oy = int(rng.integers(0, th_ - tsz + 1))
            ox = int(rng.integers(0, tw_ - tsz + 1))
            patch = np.rot90(t[oy:oy + tsz, ox:ox + tsz], int(rng.integers(4)))
            if rng.random() < 0.5:
                patch = patch[:, ::-1]
            hh, ww = min(tsz, h - ty), min(tsz, w - tx)
            out[ty:ty + hh, tx:tx + ww] = patch[:hh, :ww]
    return out


def _nucleus_sprites(rng: np.random.Generator, n: int, *, scale: float, radius: int,
                     min_axis: float, max_axis: float, opacity: tuple[float, float]) -> list[np.ndarray]:
    """``n`` nucleus alpha sprites (2 radius + 1)^2 float32: soft ellipses with chromatin texture."""
    yy, xx = np.mgrid[-radius:radius + 1, -radius:radius + 1].astype(np.float32)
    sprites = []
    for _ in range(n):
        a = min(rng.uniform(min_axis, max_axis) * scale, radius - 1.0)
        b = a * rng.uniform(0.5, 0.95)
        th = rng.uniform(0, math.pi)
        u = (xx * math.cos(th) + yy * math.sin(th)) / a
        v = (-xx * math.sin(th) + yy * math.cos(th)) / b
        r = np.sqrt(u * u + v * v)
        alpha = np.clip((1.0 - r) * b + 0.5, 0.0, 1.0)
        chromatin = 0.72 + 0.28 * ndimage.gaussian_filter(rng.random(alpha.shape).astype(np.float32), 0.8)
        sprites.append((alpha * chromatin * rng.uniform(*opacity)).astype(np.float32))
    return sprites


def _sample_positions(rng: np.random.Generator, density_low: np.ndarray, n: int, h: int, w: int
                      ) -> tuple[np.ndarray, np.ndarray]:
    """``n`` pixel positions (y, x) drawn with probability proportional to the low-res ``density_low``."""
    p = density_low.ravel().astype(np.float64)
    total = p.sum()
    if n <= 0 or total <= 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    cells = rng.choice(p.size, size=n, p=p / total)
    wl = density_low.shape[1]
    ys = (cells // wl) * _STEP + rng.integers(0, _STEP, size=n)
    xs = (cells % wl) * _STEP + rng.integers(0, _STEP, size=n)
    return np.minimum(ys, h - 1), np.minimum(xs, w - 1)


def _stamp_max(canvas: np.ndarray, sprites: list[np.ndarray], rng: np.random.Generator,
               ys: np.ndarray, xs: np.ndarray) -> None:
    """Stamp a random sprite centred at each (y, x) into the 2-D ``canvas`` with a pixel-wise maximum."""
    if ys.size == 0:
        return
    h, w = canvas.shape
    s = sprites[0].shape[0]
    r = s // 2
    top = np.clip(ys - r, 0, h - s)
    left = np.clip(xs - r, 0, w - s)
    base = top * w + left
    which = rng.integers(len(sprites), size=ys.size)
    flat = canvas.reshape(-1)
    dy, dx = np.mgrid[0:s, 0:s]
    for k, sprite in enumerate(sprites):
        sel = base[which == k]
        if sel.size == 0:
            continue
        keep = sprite > 0.02
        offs = (dy[keep] * w + dx[keep]).astype(np.int64)
        idx = (sel[:, None] + offs[None, :]).ravel()
        vals = np.broadcast_to(sprite[keep][None, :], (sel.size, offs.size)).ravel()
        np.maximum.at(flat, idx, vals)


def _blend_patch(img: np.ndarray, y0: int, x0: int, alpha: np.ndarray, rgb: np.ndarray) -> None:
    """Alpha-blend a local (hh, ww) patch of colour ``rgb`` (hh, ww, 3) or (3,) into ``img`` at (y0, x0), clipped."""
    h, w = img.shape[:2]
    hh, ww = alpha.shape
    ya, xa = max(0, y0), max(0, x0)
    yb, xb = min(h, y0 + hh), min(w, x0 + ww)
    if ya >= yb or xa >= xb:
        return
    a = alpha[ya - y0:yb - y0, xa - x0:xb - x0, None]
    c = rgb if rgb.ndim == 1 else rgb[ya - y0:yb - y0, xa - x0:xb - x0]
    region = img[ya:yb, xa:xb]
    region += a * (c - region)


def _draw_vessels(rng: np.random.Generator, img: np.ndarray, density_low: np.ndarray, target_area_px: float,
                  z_micro: float) -> None:
    """Vessel profiles (eosinophilic wall, endothelial nuclei, lumen mostly full of red cells).

    Vessels are added until their lumina cover ``target_area_px`` pixels, so the vascular area fraction is
    a smooth function of the latent factor rather than a noisy count.
    """
    grow = float(np.clip(1.0 + 0.2 * z_micro, 0.6, 1.5))
    ys, xs = _sample_positions(rng, density_low ** 4, 512, *img.shape[:2])
    covered = 0.0
    for y, x in zip(ys.tolist(), xs.tolist(), strict=True):
        if covered >= target_area_px:
            break
        a = rng.uniform(10.0, 30.0) * grow
        b = a * rng.uniform(0.45, 1.0)
        covered += math.pi * a * b
        t = rng.uniform(3.0, 7.0)
        th = rng.uniform(0, math.pi)
        R = math.ceil(a + t + 3)
        yy, xx = np.mgrid[-R:R + 1, -R:R + 1].astype(np.float32)
        u = (xx * math.cos(th) + yy * math.sin(th))
        v = (-xx * math.sin(th) + yy * math.cos(th))
        r_in = np.sqrt((u / a) ** 2 + (v / b) ** 2)
        r_out = np.sqrt((u / (a + t)) ** 2 + (v / (b + t)) ** 2)
        outer = np.clip((1.0 - r_out) * (b + t) + 0.5, 0.0, 1.0)
        lumen = np.clip((1.0 - r_in) * b + 0.5, 0.0, 1.0)
        wall = outer - lumen
        _blend_patch(img, y - R, x - R, 0.85 * wall, _WALL_RGB)
        if rng.random() < 0.75:  # red cells fill the lumen
            grain = ndimage.gaussian_filter(rng.random(lumen.shape).astype(np.float32), 1.2)
            rbc = lumen * np.clip((grain - 0.40) * 6.0, 0.25, 1.0) * 0.9
            _blend_patch(img, y - R, x - R, rbc, _RBC_RGB)
            _blend_patch(img, y - R, x - R, lumen * (1.0 - rbc) * 0.6, np.array([240.0, 200.0, 215.0], np.float32))
        else:  # empty lumen
            _blend_patch(img, y - R, x - R, 0.85 * lumen, np.array([243.0, 232.0, 238.0], np.float32))
        # endothelial nuclei: dark dots on the wall
        ring = wall > 0.5
        k = int(rng.integers(3, 8))
        cand = np.flatnonzero(ring.ravel())
        if cand.size:
            pick = rng.choice(cand, size=min(k, cand.size), replace=False)
            dots = np.zeros_like(wall)
            dots.reshape(-1)[pick] = 1.0
            dots = np.clip(ndimage.gaussian_filter(dots, 1.6) * 14.0, 0.0, 0.9)
            _blend_patch(img, y - R, x - R, dots, _NUC_RGB)


def _draw_haemorrhage(rng: np.random.Generator, img: np.ndarray, density_low: np.ndarray,
                      target_area_px: float) -> None:
    """Extravasated red cells: irregular patches of densely packed red granules covering ~``target_area_px``."""
    ys, xs = _sample_positions(rng, density_low ** 4, 256, *img.shape[:2])
    covered = 0.0
    for y, x in zip(ys.tolist(), xs.tolist(), strict=True):
        if covered >= target_area_px:
            break
        R = int(rng.integers(24, 70))
        yy, xx = np.mgrid[-R:R + 1, -R:R + 1].astype(np.float32)
        blob = ndimage.gaussian_filter(rng.standard_normal(yy.shape).astype(np.float32), R / 5.0)
        blob = blob / max(float(blob.std()), 1e-6) + 2.5 * (1.0 - np.sqrt(xx ** 2 + yy ** 2) / R)
        shape = np.clip((blob - 1.2) * 2.0, 0.0, 1.0)
        grain = ndimage.gaussian_filter(rng.random(yy.shape).astype(np.float32), 1.5)
        alpha = shape * np.clip((grain - 0.42) * 8.0, 0.2, 0.95)
        covered += float(shape.sum())
        _blend_patch(img, y - R, x - R, alpha, _RBC_RGB)


def synthesize_slide(*, rng: np.random.Generator, z_tumour: float, z_micro: float, width_um: float,
                     height_um: float, mpp: float, textures: Mapping[str, np.ndarray]) -> np.ndarray:
    """Synthesise one H&E slide image.

    Parameters
    ----------
    rng : the slide's own generator (e.g. ``rng_for(seed, "patient", i, "slide", k)``).
    z_tumour, z_micro : the patient's latent factors (standard normal).
    width_um, height_um : physical size of the slide in µm.
    mpp : µm per pixel of the output (0.25 for 40x, 0.5 for 20x).
    textures : texture crops from ``resources.load_textures()`` (float32 (H, W, 3) at 0.5 µm/px), keys
        ``gbm_a``, ``gbm_b``, ``lgg``.

    Returns
    -------
    uint8 array (round(height_um / mpp), round(width_um / mpp), 3).
    """
    z_t = float(np.clip(z_tumour, -3.0, 3.0))
    z_m = float(np.clip(z_micro, -3.0, 3.0))
    h, w = round(height_um / SYNTH_MPP), round(width_um / SYNTH_MPP)
    hl, wl = -(-h // _STEP), -(-w // _STEP)

    # 1. tissue mask
    tissue_low = tissue_field(rng, hl, wl)
    tissue = _upsample(tissue_low, h, w)
    np.clip((tissue - 0.5) * 3.0 + 0.5, 0.0, 1.0, out=tissue)

    # 2. base texture: LGG crop <-> glioblastoma crops, mixed by z_tumour with spatial variation.
    # ``tmp`` is a scratch buffer reused by every blend below (fewer page faults than fresh temporaries).
    img = _mosaic(rng, [textures["lgg"]], h, w)
    tmp = _mosaic(rng, [textures["gbm_a"], textures["gbm_b"]], h, w)
    mix_low = np.clip(_sigmoid(1.5 * z_t) + 0.25 * _smooth_noise(rng, (hl, wl), 3.0), 0.0, 1.0)
    tmp -= img
    tmp *= _upsample(mix_low, h, w)[..., None]
    img += tmp
    # hyperchromasia / basophilia (more haematoxylin optical density with z_tumour) and per-slide stain jitter
    stain = np.exp(-0.10 * z_t * _HEMATOXYLIN_OD) * rng.uniform(0.97, 1.03, size=3)
    img *= stain.astype(np.float32)[None, None, :]

    # 3. necrosis (z_micro): pale eosinophilic areas
    tissue_area_px = float(tissue_low.sum()) * _STEP * _STEP
    f_nec = 0.32 * _sigmoid(2.0 * (z_m - 0.4))
    nec_low = np.zeros((hl, wl), dtype=np.float32)
    nfield = _smooth_noise(rng, (hl, wl), 5.0)
    inside = tissue_low > 0.9
    if f_nec > 0.01 and inside.sum() > 10:
        thr = float(np.quantile(nfield[inside], 1.0 - f_nec))
        nec_low = np.clip((nfield - thr) / 0.15 + 0.5, 0.0, 1.0) * np.clip((tissue_low - 0.5) * 2, 0, 1)
        grain = rng.random((h, w), dtype=np.float32)
        grain *= 0.16
        grain += 0.92  # multiplicative granularity 0.92-1.08
        np.multiply(_NECROSIS_RGB[None, None, :], grain[..., None], out=tmp)
        tmp -= img
        grain[...] = _upsample(nec_low, h, w)
        grain *= 0.92
        tmp *= grain[..., None]
        img += tmp
        del grain
    rim = np.clip(ndimage.gaussian_filter(nec_low, 1.5) - nec_low, 0.0, None) * 6.0

    # 4. nuclei (z_tumour): density, size and hyperchromasia rise with z_tumour
    nuclei = np.zeros((h, w), dtype=np.float32)
    coverage = float(np.clip(0.11 * math.exp(0.75 * z_t), 0.02, 0.45))
    size_scale = float(np.clip(1.0 + 0.12 * z_t, 0.75, 1.35))
    mean_area = math.pi * (6.75 * size_scale) ** 2 * 0.72
    n_nuclei = int(coverage * tissue_area_px / mean_area)
    sprites = _nucleus_sprites(rng, 32, scale=size_scale, radius=16, min_axis=4.5, max_axis=9.0,
                               opacity=(0.7, 0.95))
    density = tissue_low * (1.0 - nec_low) * (1.0 + rim)
    _stamp_max(nuclei, sprites, rng, *_sample_positions(rng, density, n_nuclei, h, w))
    n_dust = int(float(nec_low.sum()) * _STEP * _STEP * 0.004)
    if n_dust:
        dust = _nucleus_sprites(rng, 8, scale=1.0, radius=4, min_axis=1.2, max_axis=2.5, opacity=(0.4, 0.8))
        _stamp_max(nuclei, dust, rng, *_sample_positions(rng, nec_low, n_dust, h, w))
    nuc_rgb = _NUC_RGB * float(np.clip(1.0 - 0.08 * z_t, 0.7, 1.2))
    np.subtract(nuc_rgb[None, None, :], img, out=tmp)
    tmp *= nuclei[..., None]
    img += tmp
    del nuclei, tmp

    # 5. vessels and haemorrhage (z_micro)
    viable = tissue_low * (1.0 - nec_low)
    _draw_vessels(rng, img, viable, tissue_area_px * min(0.012 * math.exp(1.0 * z_m), 0.15), z_m)
    _draw_haemorrhage(rng, img, viable, tissue_area_px * min(0.004 * math.exp(1.2 * z_m), 0.08))

    # 6. glass background outside the tissue, slight sensor noise everywhere
    bg = (rng.uniform(237.0, 243.0) + rng.uniform(-1.5, 1.5, size=3)).astype(np.float32)[None, None, :]
    img -= bg
    img *= tissue[..., None]
    img += bg + 0.5  # + 0.5: round when truncating to uint8 below
    img += rng.integers(-2, 3, size=(h, w, 1), dtype=np.int8)
    np.clip(img, 0, 255, out=img)
    out = img.astype(np.uint8)
    del img

    oh, ow = round(height_um / mpp), round(width_um / mpp)
    if (oh, ow) != (h, w):
        out = np.asarray(Image.fromarray(out).resize((ow, oh), Image.Resampling.BICUBIC))
    return out
