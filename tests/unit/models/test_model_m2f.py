"""M2F: co-attention extractor, joint grade + survival training, loss-weighting declarations, variants."""

from __future__ import annotations

import pytest
import torch

from gliofuse.data.batch import Batch, PatientSample
from gliofuse.data.collate import collate_bags
from gliofuse.errors import ConfigError
from gliofuse.models.heads import ClassificationHead, CoxHead
from gliofuse.models.registry import create_model, get_model_card
from gliofuse.training.losses import cox_ph_loss, cross_entropy
from gliofuse.training.weighting import FixedWeighting, UncertaintyWeighting, build_task_weighting

D, G, B = 23, 17, 8
SETS = {"tumour": 7, "microenvironment": 9, "mcat.oncogenes": 5}
DIMS = {"wsi": D, "omics": G, **{f"omics:{k}": v for k, v in SETS.items()}}
SMALL = {"gene_sets": list(SETS), "dim": 16, "heads": 2, "ff_dim": 24}


def toy_batch(seed: int = 0) -> Batch:
    gen = torch.Generator().manual_seed(seed)
    sizes = [6, 9, 3, 12, 5, 7, 4, 8]
    return collate_bags([PatientSample(
        patient_id=f"P{i}", wsi=torch.randn(n, D, generator=gen), omics=torch.randn(G, generator=gen),
        time_days=float(30 + 41 * i), event=float(i % 4 != 3), label=(i % 3) if i != 5 else -1,
        omics_sets={k: torch.randn(v, generator=gen) for k, v in SETS.items()}) for i, n in enumerate(sizes)])


def build(name: str = "m2f", seed: int = 0, **kw: object) -> torch.nn.Module:
    torch.manual_seed(seed)
    return create_model(name, input_dims=DIMS, **{**SMALL, **kw})


@pytest.mark.parametrize("fusion", ["concat", "kronecker"])
def test_shapes_and_attention(fusion: str) -> None:
    batch = toy_batch()
    out = build(fusion=fusion).eval()(batch)
    assert out.embedding.shape == (B, 16)
    assert out.modality_embeddings["wsi"].shape == out.modality_embeddings["omics"].shape == (B, 16)
    assert out.attention is not None and out.attention.shape == (B, 12)
    torch.testing.assert_close(out.attention.sum(dim=1), torch.ones(B))
    assert (out.attention[~batch.wsi_mask] == 0).all()


def test_joint_loss_falls_and_both_heads_learn() -> None:
    """L = L_surv + lambda * L_grade on a fixed batch; patients without a grade (-1) are masked."""
    batch = toy_batch(seed=1)
    model = build(seed=2).eval()
    cox, grade = CoxHead(16), ClassificationHead(16, 3)
    opt = torch.optim.Adam([*model.parameters(), *cox.parameters(), *grade.parameters()], lr=3e-3)
    first = last = None
    for _ in range(30):
        z = model(batch).embedding
        ls, lg = cox_ph_loss(cox(z), batch.time_days, batch.event), cross_entropy(grade(z), batch.label)
        loss = ls + 0.5 * lg
        opt.zero_grad()
        loss.backward()
        opt.step()
        first = first or (float(ls.detach()), float(lg.detach()))
        last = (float(ls.detach()), float(lg.detach()))
    assert last[0] < 0.8 * first[0] and last[1] < 0.5 * first[1], (first, last)


def test_fixed_seed_reproduces_predictions() -> None:
    batch = toy_batch(seed=3)
    with torch.no_grad():
        a, b = build(seed=4).eval()(batch).embedding, build(seed=4).eval()(batch).embedding
        c = build(seed=5).eval()(batch).embedding
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert not torch.allclose(a, c)


def test_variants_declare_their_loss_weighting() -> None:
    assert build("m2f").loss_weighting() == "fixed"
    assert build("m2f_uncertainty").loss_weighting() == "uncertainty"
    assert build("m2f_single_task").loss_weighting() == "fixed"
    for name in ("m2f_uncertainty", "m2f_single_task"):
        assert get_model_card(name).ablation_of == "m2f"
    assert "loss_weighting" not in get_model_card("m2f_uncertainty").defaults

    class Obj:
        def __init__(self, w: float) -> None:
            self.weight = w

    objectives = {"survival": Obj(1.0), "grade": Obj(0.5)}
    assert isinstance(build_task_weighting(build("m2f_uncertainty"), objectives), UncertaintyWeighting)
    fixed = build_task_weighting(build("m2f"), objectives)
    assert isinstance(fixed, FixedWeighting) and fixed.weights == {"survival": 1.0, "grade": 0.5}
    # one task: nothing to balance
    assert isinstance(build_task_weighting(build("m2f_uncertainty"), {"survival": Obj(1.0)}), FixedWeighting)


def test_bad_options_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="fusion must be one of"):
        build(fusion="bilinear")
    with pytest.raises(ConfigError, match=r"m2f needs omics vectors for gene sets"):
        create_model("m2f", input_dims={"wsi": D, "omics": G}, dim=16, heads=2, ff_dim=24)
