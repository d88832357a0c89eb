"""Shared blocks: masked gated attention and the SNN block."""

from __future__ import annotations

import torch

from gliofuse.models.layers import GatedAttentionPooling, SNNBlock


def test_attention_weights_ignore_padding() -> None:
    torch.manual_seed(0)
    pool = GatedAttentionPooling(13, 7).eval()
    h = torch.randn(2, 11, 13)
    mask = torch.ones(2, 11, dtype=torch.bool)
    mask[0, 6:] = False
    pooled, attn = pool(h, mask)
    assert pooled.shape == (2, 13) and attn.shape == (2, 11)
    torch.testing.assert_close(attn.sum(dim=1), torch.ones(2))
    assert (attn[0, 6:] == 0).all()
    torch.testing.assert_close(pooled[0], (attn[0, :6, None] * h[0, :6]).sum(0))


def test_empty_bag_gives_zeros_not_nan() -> None:
    pool = GatedAttentionPooling(5, 3)
    pooled, attn = pool(torch.randn(1, 4, 5), torch.zeros(1, 4, dtype=torch.bool))
    assert torch.equal(pooled, torch.zeros(1, 5)) and torch.equal(attn, torch.zeros(1, 4))


def test_snn_block_is_roughly_self_normalising() -> None:
    torch.manual_seed(0)
    block = SNNBlock(301, 257, dropout=0.0)
    with torch.no_grad():
        y = block(torch.randn(4000, 301))
    assert abs(float(y.mean())) < 0.1 and abs(float(y.std()) - 1) < 0.15
