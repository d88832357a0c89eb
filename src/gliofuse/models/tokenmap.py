"""Square 2-D token maps from padded patch bags, for models that need spatial structure.

Two layouts (``token_map``):

* ``"raster"`` — the fixed-length layout of the subspace-fusion original (Zhang et al., MICCAI 2024):
  the valid patches, in bag order, are repeated (bag smaller than ``S*S``: token ``t`` is patch
  ``t mod N``) or uniformly subsampled (larger: patch ``round(t N / S^2)``) to exactly ``S*S``
  tokens, written row by row into an ``S x S`` map. Every cell is valid; spatial neighbours on the
  map are neighbours in the bag's (raster) order, not on the slide. Deformable keys sampled partly
  outside the map are masked by that share unless the model sets ``mask_out_of_map_keys: false``
  (the original: zero-padded, unmasked).
* ``"coords"`` — every patch goes to its own grid cell (``Batch.wsi_pos``, from the feature file's
  coordinates, a patient's slides side by side). A bag wider than ``S`` cells is pooled by the
  integer factor ``f = ceil(max(height, width) / S)`` (mean of the patches of a pooled cell); the
  result is centred on the ``S x S`` map and cells without a patch are marked invalid.

Both are computed per patient, so a patient's map does not depend on the rest of the batch.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

TOKEN_MAPS: tuple[str, ...] = ("raster", "coords")


def _raster_cells(n: int, device: torch.device) -> Tensor:
    side = max(1, math.isqrt(n - 1) + 1) if n > 0 else 1
    idx = torch.arange(n, device=device)
    return torch.stack([idx // side, idx % side], dim=1)


def build_token_map(wsi: Tensor, mask: Tensor | None, pos: Tensor | None, *, size: int,
                    mode: str = "coords") -> tuple[Tensor, Tensor]:
    """Place each patient's valid patches on an ``S x S`` token map.

    Parameters
    ----------
    wsi : float Tensor, shape = (B, N, D), padded bags.
    mask : bool Tensor, shape = (B, N), True = real patch; None: all real.
    pos : long Tensor, shape = (B, N, 2), ``(row, col)`` grid cell of each patch, or None (then the
        valid patches are laid out row by row in a near-square grid in bag order).
    size : S, the map side.
    mode : ``"raster"`` or ``"coords"`` (module docstring).

    Returns
    -------
    tokens : Tensor, shape = (B, S*S, D), row-major map cells.
    valid : bool Tensor, shape = (B, S*S): the cell holds at least one patch (all True in raster mode
        for a non-empty bag).
    """
    if mode not in TOKEN_MAPS:
        raise ValueError(f"token_map must be one of {TOKEN_MAPS}, got {mode!r}.")
    b, n, d = wsi.shape
    cells = size * size
    device = wsi.device
    if mask is None:
        mask = torch.ones(b, n, dtype=torch.bool, device=device)
    if mode == "raster":
        index = torch.zeros(b, cells, dtype=torch.long, device=device)
        valid = torch.zeros(b, cells, dtype=torch.bool, device=device)
        t = torch.arange(cells, device=device)
        for i in range(b):
            idx = torch.nonzero(mask[i], as_tuple=False).squeeze(1)
            m = int(idx.numel())
            if m == 0:
                continue
            take = t % m if m <= cells else torch.round(t.double() * m / cells).long().clamp_max(m - 1)
            index[i] = idx[take]
            valid[i] = True
        tokens = torch.gather(wsi, 1, index.unsqueeze(-1).expand(b, cells, d))
        return tokens * valid.unsqueeze(-1).to(wsi.dtype), valid

    flat_parts, src_parts = [], []
    for i in range(b):
        idx = torch.nonzero(mask[i], as_tuple=False).squeeze(1)
        if idx.numel() == 0:
            continue
        p = pos[i, idx] if pos is not None else _raster_cells(int(idx.numel()), device)
        p = p - p.min(dim=0).values
        factor = max(1, math.ceil((int(p.max()) + 1) / size))
        p = torch.div(p, factor, rounding_mode="floor")
        extent = p.max(dim=0).values + 1
        offset = torch.div(size - extent, 2, rounding_mode="floor")
        p = p + offset
        flat_parts.append(i * cells + p[:, 0] * size + p[:, 1])
        src_parts.append(i * n + idx)
    sums = torch.zeros(b * cells, d, dtype=wsi.dtype, device=device)
    counts = torch.zeros(b * cells, dtype=wsi.dtype, device=device)
    if flat_parts:
        flat = torch.cat(flat_parts)
        src = torch.cat(src_parts)
        sums.index_add_(0, flat, wsi.reshape(b * n, d)[src])
        counts.index_add_(0, flat, torch.ones_like(flat, dtype=wsi.dtype))
    valid = counts > 0
    tokens = sums / counts.clamp_min(1).unsqueeze(-1)
    return tokens.reshape(b, cells, d), valid.reshape(b, cells)
