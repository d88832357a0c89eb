"""Per-patch attention of the models (``ModelOutput.attention``): gated-attention MIL and the deformable map."""

from __future__ import annotations

import pytest
import torch

from gliofuse.data.batch import Batch
from gliofuse.models.deformable import DeformableCrossAttention2D, bilinear_cell_mass, sample_map
from gliofuse.models.registry import create_model

B, N, D, G_T, G_M, G = 3, 20, 10, 6, 5, 7
DIMS = {"wsi": D, "omics": G, "omics:tumour": G_T, "omics:microenvironment": G_M}
SUBSPACE = {"dim": 16, "gene_hidden_dims": [8], "grid_size": 6, "heads": 2, "dim_head": 4}
DEFORM = {"offset_groups": 2, "downsample": 2, "offset_kernel": 3, "cpb_hidden": 8}


def _batch(seed: int = 0) -> Batch:
    """Three ragged bags (20, 12 and 5 patches) on a 4 x 5 patch grid, padded to 20."""
    gen = torch.Generator().manual_seed(seed)
    mask = torch.ones(B, N, dtype=torch.bool)
    mask[1, 12:] = False
    mask[2, 5:] = False
    pos = torch.stack([torch.arange(N) // 5, torch.arange(N) % 5], dim=-1).repeat(B, 1, 1)
    pos[~mask] = -1
    wsi = torch.randn(B, N, D, generator=gen) * mask.unsqueeze(-1)
    return Batch(wsi=wsi, wsi_mask=mask, omics=torch.randn(B, G, generator=gen), patient_ids=["a", "b", "c"],
                 time_days=torch.ones(B), event=torch.ones(B), label=torch.zeros(B, dtype=torch.long), wsi_pos=pos,
                 omics_sets={"tumour": torch.randn(B, G_T, generator=gen),
                             "microenvironment": torch.randn(B, G_M, generator=gen)})


def _single(batch: Batch, i: int) -> Batch:
    n = int(batch.wsi_mask[i].sum())
    return Batch(wsi=batch.wsi[i:i + 1, :n], wsi_mask=batch.wsi_mask[i:i + 1, :n], omics=batch.omics[i:i + 1],
                 patient_ids=[batch.patient_ids[i]], time_days=batch.time_days[i:i + 1], event=batch.event[i:i + 1],
                 label=batch.label[i:i + 1], wsi_pos=batch.wsi_pos[i:i + 1, :n],
                 omics_sets={k: v[i:i + 1] for k, v in batch.omics_sets.items()})


MODELS = {
    "abmil": {"embed_dim": 16, "attn_dim": 8},
    "abmil_snn_concat": {"wsi_embed_dim": 16, "attn_dim": 8, "omics_hidden_dims": [8], "fusion_dim": 8},
    "subspace_fusion": {**SUBSPACE, **DEFORM, "token_map": "coords"},
    "subspace_fusion_no_gc": {**SUBSPACE, **DEFORM, "token_map": "raster"},
}


@pytest.mark.parametrize("name", sorted(MODELS))
def test_attention_is_a_distribution_over_each_bags_patches(name: str) -> None:
    torch.manual_seed(0)
    model = create_model(name, input_dims=DIMS, **MODELS[name]).eval()
    batch = _batch()
    with torch.no_grad():
        att = model(batch).attention
    assert att is not None and att.shape == (B, N)
    assert torch.allclose(att.sum(dim=1), torch.ones(B), atol=1e-5)
    assert (att >= 0).all() and (att[~batch.wsi_mask] == 0).all()
    assert att[0].std() > 0  # not uniform
    # a patient's weights do not depend on the other bags of the batch (padding is inert)
    for i in range(B):
        with torch.no_grad():
            alone = model(_single(batch, i)).attention
        n = int(batch.wsi_mask[i].sum())
        torch.testing.assert_close(alone[0], att[i, :n], atol=1e-5, rtol=1e-4)


def test_subspace_attention_only_in_eval_mode_and_not_for_plain_attention() -> None:
    model = create_model("subspace_fusion", input_dims=DIMS, **MODELS["subspace_fusion"])
    assert model.train()(_batch()).attention is None  # training: no extra work
    plain = create_model("subspace_fusion_no_deform", input_dims=DIMS, **SUBSPACE).eval()
    with torch.no_grad():
        assert plain(_batch()).attention is None


def test_bilinear_cell_mass_is_the_transpose_of_grid_sampling() -> None:
    gen = torch.Generator().manual_seed(1)
    grid = torch.rand(3, 4, 5, 2, generator=gen) * 2.6 - 1.3  # some points outside the map
    key_mass = torch.rand(3, 20, generator=gen)
    ones = torch.ones(3, 1, 7, 6, requires_grad=True)
    (adjoint,) = torch.autograd.grad((sample_map(ones, grid).reshape(3, 20) * key_mass).sum(), ones)
    torch.testing.assert_close(bilinear_cell_mass(grid, key_mass, 7, 6), adjoint.squeeze(1), atol=1e-6, rtol=1e-5)
    # a point on a cell centre gives all its mass to that cell
    centre = torch.tensor([[[[(2 * 2 + 1) / 6 - 1, (2 * 3 + 1) / 7 - 1]]]])  # column 2, row 3
    mass = bilinear_cell_mass(centre, torch.tensor([[2.0]]), 7, 6)
    assert mass[0, 3, 2] == pytest.approx(2.0) and mass.sum() == pytest.approx(2.0)


def test_deformable_mass_is_uniform_over_valid_cells_when_attention_is() -> None:
    """Zero offsets, zero keys and no position bias: every valid key gets the same weight."""
    attn = DeformableCrossAttention2D(8, heads=2, dim_head=4, offset_groups=2, downsample=1, offset_kernel=1,
                                      dropout=0.0).eval()
    with torch.no_grad():
        attn.offsets[2].weight.zero_()  # offsets = 4 tanh(0) = 0: one sampling point per cell centre
        attn.to_k.weight.zero_()
        attn.cpb.mlp[-1].weight.zero_()
        attn.cpb.mlp[-1].bias.zero_()
    valid = torch.rand(2, 5, 5, generator=torch.Generator().manual_seed(2)) < 0.6
    valid[:, 0, 0] = True
    q, c = torch.randn(2, 8, 5, 5), torch.randn(2, 8, 5, 5)
    with torch.no_grad():
        out, vgrid, mass = attn(q, c, valid, return_mass=True)
        out2, vgrid2 = attn(q, c, valid)
    torch.testing.assert_close(out, out2)
    torch.testing.assert_close(vgrid, vgrid2)
    expected = valid.float() / valid.float().sum(dim=(1, 2), keepdim=True)
    torch.testing.assert_close(mass, expected, atol=1e-5, rtol=0)


def test_subspace_patch_attention_follows_the_token_map() -> None:
    """Cell mass goes back to the patches of the cell: shared in a pooled cell, summed over raster repeats."""
    model = create_model("subspace_fusion", input_dims=DIMS, **{**MODELS["subspace_fusion"], "grid_size": 3})
    # four patches in one row, 4 wide > 3: pooled by 2 -> cells (1, 0), (1, 0), (1, 1), (1, 1) of the 3 x 3 map
    pos = torch.tensor([[[0, 0], [0, 1], [0, 2], [0, 3]]])
    mask = torch.ones(1, 4, dtype=torch.bool)
    mass = torch.zeros(1, 9)
    mass[0, 3], mass[0, 4] = 0.25, 0.75
    att = model._patch_attention(mass, 4, mask, pos, device=torch.device("cpu"))
    torch.testing.assert_close(att, torch.tensor([[0.125, 0.125, 0.375, 0.375]]))
    raster = create_model("subspace_fusion_no_deform", input_dims=DIMS, **{**SUBSPACE, "grid_size": 2,
                                                                          "token_map": "raster"})
    # two patches on four tokens: token t is patch t mod 2
    mass = torch.tensor([[0.1, 0.2, 0.3, 0.4]])
    att = raster._patch_attention(mass, 3, torch.tensor([[True, True, False]]), None, device=torch.device("cpu"))
    torch.testing.assert_close(att, torch.tensor([[0.4, 0.6, 0.0]]))
