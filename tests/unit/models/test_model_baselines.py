"""Baselines: TransMIL (PPEG grid), Pathomic Fusion (gated Kronecker) and MCAT (gene-family co-attention)."""

from __future__ import annotations

import pytest
import torch

from gliofuse.data.batch import Batch, PatientSample
from gliofuse.data.collate import collate_bags
from gliofuse.models.attention import PPEG, GatedKroneckerFusion, square_grid_index
from gliofuse.models.registry import create_model, get_model_card
from gliofuse.omics.genesets import GROUPS
from tests.unit.models.fitting import cox_losses_on_fixed_batch

D, G, B = 29, 19, 6
SETS = {name: 3 + i for i, name in enumerate(GROUPS["mcat"])}
DIMS = {"wsi": D, "omics": G, **{f"omics:{k}": v for k, v in SETS.items()}}
SMALL = {
    "transmil": {"dim": 16, "heads": 2},
    "pathomic_fusion": {"path_dim": 12, "attn_dim": 8, "omics_hidden_dims": [16, 12], "fusion_dim": 20},
    "mcat": {"dim": 16, "heads": 2, "ff_dim": 24, "layers": 1},
}


def toy_batch(n_patches: list[int], seed: int = 0) -> Batch:
    gen = torch.Generator().manual_seed(seed)
    return collate_bags([PatientSample(
        patient_id=f"P{i}", wsi=torch.randn(n, D, generator=gen), omics=torch.randn(G, generator=gen),
        time_days=float(50 + 37 * i), event=float(i % 3 != 2), label=i % 3,
        omics_sets={k: torch.randn(v, generator=gen) for k, v in SETS.items()}) for i, n in enumerate(n_patches)])


def build(name: str, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return create_model(name, input_dims=DIMS, **SMALL[name])


@pytest.mark.parametrize("name", list(SMALL))
def test_shapes_and_attention_over_real_patches(name: str) -> None:
    batch = toy_batch([7, 3, 11, 5, 9, 4])
    out = build(name).eval()(batch)
    assert out.embedding.shape == (B, build(name).embed_dim)
    assert out.attention is not None and out.attention.shape == (B, 11)
    torch.testing.assert_close(out.attention.sum(dim=1), torch.ones(B))
    assert (out.attention[~batch.wsi_mask] == 0).all()
    assert set(out.modality_embeddings) <= {"wsi", "omics"}


@pytest.mark.parametrize("name", list(SMALL))
def test_cox_loss_falls_on_a_fixed_batch(name: str) -> None:
    batch = toy_batch([7, 3, 11, 5, 9, 4], seed=1)
    losses = cox_losses_on_fixed_batch(build(name, seed=2), batch, steps=25)
    assert losses[-1] < 0.7 * losses[0], losses


@pytest.mark.parametrize("name", list(SMALL))
def test_fixed_seed_reproduces_predictions(name: str) -> None:
    batch = toy_batch([7, 3, 11, 5, 9, 4], seed=3)
    a, b, c = build(name, seed=5).eval(), build(name, seed=5).eval(), build(name, seed=6).eval()
    with torch.no_grad():
        torch.testing.assert_close(a(batch).embedding, b(batch).embedding, rtol=0, atol=0)
        assert not torch.allclose(a(batch).embedding, c(batch).embedding)


def test_square_grid_index_places_each_bag_on_its_own_square() -> None:
    mask = torch.tensor([[True] * 5 + [False] * 2, [True] * 7, [True, False, True, False, False, False, False]])
    flat, side = square_grid_index(mask)
    assert side == 3  # ceil(sqrt(7))
    # bag 0: 5 tokens on a 3 x 3 square (row-major); bag 2: 2 real tokens on a 2 x 2 square
    assert flat[0].tolist() == [0, 1, 2, 3, 4, -1, -1]
    assert flat[1].tolist() == [0, 1, 2, 3, 4, 5, 6]
    assert flat[2].tolist() == [0, -1, 1, -1, -1, -1, -1]


def test_ppeg_equals_depthwise_convolutions_on_the_bag_square() -> None:
    torch.manual_seed(0)
    ppeg = PPEG(4)
    x = torch.randn(1, 5, 4)
    out = ppeg(x, torch.ones(1, 5, dtype=torch.bool))
    grid = torch.zeros(1, 4, 3, 3)
    grid.view(1, 4, 9)[:, :, :5] = x.transpose(1, 2)  # 5 tokens on a 3 x 3 square, row-major, rest empty
    expect = (grid + sum(conv(grid) for conv in ppeg.convs)).view(1, 4, 9)[:, :, :5].transpose(1, 2)
    torch.testing.assert_close(out, expect)


def test_gated_kronecker_fusion_shape_and_both_inputs_matter() -> None:
    torch.manual_seed(0)
    fuse = GatedKroneckerFusion(6, 5, scale_dim=4, out_dim=9, dropout=0.0)
    assert fuse.enc1[0].in_features == 25  # (4 + 1) ** 2
    a, b = torch.randn(3, 6), torch.randn(3, 5)
    z = fuse(a, b)
    assert z.shape == (3, 9)
    assert not torch.allclose(fuse(a, torch.randn(3, 5)), z)
    assert not torch.allclose(fuse(torch.randn(3, 6), b), z)


def test_mcat_tokens_are_the_six_signature_families_and_missing_sets_are_named() -> None:
    card = get_model_card("mcat")
    assert card.defaults["gene_sets"] == list(GROUPS["mcat"]) and len(card.defaults["gene_sets"]) == 6
    model = build("mcat")
    assert len(model.extractor.genomic.encoders) == 6
    from gliofuse.errors import ConfigError

    with pytest.raises(ConfigError, match=r"mcat needs omics vectors for gene sets .*not built"):
        create_model("mcat", input_dims={"wsi": D, "omics": G}, **SMALL["mcat"])


def test_transmil_card_says_attention_is_exact() -> None:
    notes = get_model_card("transmil").notes
    assert "Nystrom attention is replaced by exact multi-head self-attention" in notes
    assert "PPEG" in notes
