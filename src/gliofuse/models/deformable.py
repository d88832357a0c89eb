"""Cross-modal 2-D deformable attention on a token map, and plain cross-attention for ablations.

Layout: position helpers, the continuous position bias, the deformable module, the plain module.

The deformable module follows the description in Zhang et al. (MICCAI 2024, arXiv:2406.13979) of a
2-D deformable attention (Xia et al., CVPR 2022) whose queries and keys/values come from different
maps: an offset network on the (gene-conditioned) query map moves a coarse grid of reference points,
keys/values are bilinearly sampled from the histology map at the moved points, and attention logits
get a SwinV2-style continuous position bias. Written from that description, not from any code.

Coordinates: ``x`` is the column, ``y`` the row. Sampling positions (``vgrid``) are in units of
cells of the coarse (downsampled) grid, reference point ``(x, y) = (j, i)``; normalised positions
put cell ``j`` of ``w`` at ``(2 j + 1) / w - 1`` (the centre of its stripe of the map, the
``align_corners=False`` convention of :func:`torch.nn.functional.grid_sample`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint


def reference_cells(h: int, w: int, *, device: torch.device | None = None,
                    dtype: torch.dtype = torch.float32) -> Tensor:
    """Reference points of an ``h x w`` coarse grid: shape = (2, h, w), channel 0 = x (col), 1 = y (row)."""
    ys = torch.arange(h, device=device, dtype=dtype)
    xs = torch.arange(w, device=device, dtype=dtype)
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([gx, gy], dim=0)


def cells_to_normalised(vgrid: Tensor) -> Tensor:
    """Coarse-cell positions (M, 2, h, w) -> ``grid_sample`` grid (M, h, w, 2) in [-1, 1] (x first)."""
    h, w = vgrid.shape[-2:]
    scale = torch.tensor([w, h], device=vgrid.device, dtype=vgrid.dtype).view(1, 2, 1, 1)
    return ((2.0 * vgrid + 1.0) / scale - 1.0).permute(0, 2, 3, 1)


def pixel_centres(h: int, w: int, *, device: torch.device | None = None, dtype: torch.dtype = torch.float32) -> Tensor:
    """Normalised ``(x, y)`` of the centres of an ``h x w`` map's cells, row-major: shape = (h * w, 2)."""
    ref = reference_cells(h, w, device=device, dtype=dtype).unsqueeze(0)
    return cells_to_normalised(ref).reshape(h * w, 2)


def sample_map(context: Tensor, grid: Tensor) -> Tensor:
    """Bilinear samples of ``context`` (M, C, H, W) at ``grid`` (M, h, w, 2): (M, C, h, w); zeros outside."""
    return F.grid_sample(context, grid.to(context.dtype), mode="bilinear", padding_mode="zeros", align_corners=False)


def bilinear_cell_mass(grid: Tensor, key_mass: Tensor, height: int, width: int) -> Tensor:
    """Spread a mass per sampling point onto the map cells it was bilinearly sampled from.

    The adjoint of :func:`sample_map` for one channel: a point at normalised ``(x, y)`` reads cell
    ``(i, j)`` with weight ``max(0, 1 - |y_px - i|) * max(0, 1 - |x_px - j|)`` (``align_corners=False``
    pixel units; cells outside the map get nothing, as with zero padding), and gives it that share of
    its mass. Separable, so computed as a product of two small matrices (deterministic).

    Parameters
    ----------
    grid : Tensor, shape = (M, h, w, 2), normalised sampling positions (x first).
    key_mass : Tensor, shape = (M, h * w), mass of each sampling point.
    height, width : size H, W of the sampled map.

    Returns
    -------
    Tensor, shape = (M, H, W).
    """
    m = grid.shape[0]
    pts = grid.reshape(m, -1, 2).float()
    x_px = ((pts[..., 0] + 1.0) * width - 1.0) / 2.0  # (M, K)
    y_px = ((pts[..., 1] + 1.0) * height - 1.0) / 2.0
    cols = torch.arange(width, device=grid.device, dtype=pts.dtype)
    rows = torch.arange(height, device=grid.device, dtype=pts.dtype)
    wx = (1.0 - (x_px.unsqueeze(-1) - cols).abs()).clamp_min(0.0)  # (M, K, W)
    wy = (1.0 - (y_px.unsqueeze(-1) - rows).abs()).clamp_min(0.0)  # (M, K, H)
    return torch.matmul((wy * key_mass.float().unsqueeze(-1)).transpose(1, 2), wx)


class ContinuousPositionBias(nn.Module):
    """Log-spaced continuous position bias (SwinV2): an MLP of the query–key displacement.

    ``bias = MLP(sign(d) * log(1 + |d|))`` with ``d = p_query - p_key`` in normalised map units.

    Parameters
    ----------
    n_out : biases per displacement (one per head of a group).
    hidden : MLP width.
    depth : hidden layers (ReLU).
    use_checkpoint : recompute the MLP in the backward pass instead of storing its (large)
        (M, Q, K, hidden) activations, when they exceed ``CHECKPOINT_MIN_ELEMENTS``.

    Notes
    -----
    The MLP runs over chunks of maps holding at most ``CHUNK_ELEMENTS`` hidden activations (and,
    with checkpointing, each chunk is recomputed on its own), so a 16 x 8 x 2,500 x 144 bias never
    materialises its (M, Q, K, hidden) activations at once.

    References
    ----------
    Liu et al., Swin Transformer V2: scaling up capacity and resolution, CVPR 2022.
    """

    CHECKPOINT_MIN_ELEMENTS = 1 << 24
    CHUNK_ELEMENTS = 1 << 26

    def __init__(self, n_out: int, hidden: int = 32, depth: int = 2, use_checkpoint: bool = True) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Linear(2, hidden), nn.ReLU()]
        for _ in range(depth - 1):
            layers += [nn.Linear(hidden, hidden), nn.ReLU()]
        layers.append(nn.Linear(hidden, n_out))
        self.mlp = nn.Sequential(*layers)
        self.use_checkpoint = use_checkpoint

    def _bias(self, query_xy: Tensor, key_xy: Tensor) -> Tensor:
        q = query_xy.unsqueeze(0) if query_xy.ndim == 2 else query_xy
        d = q[:, :, None, :] - key_xy[:, None, :, :]
        d = torch.sign(d) * torch.log1p(d.abs())
        return self.mlp(d)

    def forward(self, query_xy: Tensor, key_xy: Tensor) -> Tensor:
        """Bias of every query/key pair.

        Parameters
        ----------
        query_xy : Tensor, shape = (Q, 2) (shared by all maps) or (M, Q, 2), normalised query positions.
        key_xy : Tensor, shape = (M, K, 2), normalised key positions per map (batch x group).

        Returns
        -------
        Tensor, shape = (M, n_out, Q, K).
        """
        m = key_xy.shape[0]
        per_map = query_xy.shape[-2] * key_xy.shape[1] * self.mlp[0].out_features
        recompute = (self.use_checkpoint and m * per_map >= self.CHECKPOINT_MIN_ELEMENTS and torch.is_grad_enabled()
                     and (key_xy.requires_grad or query_xy.requires_grad))
        chunk = max(1, self.CHUNK_ELEMENTS // per_map)
        parts = []
        for start in range(0, m, chunk):
            q = query_xy if query_xy.ndim == 2 else query_xy[start:start + chunk]
            k = key_xy[start:start + chunk]
            parts.append(checkpoint(self._bias, q, k, use_reentrant=False) if recompute else self._bias(q, k))
        out = parts[0] if len(parts) == 1 else torch.cat(parts)
        return out.permute(0, 3, 1, 2)


class DeformableCrossAttention2D(nn.Module):
    """2-D deformable cross-attention: queries from one map, keys/values sampled from another.

    Parameters
    ----------
    dim : channels C of both maps.
    heads, dim_head : attention heads and their width (inner = heads * dim_head).
    offset_groups : G groups; each has its own sampling points (offsets) and sees C / G channels of the
        key/value map; projections are grouped 1x1 convolutions. ``heads`` must be a multiple of G.
    downsample : stride r of the offset network: an ``H x W`` map gets about ``H/r x W/r`` sampling points.
    offset_kernel : kernel of the depth-wise offset convolution (padding ``(k - r) // 2``).
    offset_scale : offsets are ``offset_scale * tanh(.)`` coarse cells.
    dropout : dropout on the attention weights.
    cpb_hidden : width of the continuous position bias MLP.
    cpb_checkpoint : recompute the position-bias MLP in backward (saves memory on 2,500-token maps).
    mask_out_of_map_keys : True (default): the part of a key's bilinear footprint that falls outside
        the map counts as invalid, so a key wholly outside the map is masked. False (the original
        code): outside the map is zero-padded features, attended like any other key (its logit is
        the position bias alone); only empty cells inside the map are masked.

    Notes
    -----
    With a validity map: (i) it is sampled at the same points as the keys and ``log(max(kvalid, 1e-6))``
    is added to the logits, where ``kvalid`` is the bilinear share of the key on valid cells (with
    ``mask_out_of_map_keys``) or 1 minus its share on empty in-map cells (without), so keys falling
    on empty cells are ignored; (ii) only valid cells are queried (the output of an empty cell is 0
    and the offset network still sees the whole map), which saves the work of empty canvas cells
    without changing the output of valid ones. A ``raster`` map is all valid, so without
    ``mask_out_of_map_keys`` its logits are not masked at all, as in the original.
    """

    def __init__(self, dim: int, *, heads: int = 8, dim_head: int = 64, offset_groups: int = 8,
                 downsample: int = 4, offset_kernel: int = 6, offset_scale: float = 4.0, dropout: float = 0.1,
                 cpb_hidden: int = 32, cpb_checkpoint: bool = True, mask_out_of_map_keys: bool = True) -> None:
        super().__init__()
        inner = heads * dim_head
        if dim % offset_groups or heads % offset_groups:
            raise ValueError(f"DeformableCrossAttention2D: dim ({dim}) and heads ({heads}) must be multiples of "
                             f"offset_groups ({offset_groups}).")
        if offset_kernel < downsample:
            raise ValueError(f"offset_kernel ({offset_kernel}) must be >= downsample ({downsample}).")
        self.heads, self.dim_head, self.groups = heads, dim_head, offset_groups
        self.scale = dim_head ** -0.5
        self.offset_scale = float(offset_scale)
        self.mask_out_of_map_keys = bool(mask_out_of_map_keys)
        self.downsample, self.offset_kernel = downsample, offset_kernel
        group_dim = inner // offset_groups
        self.to_q = nn.Conv2d(dim, inner, 1, groups=offset_groups, bias=False)
        self.to_k = nn.Conv2d(dim, inner, 1, groups=offset_groups, bias=False)
        self.to_v = nn.Conv2d(dim, inner, 1, groups=offset_groups, bias=False)
        self.offsets = nn.Sequential(
            nn.Conv2d(group_dim, group_dim, offset_kernel, stride=downsample,
                      padding=(offset_kernel - downsample) // 2, groups=group_dim),
            nn.GELU(),
            nn.Conv2d(group_dim, 2, 1, bias=False),
            nn.Tanh(),
        )
        self.cpb = ContinuousPositionBias(heads // offset_groups, cpb_hidden, use_checkpoint=cpb_checkpoint)
        self.drop = nn.Dropout(dropout)
        self.to_out = nn.Conv2d(inner, dim, 1)

    def min_map_size(self) -> int:
        """Smallest map side the offset convolution accepts."""
        return self.offset_kernel - 2 * ((self.offset_kernel - self.downsample) // 2)

    def sampling_grid(self, q: Tensor) -> Tensor:
        """Sampling positions ``vgrid`` (B*G, 2, h, w) in coarse cells from the projected queries (B, inner, H, W)."""
        b, inner, hh, ww = q.shape
        off = self.offsets(q.reshape(b * self.groups, inner // self.groups, hh, ww)).float() * self.offset_scale
        ref = reference_cells(off.shape[-2], off.shape[-1], device=off.device, dtype=off.dtype)
        return ref.unsqueeze(0) + off

    def forward(self, query: Tensor, context: Tensor, valid: Tensor | None = None, *,
                return_mass: bool = False) -> tuple[Tensor, ...]:
        """Attend from every cell of ``query`` to points sampled from ``context``.

        Parameters
        ----------
        query : Tensor, shape = (B, C, H, W), the map that decides where to look (gene-conditioned).
        context : Tensor, shape = (B, C, H, W), the map keys and values are sampled from (histology).
        valid : bool Tensor, shape = (B, H, W), or None: True = the cell holds a token.
        return_mass : also return the attention mass of each context cell (below).

        Returns
        -------
        out : Tensor, shape = (B, C, H, W).
        vgrid : Tensor, shape = (B, G, 2, h, w): sampling positions (x, y) in coarse cells
            (reference grid + offsets), for the gene-guided consistency loss.
        mass : float Tensor, shape = (B, H, W), only with ``return_mass``: the attention weights
            (before dropout) of every valid query and head, summed per sampling point and spread onto
            the context cells with the bilinear sampling weights (:func:`bilinear_cell_mass`); 0 on
            invalid cells, normalised to sum 1 over each map (all 0 when nothing lands on a valid cell).
        """
        b, c, hh, ww = query.shape
        if min(hh, ww) < self.min_map_size():
            raise ValueError(f"DeformableCrossAttention2D: a {hh}x{ww} map is smaller than the offset kernel "
                             f"allows ({self.min_map_size()}); use a larger grid_size.")
        g = self.groups
        q = self.to_q(query)
        vgrid = self.sampling_grid(q)  # (B*G, 2, h, w)
        h, w = vgrid.shape[-2:]
        grid = cells_to_normalised(vgrid)  # (B*G, h, w, 2)
        kv = sample_map(context.reshape(b * g, c // g, hh, ww), grid).reshape(b, c, h, w)
        k = self.to_k(kv).reshape(b, self.heads, self.dim_head, h * w)
        v = self.to_v(kv).reshape(b, self.heads, self.dim_head, h * w)
        qh = q.reshape(b, self.heads, self.dim_head, hh * ww).transpose(-1, -2) * self.scale  # (B, heads, HW, dh)
        qpos = pixel_centres(hh, ww, device=query.device, dtype=grid.dtype)  # (HW, 2)
        cells = None
        if valid is not None:
            flat = valid.reshape(b, hh * ww)
            n_query = max(1, int(flat.sum(dim=1).max()))
            if n_query < hh * ww:  # query the valid cells only (first the valid ones, then padding)
                cells = torch.argsort((~flat).to(torch.int8), dim=1, stable=True)[:, :n_query]  # (B, Q)
                qh = torch.gather(qh, 2, cells[:, None, :, None].expand(b, self.heads, n_query, self.dim_head))
                qpos = qpos[cells].repeat_interleave(g, dim=0)  # (B*G, Q, 2)
        n_q = qh.shape[2]
        sim = torch.matmul(qh, k)  # (B, heads, Q, hw)
        bias = self.cpb(qpos, grid.reshape(b * g, h * w, 2))  # (B*G, heads/G, Q, hw)
        sim = sim + bias.reshape(b, self.heads, n_q, h * w).to(sim.dtype)
        if valid is not None:
            sim = sim + self._key_log_validity(valid, grid).to(sim.dtype)
        sim = sim - sim.amax(dim=-1, keepdim=True).detach()
        weights = sim.softmax(dim=-1)
        attn = self.drop(weights)
        out = torch.matmul(attn, v.transpose(-1, -2))  # (B, heads, Q, dh)
        out = out.transpose(-1, -2).reshape(b, self.heads * self.dim_head, n_q, 1)
        out = self.to_out(out).reshape(b, c, n_q)
        if cells is not None:
            out = torch.zeros(b, c, hh * ww, dtype=out.dtype, device=out.device).scatter(
                2, cells.unsqueeze(1).expand(b, c, n_q), out)
        if valid is not None:
            out = out * valid.reshape(b, 1, hh * ww).to(out.dtype)
        if not return_mass:
            return out.reshape(b, c, hh, ww), vgrid.reshape(b, g, 2, h, w)
        mass = self._cell_mass(weights, grid, valid, cells, hh, ww)
        return out.reshape(b, c, hh, ww), vgrid.reshape(b, g, 2, h, w), mass

    def _key_log_validity(self, valid: Tensor, grid: Tensor) -> Tensor:
        """``log(max(kvalid, 1e-6))`` per key, (B, heads, 1, hw), from the validity map (B, H, W) and grid (B*G, h, w, 2)."""
        b = valid.shape[0]
        g = self.groups
        h, w = grid.shape[1:3]
        vmap = valid.to(grid.dtype).unsqueeze(1).repeat_interleave(g, dim=0)  # (B*G, 1, H, W)
        if self.mask_out_of_map_keys:  # share on valid cells: outside the map counts as invalid
            kvalid = sample_map(vmap, grid)
        else:  # 1 - share on empty in-map cells: outside the map is a zero-feature key, kept
            kvalid = 1.0 - sample_map(1.0 - vmap, grid)
        kvalid = kvalid.reshape(b, g, 1, 1, h * w).expand(b, g, self.heads // g, 1, h * w)
        return torch.log(kvalid.reshape(b, self.heads, 1, h * w).clamp_min(1e-6))

    def _cell_mass(self, weights: Tensor, grid: Tensor, valid: Tensor | None, cells: Tensor | None, hh: int,
                   ww: int) -> Tensor:
        """Attention mass per context cell (B, H, W) from the weights (B, heads, Q, hw); see :meth:`forward`."""
        b, hw = weights.shape[0], weights.shape[-1]
        g = self.groups
        w = weights.detach().float()
        if valid is not None:  # padding queries (cells without a token) do not count
            flat = valid.reshape(b, hh * ww)
            q_ok = flat if cells is None else torch.gather(flat, 1, cells)
            w = w * q_ok[:, None, :, None].to(w.dtype)
        key_mass = w.sum(dim=2).reshape(b, g, self.heads // g, hw).sum(dim=2)  # heads of a group share its points
        mass = bilinear_cell_mass(grid.detach(), key_mass.reshape(b * g, hw), hh, ww).reshape(b, g, hh, ww).sum(1)
        if valid is not None:
            mass = mass * valid.to(mass.dtype)
        total = mass.sum(dim=(1, 2), keepdim=True)
        return torch.where(total > 0, mass / total.clamp_min(1e-30), torch.zeros_like(mass))


class CrossAttention2D(nn.Module):
    """Plain multi-head cross-attention between two token maps (the "no deformable attention" ablation).

    Every query cell attends to every valid cell of the context map; no offsets, no sampling positions.
    Same call signature as :class:`DeformableCrossAttention2D`; ``vgrid`` is None.
    """

    def __init__(self, dim: int, *, heads: int = 8, dim_head: int = 64, dropout: float = 0.1) -> None:
        super().__init__()
        inner = heads * dim_head
        self.heads, self.dim_head = heads, dim_head
        self.to_q = nn.Linear(dim, inner, bias=False)
        self.to_kv = nn.Linear(dim, 2 * inner, bias=False)
        self.to_out = nn.Linear(inner, dim)
        self.dropout = dropout

    def forward(self, query: Tensor, context: Tensor, valid: Tensor | None = None) -> tuple[Tensor, None]:
        """query, context: (B, C, H, W); valid: (B, H, W) bool or None -> ((B, C, H, W), None)."""
        b, c, hh, ww = query.shape
        xq = query.flatten(2).transpose(1, 2)
        xc = context.flatten(2).transpose(1, 2)
        q = self.to_q(xq).reshape(b, -1, self.heads, self.dim_head).transpose(1, 2)
        k, v = self.to_kv(xc).reshape(b, -1, 2, self.heads, self.dim_head).permute(2, 0, 3, 1, 4)
        mask = None
        if valid is not None:
            flat = valid.flatten(1)
            # a map with no valid cell attends uniformly (its output is never pooled)
            flat = flat | ~flat.any(dim=1, keepdim=True)
            mask = flat[:, None, None, :]
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask,
                                             dropout_p=self.dropout if self.training else 0.0)
        out = self.to_out(out.transpose(1, 2).reshape(b, hh * ww, -1))
        return out.transpose(1, 2).reshape(b, c, hh, ww), None
