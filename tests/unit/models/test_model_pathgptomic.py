"""Path-GPTOmic: frozen RNA foundation embeddings (files, fallback, smoothing), branches and policy declaration."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from gliofuse.data.batch import Batch, PatientSample
from gliofuse.data.collate import collate_bags
from gliofuse.errors import ConfigError, InputDataError
from gliofuse.models.registry import create_model, get_model_card
from gliofuse.omics import foundation
from gliofuse.training.policies import GradientModulation, build_policies
from tests.unit.models.fitting import cox_losses_on_fixed_batch

D, G, B, E = 21, 6, 8, 5
GENES = ["TP53", "EGFR", "ENSG00000141736.14", "PTEN", "NOTAGENE", "idh1"]
SMALL = {"snn_hidden_dims": [12, 8], "mlp_hidden": 16, "omics_dim": 10, "path_dim": 12, "path_heads": 2,
         "rna_dim": 7}


def toy_batch(seed: int = 0) -> Batch:
    gen = torch.Generator().manual_seed(seed)
    return collate_bags([PatientSample(
        patient_id=f"P{i}", wsi=torch.randn(n, D, generator=gen), omics=torch.randn(G, generator=gen),
        time_days=float(20 + 53 * i), event=float(i % 3 != 1), label=i % 3)
        for i, n in enumerate([5, 8, 3, 9, 6, 4, 7, 2])])


def build(name: str = "path_gptomic", seed: int = 0, **kw: object) -> torch.nn.Module:
    torch.manual_seed(seed)
    return create_model(name, input_dims={"wsi": D, "omics": G}, **{**SMALL, **kw})


@pytest.fixture
def table_file(tmp_path: Path) -> Path:
    """A .pt gene-embedding table keyed by symbols and one Ensembl id (ERBB2) with a version."""
    rng = np.random.default_rng(0)
    genes = ["TP53", "EGFR", "ENSG00000141736.7", "PTEN", "IDH1", "ATRX", "CD68", "GFAP"]
    path = tmp_path / "genes.pt"
    torch.save({"genes": genes, "embeddings": torch.from_numpy(rng.standard_normal((8, E)).astype(np.float32))}, path)
    return path


def test_shapes_parts_and_attention() -> None:
    batch = toy_batch()
    model = build().eval()
    out = model(batch)
    assert out.embedding.shape == (B, 22) and model.embed_dim == 22
    assert model.embedding_parts() == {"omics": slice(0, 10), "wsi": slice(10, 22)}
    torch.testing.assert_close(out.embedding[:, :10], out.modality_embeddings["omics"])
    assert out.attention is not None and out.attention.shape == (B, 9)
    torch.testing.assert_close(out.attention.sum(dim=1), torch.ones(B))
    assert (out.attention[~batch.wsi_mask] == 0).all()


def test_cox_loss_falls_on_a_fixed_batch() -> None:
    batch = toy_batch(seed=1)
    losses = cox_losses_on_fixed_batch(build(seed=1), batch, steps=30)
    assert losses[-1] < 0.7 * losses[0], losses


def test_fixed_seed_reproduces_predictions_and_the_fallback_ignores_the_global_seed() -> None:
    batch = toy_batch(seed=2)
    a, b, c = build(seed=3).eval(), build(seed=3).eval(), build(seed=4).eval()
    with torch.no_grad():
        torch.testing.assert_close(a(batch).embedding, b(batch).embedding, rtol=0, atol=0)
        assert not torch.allclose(a(batch).embedding, c(batch).embedding)
    # the frozen fallback projection depends on rna_seed only, never on the training seed
    torch.testing.assert_close(a.rna.rows, c.rna.rows, rtol=0, atol=0)
    torch.testing.assert_close(a.rna.rows, torch.from_numpy(foundation.fallback_projection(G, 7, seed=0)))
    assert not torch.equal(build(rna_seed=1).rna.rows, a.rna.rows)
    assert "rna.rows" not in a.state_dict()  # rebuilt from the seed / weights file, never checkpointed


def test_fallback_provenance_and_trainable_mlp_a() -> None:
    model = build()
    prov = model.rna_provenance
    assert prov["encoder"] == "fallback_random_projection" and prov["smoothing"] == {"ran": False}
    assert prov["mlp_a"] == "trained in stage 2"
    assert all(p.requires_grad for p in model.mlp_a.parameters())
    assert "fallback" in get_model_card("path_gptomic").notes


def test_gene_embedding_formats_are_read_and_matched(tmp_path: Path, table_file: Path) -> None:
    table = foundation.load_gene_embeddings_(table_file)
    assert table.dim == E and table.sha256.startswith("sha256:")
    rows, matched = table.lookup(GENES)
    # symbols exact or case-insensitive, Ensembl ids without their version; unknown genes are zero rows
    assert matched.tolist() == [True, True, True, True, False, True]
    np.testing.assert_array_equal(rows[2], table.vectors[2])
    np.testing.assert_array_equal(rows[5], table.vectors[4])
    assert not rows[4].any()
    # .npy + sidecar, .npz, and an scGPT-style state dict with vocab.json give the same table
    np.save(tmp_path / "t.npy", table.vectors)
    (tmp_path / "t.npy.genes.txt").write_text("\n".join(table.genes) + "\n")
    np.savez(tmp_path / "t.npz", genes=np.array(table.genes), embeddings=table.vectors)
    sc = tmp_path / "scgpt"
    sc.mkdir()
    torch.save({"encoder.embedding.weight": torch.from_numpy(table.vectors), "other.bias": torch.zeros(3)},
               sc / "best_model.pt")
    (sc / "vocab.json").write_text(json.dumps({g: i for i, g in enumerate(table.genes)}))
    for path in (tmp_path / "t.npy", tmp_path / "t.npz", sc / "best_model.pt"):
        other = foundation.load_gene_embeddings_(path)
        assert other.genes == table.genes
        np.testing.assert_array_equal(other.vectors, table.vectors)
    np.save(tmp_path / "bare.npy", table.vectors)
    with pytest.raises(InputDataError, match="has no gene names"):
        foundation.load_gene_embeddings_(tmp_path / "bare.npy")
    with pytest.raises(ConfigError, match="does not exist"):
        foundation.load_gene_embeddings_(tmp_path / "missing.pt")


def test_table_encoder_needs_bound_genes(table_file: Path) -> None:
    batch = toy_batch()
    model = build(rna_encoder=str(table_file)).eval()
    assert model.rna_provenance["encoder"] == "gene_embedding_table"
    assert model.rna_provenance["sha256"] == foundation.file_sha256_(table_file)
    with pytest.raises(ConfigError, match="bind_omics_genes"):
        model(batch)
    model.bind_omics_genes({"omics": GENES})
    assert model.rna_provenance["n_genes_matched"] == 5
    table = foundation.load_gene_embeddings_(table_file)
    expect = batch.omics @ torch.from_numpy(table.lookup(GENES)[0]) / 5 ** 0.5
    torch.testing.assert_close(model.rna(batch.omics), expect)
    assert model(batch).embedding.shape == (B, 22)


def _single_cell_file(path: Path, genes: list[str]) -> Path:
    """Two cell types with opposite programs over the table genes (counts)."""
    rng = np.random.default_rng(1)
    n = 60
    kind = np.arange(n) % 2
    base = rng.poisson(5.0, size=(n, len(genes))).astype(np.float64)
    base[kind == 0, :3] += 40
    base[kind == 1, 3:6] += 40
    np.savez(path, X=base, genes=np.array(genes), cell_type=np.where(kind == 0, "astrocyte", "microglia"))
    return path


def test_smoothing_runs_with_weights_and_single_cell_data_and_freezes_mlp_a(tmp_path: Path, table_file: Path) -> None:
    sc = _single_cell_file(tmp_path / "sc.npz", ["TP53", "EGFR", "PTEN", "IDH1", "ATRX", "CD68", "UNKNOWN"])
    model = build(rna_encoder=str(table_file), sc_reference=str(sc), smoothing_steps=150)
    smooth = model.rna_provenance["smoothing"]
    assert smooth["ran"] and smooth["n_cells"] == 60 and smooth["n_genes_matched"] == 6
    assert smooth["cell_types"] == ["astrocyte", "microglia"]
    assert smooth["loss_last"] < 0.5 * smooth["loss_first"], smooth
    assert model.rna_provenance["mlp_a"] == "frozen (smoothed)"
    assert not any(p.requires_grad for p in model.mlp_a.parameters())
    ids = {id(p) for p in model.gradient_groups()["omics"]}
    assert not ids & {id(p) for p in model.mlp_a.parameters()}
    model.train()
    assert model.training and not model.mlp_a.training  # frozen MLP-A keeps dropout off
    # without foundation weights the smoothing stage cannot run: the fallback is used and says so
    fallback = build(sc_reference=str(sc))
    assert fallback.rna_provenance["smoothing"] == {"ran": False}
    assert fallback.rna_provenance["encoder"] == "fallback_random_projection"


def test_policy_declarations_of_the_variants() -> None:
    policies = build_policies(build())
    assert len(policies) == 1 and isinstance(policies[0], GradientModulation)
    gm = policies[0]
    assert (gm.parts, gm.score, gm.mode, gm.alpha) == (("omics", "wsi"), "sum_prob", "auto", 1.0)
    assert build_policies(build("path_gptomic_no_gm"))[0].mode == "off"
    assert build_policies(build(gm_score="mean_logprob", gm_mode="lr"))[0].score == "mean_logprob"
    no_fm = create_model("path_gptomic_no_fm", input_dims={"wsi": D, "omics": G},
                         **{k: v for k, v in SMALL.items() if k != "rna_dim"})
    assert no_fm.rna is None and no_fm.mlp_a is None and no_fm.rna_provenance["encoder"] == "none"
    with pytest.raises(ConfigError, match="gm_score"):
        build(gm_score="max")
