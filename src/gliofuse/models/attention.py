"""Attention blocks shared by the transformer-style families (TransMIL, MCAT, M2F, Path-GPTOmic).

Every block takes a padding mask (True = real token) and never lets a padded token reach a real
one, so a patient's output does not depend on the padding or on the other patients of the batch.
Written for gliofuse (plain softmax attention; no fused kernels, so CPU results are reproducible).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

SELF_ATTENTION_MAX_PATCHES = 4096
"""Inference bag cap (``ModelCard.max_inference_patches``) of models with self-attention over every patch: their
attention weights take heads x N^2 x 4 B (8 heads, N = 4,096: 0.5 GiB per layer and patient, with its temporaries
about 2 GiB), where a TCGA patient's full bag (5 slides x 20,000 patches) would take ~320 GB."""


def _masked_softmax(logits: Tensor, key_mask: Tensor | None) -> Tensor:
    """Softmax over the last axis of ``logits`` (..., K) restricted to ``key_mask`` (B, K); rows with no key -> 0."""
    if key_mask is None:
        return torch.softmax(logits, dim=-1)
    shape = (key_mask.shape[0],) + (1,) * (logits.ndim - 2) + (key_mask.shape[1],)
    km = key_mask.reshape(shape)
    logits = logits.masked_fill(~km, float("-inf"))
    has_any = km.any(dim=-1, keepdim=True)
    logits = torch.where(has_any, logits, torch.zeros_like(logits))
    return torch.softmax(logits, dim=-1) * km * has_any


class MultiHeadAttention(nn.Module):
    """Scaled dot-product attention of queries (B, Q, dim) over keys/values (B, K, kv_dim).

    Returns ``(out (B, Q, dim), weights (B, heads, Q, K))``; weights are 0 on padded keys.
    """

    def __init__(self, dim: int, heads: int, *, kv_dim: int | None = None, dropout: float = 0.0) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"attention dim {dim} is not divisible by heads {heads}.")
        kv_dim = kv_dim or dim
        self.heads, self.dim_head = heads, dim // heads
        self.q = nn.Linear(dim, dim)
        self.k = nn.Linear(kv_dim, dim)
        self.v = nn.Linear(kv_dim, dim)
        self.out = nn.Linear(dim, dim)
        self.drop = nn.Dropout(dropout)

    def _split(self, x: Tensor) -> Tensor:
        b, n, _ = x.shape
        return x.reshape(b, n, self.heads, self.dim_head).transpose(1, 2)

    def forward(self, query: Tensor, kv: Tensor, key_mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
        q, k, v = self._split(self.q(query)), self._split(self.k(kv)), self._split(self.v(kv))
        weights = _masked_softmax(q @ k.transpose(-2, -1) / math.sqrt(self.dim_head), key_mask)
        out = (self.drop(weights) @ v).transpose(1, 2).reshape(query.shape[0], query.shape[1], -1)
        return self.out(out), weights


class TransformerBlock(nn.Module):
    """Pre-norm transformer layer: ``x + MHSA(LN(x))`` then ``x + FF(LN(x))`` (GELU), masked keys."""

    def __init__(self, dim: int, heads: int, ff_dim: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = MultiHeadAttention(dim, heads, dropout=dropout)
        self.norm2 = nn.LayerNorm(dim)
        self.ff = nn.Sequential(nn.Linear(dim, ff_dim), nn.GELU(), nn.Dropout(dropout), nn.Linear(ff_dim, dim),
                                nn.Dropout(dropout))

    def forward(self, x: Tensor, mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """x: (B, N, dim), mask: (B, N) -> ``(x (B, N, dim), attention (B, heads, N, N))``."""
        h = self.norm1(x)
        a, weights = self.attn(h, h, mask)
        x = x + a
        return x + self.ff(self.norm2(x)), weights


class TokenEncoder(nn.Module):
    """``layers`` :class:`TransformerBlock` s and a final LayerNorm over a padded token set (B, N, dim)."""

    def __init__(self, dim: int, *, layers: int, heads: int, ff_dim: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(TransformerBlock(dim, heads, ff_dim, dropout) for _ in range(layers))
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        for block in self.blocks:
            x, _ = block(x, mask)
        return self.norm(x)


def square_grid_index(mask: Tensor) -> tuple[Tensor, int]:
    """Grid cell of every real token when each bag's n_b tokens fill its own ``ceil(sqrt(n_b))`` square.

    Token i of bag b (in bag order, real tokens only) goes to row ``i // s_b``, column ``i % s_b``
    with ``s_b = ceil(sqrt(n_b))``; the rest of the square stays empty (zero). Placing every bag in
    the top-left corner of a common ``S x S`` canvas keeps the convolution of a bag independent
    of the batch (zero padding all around, as on its own square).

    Parameters
    ----------
    mask : bool Tensor, shape = (B, N); True = real token.

    Returns
    -------
    flat : long Tensor, shape = (B, N); ``row * S + col`` of each real token, -1 on padding.
    S : canvas side, ``max_b s_b`` (at least 1).
    """
    n = mask.sum(dim=1)
    side = torch.ceil(torch.sqrt(n.double())).long().clamp_min(1)
    order = torch.cumsum(mask.long(), dim=1) - 1  # rank among the real tokens
    s = int(side.max()) if mask.numel() else 1
    row, col = order // side.unsqueeze(1), order % side.unsqueeze(1)
    flat = torch.where(mask, row * s + col, torch.full_like(order, -1))
    return flat, s


class PPEG(nn.Module):
    """Pyramid position encoding generator (TransMIL): ``x + DW7(x) + DW5(x) + DW3(x)`` on the token square.

    Depthwise 2-D convolutions over the bag's tokens laid out on a square grid
    (:func:`square_grid_index`); empty cells are zero. Input and output (B, N, dim); padded tokens
    are returned unchanged.
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.convs = nn.ModuleList(nn.Conv2d(dim, dim, k, padding=k // 2, groups=dim) for k in (7, 5, 3))

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        b, _, d = x.shape
        flat, s = square_grid_index(mask)
        # padded tokens go to an extra trash cell (index s * s), so they never overwrite a real one
        idx = torch.where(mask, flat, torch.full_like(flat, s * s)).unsqueeze(-1).expand(-1, -1, d)
        canvas = x.new_zeros(b, s * s + 1, d).scatter(1, idx, x)
        grid = canvas[:, : s * s].transpose(1, 2).reshape(b, d, s, s)
        grid = grid + sum(conv(grid) for conv in self.convs)
        out = torch.cat([grid.reshape(b, d, s * s).transpose(1, 2), canvas[:, s * s:]], dim=1).gather(1, idx)
        return torch.where(mask.unsqueeze(-1), out, x)


class CoAttention(nn.Module):
    """Genomic-guided co-attention (MCAT's GCA): genomic tokens (B, M, dim) query WSI tokens (B, N, dim).

    Returns ``(guided (B, M, dim), weights (B, M, N))``: one genomics-guided histology token per
    genomic token, and its attention over the (real) patches, averaged over heads.
    """

    def __init__(self, dim: int, heads: int = 1, dropout: float = 0.0) -> None:
        super().__init__()
        self.attn = MultiHeadAttention(dim, heads, dropout=dropout)

    def forward(self, genomic: Tensor, wsi: Tensor, wsi_mask: Tensor | None) -> tuple[Tensor, Tensor]:
        out, weights = self.attn(genomic, wsi, wsi_mask)
        return out, weights.mean(dim=1)


class GatedKroneckerFusion(nn.Module):
    """Pathomic Fusion's gated Kronecker fusion of two embeddings (B, d_a), (B, d_b) -> (B, out_dim).

    Each modality is gated by a bilinear function of both (``sigmoid(Bilinear(a, b)) * ReLU(Linear(a))``),
    a 1 is appended to each gated vector, the outer product (B, (d+1)^2) is flattened, dropped out and
    encoded by two Linear+ReLU layers; the skip connection concatenates the gated unimodal vectors
    before the last encoder layer.

    References
    ----------
    Chen et al., Pathomic Fusion, IEEE TMI 2020, doi:10.1109/TMI.2020.3021387.
    """

    def __init__(self, dim_a: int, dim_b: int, *, scale_dim: int, out_dim: int, dropout: float = 0.25) -> None:
        super().__init__()
        self.proj_a = nn.Sequential(nn.Linear(dim_a, scale_dim), nn.ReLU())
        self.proj_b = nn.Sequential(nn.Linear(dim_b, scale_dim), nn.ReLU())
        self.gate_a = nn.Bilinear(dim_a, dim_b, scale_dim)
        self.gate_b = nn.Bilinear(dim_a, dim_b, scale_dim)
        self.drop = nn.Dropout(dropout)
        self.enc1 = nn.Sequential(nn.Linear((scale_dim + 1) ** 2, out_dim), nn.ReLU(), nn.Dropout(dropout))
        self.enc2 = nn.Sequential(nn.Linear(out_dim + 2 * scale_dim, out_dim), nn.ReLU(), nn.Dropout(dropout))
        self.out_dim = out_dim

    def forward(self, a: Tensor, b: Tensor) -> Tensor:
        ga = torch.sigmoid(self.gate_a(a, b)) * self.proj_a(a)
        gb = torch.sigmoid(self.gate_b(a, b)) * self.proj_b(b)
        one = ga.new_ones(ga.shape[0], 1)
        ka, kb = torch.cat([ga, one], dim=1), torch.cat([gb, one], dim=1)
        outer = torch.bmm(ka.unsqueeze(2), kb.unsqueeze(1)).flatten(1)
        z = self.enc1(self.drop(outer))
        return self.enc2(torch.cat([z, ga, gb], dim=1))


def masked_mean(x: Tensor, mask: Tensor | None) -> Tensor:
    """Mean over the real tokens: (B, N, D), (B, N) -> (B, D); zeros for an empty bag."""
    if mask is None:
        return x.mean(dim=1)
    w = mask.to(x.dtype).unsqueeze(-1)
    return (x * w).sum(dim=1) / w.sum(dim=1).clamp_min(1.0)


__all__ = ["PPEG", "SELF_ATTENTION_MAX_PATCHES", "CoAttention", "GatedKroneckerFusion", "MultiHeadAttention", "TokenEncoder", "TransformerBlock",
           "masked_mean", "square_grid_index"]
