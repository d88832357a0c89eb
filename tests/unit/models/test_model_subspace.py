"""Subspace fusion: the gene-guided consistency loss, variants, declarations and input errors."""

from __future__ import annotations

import pytest
import torch

from gliofuse.data.batch import PatientSample
from gliofuse.data.collate import collate_bags
from gliofuse.errors import ConfigError
from gliofuse.models.registry import create_model, get_model_card, list_models
from gliofuse.models.subspace import gene_guided_consistency

DIMS = {"wsi": 11, "omics": 9, "omics:tumour": 7, "omics:microenvironment": 5}
SMALL = {"dim": 8, "gene_hidden_dims": [6], "grid_size": 8, "heads": 2, "dim_head": 4}
SMALL_DEFORM = {"offset_groups": 2, "downsample": 2, "offset_kernel": 3, "cpb_hidden": 4}


def _batch(n: int = 4, seed: int = 0) -> object:
    gen = torch.Generator().manual_seed(seed)
    return collate_bags([
        PatientSample(patient_id=f"P{i}", wsi=torch.randn(6 + i, 11, generator=gen), omics=torch.randn(9, generator=gen),
                      time_days=10.0 + i, event=1.0, label=i % 3,
                      wsi_pos=torch.stack([torch.arange(6 + i) // 3, torch.arange(6 + i) % 3], dim=1),
                      omics_sets={"tumour": torch.randn(7, generator=gen),
                                  "microenvironment": torch.randn(5, generator=gen)})
        for i in range(n)])


def _model(name: str = "subspace_fusion", **kw: object) -> torch.nn.Module:
    defaults = get_model_card(name).defaults
    small = {k: v for k, v in {**SMALL, **SMALL_DEFORM}.items() if k in defaults}
    return create_model(name, input_dims=DIMS, **{**small, **kw})


def test_consistency_is_zero_when_the_similarity_matrices_match() -> None:
    torch.manual_seed(0)
    n, g = 5, 3
    positions = torch.rand(n, 2, 4, 4) * 6  # one set of sampling positions per sample ...
    vgrid = positions.unsqueeze(1).expand(n, g, 2, 4, 4)  # ... shared by every group
    gene = positions.reshape(n, -1) * 2.5  # gene similarity = position similarity (up to scale)
    assert float(gene_guided_consistency(gene, vgrid)) == pytest.approx(0.0, abs=1e-10)
    assert float(gene_guided_consistency(torch.rand(n, 7), vgrid)) > 1e-4


def test_consistency_gradients_reach_genes_and_positions() -> None:
    gene = torch.rand(4, 6, requires_grad=True)
    vgrid = (torch.rand(4, 2, 2, 3, 3) * 5).requires_grad_()
    gene_guided_consistency(gene, vgrid).backward()
    assert gene.grad.abs().sum() > 0 and vgrid.grad.abs().sum() > 0


def test_original_form_reshapes_sample_major_positions() -> None:
    torch.manual_seed(1)
    n, g = 4, 2
    vgrid = torch.rand(n, g, 2, 3, 3)
    gene = torch.rand(n, 5)
    # the original views the (N*G, ...) sample-major rows as (G, N, ...): slice k = rows k*N .. k*N+N-1
    rows = vgrid.reshape(n * g, -1)
    manual = torch.stack([torch.nn.functional.normalize(rows[k * n:(k + 1) * n] @ rows[k * n:(k + 1) * n].T, dim=1)
                          for k in range(g)]).mean(0)
    s_gene = torch.nn.functional.normalize(gene @ gene.T, dim=1)
    expected = ((s_gene - manual) ** 2).sum() / n
    torch.testing.assert_close(gene_guided_consistency(gene, vgrid, form="original"), expected)
    assert not torch.isclose(gene_guided_consistency(gene, vgrid, form="sample"), expected)
    with pytest.raises(ValueError, match="consistency form"):
        gene_guided_consistency(gene, vgrid, form="bogus")


def test_full_model_declares_parts_groups_and_coordination() -> None:
    model = _model()
    assert model.embed_dim == 16
    assert model.embedding_parts() == {"tumour": slice(0, 8), "microenvironment": slice(8, 16)}
    assert set(model.gradient_groups()) == {"tumour", "microenvironment"}
    assert model.gradient_policies() == [("subspace_coordination",
                                          {"mode": "project", "parts": ("tumour", "microenvironment")})]
    model.train()
    out = model(_batch())
    assert set(out.aux_losses) == {"consistency"} and out.aux_losses["consistency"].requires_grad
    model.eval()
    assert model(_batch()).aux_losses == {}  # the consistency term is a training loss


@pytest.mark.parametrize(("name", "embed", "aux", "policy"), [
    ("subspace_fusion_no_split", 8, {"consistency"}, None),
    ("subspace_fusion_no_deform", 16, set(), "project"),
    ("subspace_fusion_no_cons", 16, set(), "project"),
    ("subspace_fusion_no_gc", 16, {"consistency"}, "off"),
])
def test_ablations(name: str, embed: int, aux: set[str], policy: str | None) -> None:
    card = get_model_card(name)
    assert card.ablation_of == "subspace_fusion" and "2406.13979" in card.reference
    model = _model(name).train()
    out = model(_batch())
    assert model.embed_dim == embed and set(out.aux_losses) == aux
    modes = [opts["mode"] for _, opts in model.gradient_policies()]
    assert modes == ([] if policy is None else [policy])


def test_ablations_are_registered() -> None:
    assert {"subspace_fusion", "subspace_fusion_no_split", "subspace_fusion_no_deform", "subspace_fusion_no_cons",
            "subspace_fusion_no_gc"} <= set(list_models("subspace_fusion*"))


def test_raster_and_coords_maps_both_run() -> None:
    for token_map in ("raster", "coords"):
        out = _model(token_map=token_map).eval()(_batch())
        assert torch.isfinite(out.embedding).all()


def test_input_errors_name_the_fix() -> None:
    with pytest.raises(ConfigError, match=r"\['microenvironment'\] were not built.*training.gene_sets"):
        create_model("subspace_fusion", input_dims={"wsi": 11, "omics": 9, "omics:tumour": 7})
    with pytest.raises(ConfigError, match="exactly two gene sets"):
        _model(gene_sets=["tumour"])
    with pytest.raises(ConfigError, match="token_map"):
        _model(token_map="hexagonal")
    with pytest.raises(ConfigError, match="grid_size"):
        _model(grid_size=2)
    batch = _batch()
    batch.omics_sets = {}
    with pytest.raises(ValueError, match="needs batch.omics_sets"):
        _model()(batch)


def test_out_of_map_key_masking_is_a_model_setting() -> None:
    assert get_model_card("subspace_fusion").defaults["mask_out_of_map_keys"] is True
    assert "mask_out_of_map_keys" in get_model_card("subspace_fusion").notes
    batch = _batch()
    torch.manual_seed(0)
    default = _model(token_map="raster").eval()
    torch.manual_seed(0)
    explicit = _model(token_map="raster", mask_out_of_map_keys=True).eval()
    torch.manual_seed(0)
    original = _model(token_map="raster", mask_out_of_map_keys=False).eval()
    assert all(not b.attention.mask_out_of_map_keys for b in original.branches)
    with torch.no_grad():
        a, b, c = default(batch).embedding, explicit(batch).embedding, original(batch).embedding
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)
