"""Every registered model: shapes, finiteness, gradient flow, padding and batch invariances."""

from __future__ import annotations

import pytest
import torch

from gliofuse.data.batch import Batch, PatientSample
from gliofuse.data.collate import collate_bags
from gliofuse.models.heads import ClassificationHead, CoxHead, build_head
from gliofuse.models.registry import create_model, get_model_card, list_models

D, G, N, B = 37, 23, 11, 3
G_TUMOUR, G_MICRO = 13, 17
DIMS = {"wsi": D, "omics": G, "omics:tumour": G_TUMOUR, "omics:microenvironment": G_MICRO}
# tiny sizes for the 2-D subspace models (the defaults follow the paper: 50 x 50 maps, D = 128, 8 x 64 heads)
SUBSPACE_SMALL = {"dim": 16, "gene_hidden_dims": [12, 8], "grid_size": 8, "heads": 2, "dim_head": 8}
DEFORM_SMALL = {"offset_groups": 2, "downsample": 2, "offset_kernel": 3, "cpb_hidden": 8}


# gene-token models (mcat, m2f) read per-gene-set vectors; the test batch builds the two TME sets
TOKEN_SMALL = {"gene_sets": ["tumour", "microenvironment"], "dim": 16, "heads": 2, "ff_dim": 24}
SMALL_BY_FAMILY = {"mcat": TOKEN_SMALL, "m2f": TOKEN_SMALL, "mil": {"dim": 16, "heads": 2}}


def small(model_name: str) -> dict[str, object]:
    """Small overrides of a registered model (keys of its card only)."""
    card = get_model_card(model_name)
    if not model_name.startswith("subspace_fusion"):
        return {k: v for k, v in SMALL_BY_FAMILY.get(card.family, {}).items() if k in card.defaults}
    return {k: v for k, v in {**SUBSPACE_SMALL, **DEFORM_SMALL}.items() if k in card.defaults}


def _samples(n_patches: list[int], seed: int = 0) -> list[PatientSample]:
    gen = torch.Generator().manual_seed(seed)
    return [PatientSample(patient_id=f"TCGA-00-{i:04d}", wsi=torch.randn(n, D, generator=gen),
                          omics=torch.randn(G, generator=gen), time_days=100.0 + i, event=1.0, label=i % 3,
                          wsi_pos=torch.stack([torch.arange(n) // 4, torch.arange(n) % 4], dim=1),
                          omics_sets={"tumour": torch.randn(G_TUMOUR, generator=gen),
                                      "microenvironment": torch.randn(G_MICRO, generator=gen)})
            for i, n in enumerate(n_patches)]


@pytest.fixture(params=list_models())
def model_name(request: pytest.FixtureRequest) -> str:
    return request.param


def test_forward_shapes_and_finite(model_name: str) -> None:
    torch.manual_seed(0)
    model = create_model(model_name, input_dims=DIMS, **small(model_name))
    batch = collate_bags(_samples([N, 5, 8]))
    out = model(batch)
    assert out.embedding.shape == (B, model.embed_dim)
    assert torch.isfinite(out.embedding).all()
    # modality embeddings are named by modality, or by the parts the model concatenates
    assert set(out.modality_embeddings) <= set(get_model_card(model_name).modalities) | set(model.embedding_parts())
    for emb in out.modality_embeddings.values():
        assert emb.shape[0] == B and torch.isfinite(emb).all()
    for name, sl in model.embedding_parts().items():
        torch.testing.assert_close(out.embedding[:, sl], out.modality_embeddings[name])
    for loss in out.aux_losses.values():
        assert loss.ndim == 0 and torch.isfinite(loss)


def test_backward_reaches_every_parameter(model_name: str) -> None:
    torch.manual_seed(1)
    model = create_model(model_name, input_dims=DIMS, **small(model_name))
    cox, clf = CoxHead(model.embed_dim), ClassificationHead(model.embed_dim, 3)
    model.train()
    out = model(collate_bags(_samples([N, 6, 9], seed=2)))
    loss = cox(out.embedding).pow(2).sum() + clf(out.embedding).pow(2).sum()
    loss = loss + sum((e * torch.randn_like(e)).sum() for e in out.modality_embeddings.values())
    loss = loss + sum(out.aux_losses.values())
    loss.backward()
    for name, p in [*model.named_parameters(), *(("cox." + n, q) for n, q in cox.named_parameters())]:
        assert p.grad is not None, f"{model_name}: no gradient for {name}"
        assert torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, f"{model_name}: zero gradient for {name}"


@pytest.mark.parametrize("model_name", list_models(modality="wsi"))
def test_masked_padding_leaves_output_unchanged(model_name: str) -> None:
    torch.manual_seed(3)
    model = create_model(model_name, input_dims=DIMS, **small(model_name)).eval()
    s = _samples([7])[0]
    plain = collate_bags([s])
    padded = Batch(wsi=torch.cat([plain.wsi, 1e3 * torch.randn(1, N - 7, D)], dim=1),
                   wsi_mask=torch.cat([plain.wsi_mask, torch.zeros(1, N - 7, dtype=torch.bool)], dim=1),
                   omics=plain.omics, patient_ids=plain.patient_ids, time_days=plain.time_days,
                   event=plain.event, label=plain.label, omics_sets=plain.omics_sets,
                   wsi_pos=None if plain.wsi_pos is None else torch.cat(
                       [plain.wsi_pos, torch.full((1, N - 7, 2), -1, dtype=torch.long)], dim=1))
    with torch.no_grad():
        torch.testing.assert_close(model(padded).embedding, model(plain).embedding, rtol=1e-5, atol=1e-5)


def test_patients_are_independent_in_eval(model_name: str) -> None:
    torch.manual_seed(4)
    model = create_model(model_name, input_dims=DIMS, **small(model_name)).eval()
    samples = _samples([N, 4, 9], seed=5)
    with torch.no_grad():
        together = model(collate_bags(samples)).embedding
        alone = torch.cat([model(collate_bags([s])).embedding for s in samples])
        reversed_ = model(collate_bags(samples[::-1])).embedding.flip(0)
    torch.testing.assert_close(together, alone, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(together, reversed_, rtol=1e-5, atol=1e-5)


def test_heads_shapes() -> None:
    emb = torch.randn(5, 13)
    assert build_head("survival", 13)(emb).shape == (5,)
    assert build_head("classification", 13, 3)(emb).shape == (5, 3)
    with pytest.raises(ValueError, match="n_classes"):
        ClassificationHead(13, 1)
    with pytest.raises(ValueError, match="unknown head kind"):
        build_head("regression", 13)
