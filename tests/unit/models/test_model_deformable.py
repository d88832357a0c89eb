"""Deformable cross-attention (sampling geometry, masking) and the 2-D token maps."""

from __future__ import annotations

import pytest
import torch

from gliofuse.models.deformable import (
    CrossAttention2D,
    DeformableCrossAttention2D,
    cells_to_normalised,
    pixel_centres,
    reference_cells,
    sample_map,
)
from gliofuse.models.tokenmap import build_token_map


def _zero_offsets(attn: DeformableCrossAttention2D) -> None:
    with torch.no_grad():
        attn.offsets[2].weight.zero_()  # the 1x1 conv before tanh: tanh(0) = 0


def _bilinear(img: torch.Tensor, x: float, y: float) -> torch.Tensor:
    """Hand-rolled bilinear sample of img (C, H, W) at pixel coordinates (x, y), zeros outside."""
    c, h, w = img.shape
    x0, y0 = int(torch.floor(torch.tensor(x))), int(torch.floor(torch.tensor(y)))
    out = torch.zeros(c, dtype=img.dtype)
    for yy, wy in ((y0, 1 - (y - y0)), (y0 + 1, y - y0)):
        for xx, wx in ((x0, 1 - (x - x0)), (x0 + 1, x - x0)):
            if 0 <= yy < h and 0 <= xx < w:
                out += wy * wx * img[:, yy, xx]
    return out


def test_zero_offsets_sample_every_cell_when_not_downsampled() -> None:
    torch.manual_seed(0)
    attn = DeformableCrossAttention2D(8, heads=2, dim_head=4, offset_groups=2, downsample=1, offset_kernel=1)
    _zero_offsets(attn)
    q = attn.to_q(torch.randn(3, 8, 5, 7))
    vgrid = attn.sampling_grid(q)
    assert vgrid.shape == (3 * 2, 2, 5, 7)
    torch.testing.assert_close(vgrid, reference_cells(5, 7).expand_as(vgrid))
    context = torch.randn(6, 4, 5, 7, dtype=torch.float64)
    torch.testing.assert_close(sample_map(context, cells_to_normalised(vgrid.double())), context)


def test_zero_offsets_equal_bilinear_sampling_at_the_reference_grid() -> None:
    torch.manual_seed(1)
    attn = DeformableCrossAttention2D(8, heads=2, dim_head=4, offset_groups=2, downsample=4, offset_kernel=6)
    _zero_offsets(attn)
    size = 16
    vgrid = attn.sampling_grid(attn.to_q(torch.randn(1, 8, size, size)))
    h = vgrid.shape[-1]
    assert h == 4  # floor((16 + 2*1 - 6) / 4) + 1
    torch.testing.assert_close(vgrid[0], reference_cells(h, h))
    context = torch.randn(2, 3, size, size, dtype=torch.float64)
    sampled = sample_map(context, cells_to_normalised(vgrid.double()))
    for i in range(h):
        for j in range(h):
            # reference cell (i, j) = centre of its stripe: pixel ((j + 0.5) * size / h - 0.5, ...)
            x, y = (j + 0.5) * size / h - 0.5, (i + 0.5) * size / h - 0.5
            torch.testing.assert_close(sampled[0, :, i, j], _bilinear(context[0], x, y))


def test_offsets_are_bounded_and_move_the_samples() -> None:
    torch.manual_seed(2)
    attn = DeformableCrossAttention2D(8, heads=2, dim_head=4, offset_groups=2, offset_scale=1.5)
    vgrid = attn.sampling_grid(attn.to_q(torch.randn(2, 8, 12, 12)))
    delta = vgrid - reference_cells(*vgrid.shape[-2:])
    assert delta.abs().max() <= 1.5 and delta.abs().max() > 0


def test_forward_shapes_gradients_and_masked_keys() -> None:
    torch.manual_seed(3)
    attn = DeformableCrossAttention2D(8, heads=4, dim_head=4, offset_groups=2, dropout=0.0)
    q, ctx = torch.randn(2, 8, 12, 12, requires_grad=True), torch.randn(2, 8, 12, 12)
    out, vgrid = attn(q, ctx)
    assert out.shape == (2, 8, 12, 12) and vgrid.shape == (2, 2, 2, 3, 3)
    (out.square().sum() + vgrid.sum()).backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in attn.parameters())
    # a context whose right half is invalid: what is there must not matter
    attn.eval()
    valid = torch.zeros(2, 12, 12, dtype=torch.bool)
    valid[:, :, :6] = True
    noisy = ctx.clone()
    noisy[..., 6:] = 1e4 * torch.randn_like(noisy[..., 6:])
    with torch.no_grad():
        a, _ = attn(q, ctx * valid[:, None], valid)
        b, _ = attn(q, noisy * valid[:, None], valid)
    torch.testing.assert_close(a, b)


def _hand_attention(attn: DeformableCrossAttention2D, query: torch.Tensor, context: torch.Tensor,
                    valid: torch.Tensor, *, mask_outside: bool | None) -> tuple[torch.Tensor, torch.Tensor]:
    """The module's attention written out with a hand bilinear sampler (zero features outside the map).

    ``mask_outside`` True: ``log`` of each key's bilinear weight on valid cells (clamped at 1e-6) is
    added to its logits (gliofuse's default: outside the map counts as empty); False: ``log(1 - its
    weight on empty in-map cells)`` (outside the map is a zero-feature key, as in the original); None:
    no masking at all. Returns ``(out (B, C, H, W) zeroed on empty cells, share (B*G, K))`` with
    ``share`` each key's bilinear weight on the map.
    """
    b, c, hh, ww = query.shape
    g, heads, dh = attn.groups, attn.heads, attn.dim_head
    q = attn.to_q(query)
    vgrid = attn.sampling_grid(q)  # (B*G, 2, h, w) in coarse cells
    h, w = vgrid.shape[-2:]
    m, k = b * g, h * w
    # coarse cell v of w sits at pixel (v + 0.5) * W / w - 0.5 of the full map
    px = ((vgrid[:, 0] + 0.5) * ww / w - 0.5).reshape(m, k, 1)
    py = ((vgrid[:, 1] + 0.5) * hh / h - 0.5).reshape(m, k, 1)
    wx = (1 - (px - torch.arange(ww)).abs()).clamp_min(0)  # (M, K, W); no weight beyond the edge
    wy = (1 - (py - torch.arange(hh)).abs()).clamp_min(0)  # (M, K, H)
    kv = torch.einsum("mki,mkj,mcij->mck", wy, wx, context.reshape(m, c // g, hh, ww)).reshape(b, c, h, w)
    share = torch.einsum("mki,mkj->mk", wy, wx)
    vmap = valid.float().repeat_interleave(g, dim=0)  # (M, H, W)
    on_valid = torch.einsum("mki,mkj,mij->mk", wy, wx, vmap)
    on_empty = torch.einsum("mki,mkj,mij->mk", wy, wx, 1 - vmap)
    keys = attn.to_k(kv).reshape(b, heads, dh, k)
    values = attn.to_v(kv).reshape(b, heads, dh, k)
    qh = q.reshape(b, heads, dh, hh * ww).transpose(-1, -2) * attn.scale
    bias = attn.cpb(pixel_centres(hh, ww), cells_to_normalised(vgrid).reshape(m, k, 2))
    logits = qh @ keys + bias.reshape(b, heads, hh * ww, k)
    if mask_outside is not None:
        kvalid = on_valid if mask_outside else 1 - on_empty
        per_head = kvalid.reshape(b, g, 1, 1, k).expand(b, g, heads // g, 1, k).reshape(b, heads, 1, k)
        logits = logits + torch.log(per_head.clamp_min(1e-6))
    out = (logits.softmax(dim=-1) @ values.transpose(-1, -2)).transpose(-1, -2).reshape(b, heads * dh, hh * ww, 1)
    return attn.to_out(out).reshape(b, c, hh, ww) * valid[:, None], share


def _pair(seed: int) -> tuple[DeformableCrossAttention2D, DeformableCrossAttention2D]:
    """The same weights with ``mask_out_of_map_keys`` True (the default) and False."""
    torch.manual_seed(seed)
    default = DeformableCrossAttention2D(8, heads=4, dim_head=4, offset_groups=2, dropout=0.0).eval()
    original = DeformableCrossAttention2D(8, heads=4, dim_head=4, offset_groups=2, dropout=0.0,
                                          mask_out_of_map_keys=False).eval()
    original.load_state_dict(default.state_dict())
    assert default.mask_out_of_map_keys and not original.mask_out_of_map_keys
    return default, original


def test_out_of_map_keys_masked_by_default_and_zero_unmasked_as_the_original_without() -> None:
    default, original = _pair(5)
    q, ctx = torch.randn(2, 8, 12, 12), torch.randn(2, 8, 12, 12)
    valid = torch.ones(2, 12, 12, dtype=torch.bool)  # a raster map: every cell holds a token
    with torch.no_grad():
        before, share = _hand_attention(default, q, ctx, valid, mask_outside=True)
        unmasked, _ = _hand_attention(default, q, ctx, valid, mask_outside=None)
        out_default, _ = default(q, ctx, valid)
        out_original, _ = original(q, ctx, valid)
        out_no_valid, _ = original(q, ctx)
    # the check means something: some keys lie partly, some wholly outside the 12 x 12 map
    assert bool((share < 0.99).any()) and bool((share == 0).any())
    torch.testing.assert_close(out_default, before)  # the default is unchanged
    torch.testing.assert_close(out_original, unmasked)  # zero-padded keys, logits not masked
    torch.testing.assert_close(out_no_valid, unmasked)
    assert float((out_default - out_original).norm() / out_original.norm()) > 1e-3


def test_without_out_of_map_masking_empty_cells_inside_the_map_stay_masked() -> None:
    default, original = _pair(6)
    q, ctx = torch.randn(2, 8, 12, 12), torch.randn(2, 8, 12, 12)
    valid = torch.zeros(2, 12, 12, dtype=torch.bool)
    valid[:, 2:11, :7] = True  # a coords map: tokens on part of the map, empty cells elsewhere
    ctx = ctx * valid[:, None]
    with torch.no_grad():
        before, _ = _hand_attention(default, q, ctx, valid, mask_outside=True)
        expected, _ = _hand_attention(default, q, ctx, valid, mask_outside=False)
        unmasked, _ = _hand_attention(default, q, ctx, valid, mask_outside=None)
        out_default, _ = default(q, ctx, valid)
        out_original, _ = original(q, ctx, valid)
    torch.testing.assert_close(out_default, before)
    torch.testing.assert_close(out_original, expected)
    # both maskings differ from none: empty in-map cells are masked in either mode
    assert float((out_original - unmasked).abs().max()) > 1e-3
    assert float((out_original - out_default).abs().max()) > 1e-3


def test_map_smaller_than_the_offset_kernel_is_an_error() -> None:
    attn = DeformableCrossAttention2D(8, heads=2, dim_head=4, offset_groups=2)
    with pytest.raises(ValueError, match="smaller than the offset kernel"):
        attn(torch.randn(1, 8, 3, 3), torch.randn(1, 8, 3, 3))
    with pytest.raises(ValueError, match="multiples of offset_groups"):
        DeformableCrossAttention2D(10, heads=2, offset_groups=4)


def test_plain_cross_attention_ignores_invalid_context_cells() -> None:
    torch.manual_seed(4)
    attn = CrossAttention2D(8, heads=2, dim_head=4, dropout=0.0).eval()
    q, ctx = torch.randn(1, 8, 4, 4), torch.randn(1, 8, 4, 4)
    valid = torch.rand(1, 4, 4) > 0.4
    noisy = torch.where(valid[:, None], ctx, 1e3 * torch.randn_like(ctx))
    with torch.no_grad():
        torch.testing.assert_close(attn(q, ctx, valid)[0], attn(q, noisy, valid)[0])


# ----------------------------------------------------------------------------- token maps
def test_raster_map_tiles_small_bags_and_subsamples_large_ones() -> None:
    d = 3
    small = torch.arange(5, dtype=torch.float32).repeat_interleave(d).reshape(5, d)
    large = torch.arange(40, dtype=torch.float32).repeat_interleave(d).reshape(40, d)
    wsi = torch.zeros(2, 40, d)
    wsi[0, :5], wsi[1] = small, large
    mask = torch.zeros(2, 40, dtype=torch.bool)
    mask[0, :5], mask[1] = True, True
    tokens, valid = build_token_map(wsi, mask, None, size=4, mode="raster")
    assert tokens.shape == (2, 16, d) and bool(valid.all())
    assert tokens[0, :, 0].tolist() == [t % 5 for t in range(16)]  # original rule: tile, then first (T mod N)
    assert tokens[1, :, 0].tolist() == [min(39, round(t * 40 / 16)) for t in range(16)]  # round(i N / T)


def test_coords_map_places_patches_centres_pools_and_masks() -> None:
    d = 2
    # patient 0: 3 patches in a 2 x 3 grid; patient 1: a 10 x 10 grid pooled by 2 on a 5 x 5 map
    pos0 = torch.tensor([[0, 0], [0, 2], [1, 1]])
    rows, cols = torch.meshgrid(torch.arange(10), torch.arange(10), indexing="ij")
    pos1 = torch.stack([rows.flatten(), cols.flatten()], dim=1)
    wsi = torch.zeros(2, 100, d)
    wsi[0, :3] = torch.tensor([[1.0, 1.0], [2.0, 2.0], [3.0, 3.0]])
    wsi[1] = torch.arange(100, dtype=torch.float32)[:, None].expand(100, d)
    mask = torch.zeros(2, 100, dtype=torch.bool)
    mask[0, :3], mask[1] = True, True
    pos = torch.full((2, 100, 2), -1, dtype=torch.long)
    pos[0, :3], pos[1] = pos0, pos1
    tokens, valid = build_token_map(wsi, mask, pos, size=5, mode="coords")
    grid0 = tokens[0, :, 0].reshape(5, 5)
    # a 2 x 3 bag centred on 5 x 5: offset (1, 1)
    assert grid0[1, 1] == 1 and grid0[1, 3] == 2 and grid0[2, 2] == 3
    assert int(valid[0].sum()) == 3 and not bool(valid[0].reshape(5, 5)[0].any())
    # pooled cell (0, 0) of patient 1 = mean of patches (0,0), (0,1), (1,0), (1,1) = (0 + 1 + 10 + 11) / 4
    assert bool(valid[1].all()) and float(tokens[1, 0, 0]) == pytest.approx(5.5)
    # each patient's map is independent of the others in the batch
    alone, valid_alone = build_token_map(wsi[:1, :3], mask[:1, :3], pos[:1, :3], size=5, mode="coords")
    torch.testing.assert_close(alone[0], tokens[0])
    assert torch.equal(valid_alone[0], valid[0])


def test_chunked_checkpointed_position_bias_equals_the_plain_one(monkeypatch: pytest.MonkeyPatch) -> None:
    from gliofuse.models.deformable import ContinuousPositionBias

    torch.manual_seed(5)
    cpb = ContinuousPositionBias(2, hidden=4)
    q = torch.rand(6, 2) * 2 - 1
    k = (torch.rand(5, 3, 2) * 2 - 1).requires_grad_()
    plain = cpb(q, k)
    (g_plain,) = torch.autograd.grad(plain.square().sum(), k)
    monkeypatch.setattr(ContinuousPositionBias, "CHUNK_ELEMENTS", 6 * 3 * 4 * 2)  # 2 maps per chunk
    monkeypatch.setattr(ContinuousPositionBias, "CHECKPOINT_MIN_ELEMENTS", 1)
    chunked = cpb(q, k)
    (g_chunked,) = torch.autograd.grad(chunked.square().sum(), k)
    assert plain.shape == (5, 2, 6, 3)
    torch.testing.assert_close(chunked, plain)
    torch.testing.assert_close(g_chunked, g_plain)
