"""Importing a gene x sample matrix with a declared unit (gliofuse.omics.matrix_import) onto the training gene space.

The matrices are built from demo STAR - Counts files (gliofuse.demo.expression): every column of a STAR file is
one unit of the same reads, so each unit must import to the same TPM.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from gliofuse.cli import main
from gliofuse.config import OmicsConfig
from gliofuse.demo.expression import gene_model, log_expression, simulate_star_counts
from gliofuse.errors import InputDataError
from gliofuse.omics.matrix import read_omics_, write_omics_h5_
from gliofuse.omics.matrix_import import import_expression_matrix_

N_GENES, SAMPLES = 120, ("P-03", "P-01", "P-02", "P-04")
#: STAR files print 4 decimals; FPKM -> TPM renormalises those rounded values
ATOL = 2e-3


@pytest.fixture(scope="module")
def star(tmp_path_factory: pytest.TempPathFactory) -> dict[str, pd.DataFrame | Path]:
    """Each STAR column as a genes x samples table (versioned Ensembl ids), the annotation, one STAR file."""
    d = tmp_path_factory.mktemp("star")
    model = gene_model(N_GENES)
    rng = np.random.default_rng(7)
    tables = []
    for i, _ in enumerate(SAMPLES):
        x = log_expression(model, rng, z_tumour=float(i) - 1.5, z_micro=0.5, idh_mutant=i % 2 == 0, codel=False,
                           cdkn2a_deleted=False, chr7_gain_chr10_loss=i == 3)
        path = d / f"s{i}.tsv"
        path.write_text(simulate_star_counts(model, rng, x))
        t = pd.read_csv(path, sep="\t", comment="#")
        tables.append(t[~t["gene_id"].str.startswith("N_")].reset_index(drop=True))
    out: dict[str, pd.DataFrame | Path] = {"annotation": tables[0][["gene_id", "gene_name", "gene_type"]],
                                           "star_file": d / "s0.tsv"}
    for col, unit in (("unstranded", "counts"), ("tpm_unstranded", "tpm"), ("fpkm_unstranded", "fpkm"),
                      ("fpkm_uq_unstranded", "fpkm_uq")):
        out[unit] = pd.DataFrame({s: t[col].to_numpy(float) for s, t in zip(SAMPLES, tables, strict=True)},
                                 index=tables[0]["gene_id"].to_numpy())
    return out


@pytest.fixture(scope="module")
def reference(star: dict, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A training matrix: protein-coding genes, sorted unversioned ids, log2(TPM + 1), other patients."""
    ann = star["annotation"]
    pc = ann[ann["gene_type"] == "protein_coding"].assign(gene=lambda a: a["gene_id"].str.split(".").str[0])
    pc = pc.sort_values("gene")
    rng = np.random.default_rng(0)
    values = rng.uniform(0, 8, size=(5, len(pc))).astype(np.float32)
    path = tmp_path_factory.mktemp("ref") / "expression.h5"
    write_omics_h5_(path, values=values, patients=np.array([f"TRAIN-{i}" for i in range(5)]),
                    genes=pc["gene"].to_numpy(), gene_names=pc["gene_name"].to_numpy(), value_column="tpm_unstranded",
                    log_transform=True, prov={})
    return path


def _expected(star: dict, genes: tuple[str, ...]) -> np.ndarray:
    """log2(TPM + 1) of the STAR files, (samples sorted, genes)."""
    tpm = star["tpm"].rename(index=lambda g: g.split(".")[0])
    return np.log2(tpm.loc[list(genes), sorted(SAMPLES)].to_numpy().T + 1.0)


def _write(df: pd.DataFrame, path: Path, *, symbols: pd.Series | None = None) -> Path:
    out = df.copy()
    if symbols is not None:
        out.index = symbols.to_numpy()
    out.index.name = "gene"
    out.to_csv(path, sep="\t" if path.suffix == ".tsv" else ",", float_format="%.10g")
    return path


@pytest.mark.parametrize(("unit", "base", "pseudocount"), [
    ("tpm", "tpm", None), ("fpkm", "fpkm", None), ("fpkm_uq", "fpkm_uq", None), ("log2_tpm", "tpm", 1.0),
    ("log2_fpkm", "fpkm", 0.01), ("log2_fpkm_uq", "fpkm_uq", 1.0)])
def test_each_unit_imports_to_the_same_tpm(star: dict, reference: Path, tmp_path: Path, unit: str, base: str,
                                           pseudocount: float | None) -> None:
    df = star[base] if pseudocount is None else np.log2(star[base] + pseudocount)
    path = _write(df, tmp_path / "m.csv")
    report = import_expression_matrix_(path, unit=unit, pseudocount=pseudocount, gene_id="ensembl",
                                       reference=reference, out_h5=tmp_path / "out.h5")
    m, ref = read_omics_(tmp_path / "out.h5"), read_omics_(reference)
    assert m.genes == ref.genes and m.gene_names == ref.gene_names and m.patients == tuple(sorted(SAMPLES))
    assert m.value_column == "tpm_unstranded" and m.log_transform
    np.testing.assert_allclose(m.values, _expected(star, ref.genes), atol=ATOL)
    assert report.n_missing_genes == 0 and report.n_duplicate_ids == 0 and report.conversion.endswith("log2(x + 1)")


def test_without_reference_the_matrix_sets_the_gene_space(star: dict, tmp_path: Path) -> None:
    path = _write(star["fpkm"], tmp_path / "m.tsv")
    cfg = OmicsConfig(log_transform=False)
    import_expression_matrix_(path, unit="fpkm", gene_id="ensembl", gene_table=star["star_file"], cfg=cfg,
                              out_h5=tmp_path / "out.h5")
    m = read_omics_(tmp_path / "out.h5")
    ann = star["annotation"]
    pc = sorted(g.split(".")[0] for g in ann.loc[ann["gene_type"] == "protein_coding", "gene_id"])
    assert list(m.genes) == pc and not m.log_transform and all(m.gene_names)
    np.testing.assert_allclose(np.log2(m.values + 1.0), _expected(star, m.genes), atol=ATOL)


def test_symbols_and_ensembl_ids_give_the_same_matrix(star: dict, reference: Path, tmp_path: Path) -> None:
    ann = star["annotation"]
    by_id = _write(star["tpm"], tmp_path / "ids.tsv")
    by_symbol = _write(star["tpm"], tmp_path / "symbols.tsv", symbols=ann["gene_name"])
    results = {}
    for name, path, gene_id in (("ids", by_id, "ensembl"), ("symbols", by_symbol, "symbol")):
        for ref in (reference, None):
            out = tmp_path / f"{name}-{ref is not None}.h5"
            import_expression_matrix_(path, unit="tpm", gene_id=gene_id, reference=ref,
                                      gene_table=None if ref else star["star_file"], out_h5=out)
            results[name, ref is not None] = read_omics_(out)
    for with_ref in (True, False):
        a, b = results["ids", with_ref], results["symbols", with_ref]
        assert a.genes == b.genes and a.gene_names == b.gene_names
        np.testing.assert_array_equal(a.values, b.values)
    with pytest.raises(InputDataError, match=r"symbols\.tsv: declared Ensembl gene ids.*declare gene ids as symbol"):
        import_expression_matrix_(by_symbol, unit="tpm", gene_id="ensembl", reference=reference,
                                  out_h5=tmp_path / "x.h5")
    with pytest.raises(InputDataError, match=r"gene ids are symbols; map them with --reference .* --gene-table"):
        import_expression_matrix_(by_symbol, unit="tpm", gene_id="symbol", out_h5=tmp_path / "x.h5")


def test_duplicated_symbols_are_summed(star: dict, reference: Path, tmp_path: Path,
                                       caplog: pytest.LogCaptureFixture) -> None:
    ann = star["annotation"]
    ref = read_omics_(reference)
    gene = ref.gene_names[3]
    row = int(np.flatnonzero(ann["gene_name"].to_numpy() == gene)[0])
    tpm = star["tpm"]
    split = pd.concat([tpm, tpm.iloc[[row]] * 0.25])  # the gene's TPM split over two rows: 1 + 0.25 -> rescaled
    split.iloc[row] *= 0.75
    symbols = pd.concat([ann["gene_name"], ann["gene_name"].iloc[[row]]])
    path = _write(split, tmp_path / "dup.tsv", symbols=symbols)
    with caplog.at_level(logging.WARNING):
        report = import_expression_matrix_(path, unit="tpm", gene_id="symbol", reference=reference,
                                           out_h5=tmp_path / "out.h5")
    assert report.n_duplicate_ids == 1 and report.duplicate_examples == [gene]
    assert f"1 duplicated gene id(s) summed, e.g. ['{gene}']" in caplog.text
    np.testing.assert_allclose(read_omics_(tmp_path / "out.h5").values, _expected(star, ref.genes), atol=1e-6)


def test_h5ad_matches_the_table(star: dict, reference: Path, tmp_path: Path) -> None:
    import anndata

    tpm = star["tpm"]
    var = pd.DataFrame({"ensembl_id": tpm.index.to_numpy()}, index=star["annotation"]["gene_name"].to_numpy())
    adata = anndata.AnnData(X=tpm.to_numpy().T.astype(np.float32), obs=pd.DataFrame(index=list(tpm.columns)), var=var)
    path = tmp_path / "m.h5ad"
    adata.write_h5ad(path)
    import_expression_matrix_(path, unit="tpm", gene_id="ensembl", gene_column="ensembl_id", reference=reference,
                              out_h5=tmp_path / "a.h5")
    import_expression_matrix_(path, unit="tpm", gene_id="symbol", reference=reference, out_h5=tmp_path / "b.h5")
    a, b = read_omics_(tmp_path / "a.h5"), read_omics_(tmp_path / "b.h5")
    np.testing.assert_allclose(a.values, _expected(star, a.genes), atol=1e-5)  # float32 X
    np.testing.assert_array_equal(a.values, b.values)
    with pytest.raises(InputDataError, match=r"h5ad .*m\.h5ad: var has no column 'gene_ids' .*'ensembl_id'"):
        import_expression_matrix_(path, unit="tpm", gene_id="ensembl", gene_column="gene_ids", reference=reference,
                                  out_h5=tmp_path / "c.h5")
    with pytest.raises(InputDataError, match=r"m\.h5ad: no layer 'counts'"):
        import_expression_matrix_(path, unit="counts", gene_id="symbol", layer="counts", out_h5=tmp_path / "c.h5")


def test_refused_units_name_the_file_and_the_fix(star: dict, reference: Path, tmp_path: Path) -> None:
    counts = _write(star["counts"], tmp_path / "counts.tsv")
    with pytest.raises(InputDataError, match=r"counts\.tsv: unit 'counts' cannot be converted to tpm "
                                             r"\(omics\.value_column = tpm_unstranded\) without gene lengths\. Give"):
        import_expression_matrix_(counts, unit="counts", gene_id="ensembl", reference=reference,
                                  out_h5=tmp_path / "x.h5")
    with pytest.raises(InputDataError, match=r"counts\.tsv: unknown unit 'rpkm'; declare one of \['counts'"):
        import_expression_matrix_(counts, unit="rpkm", gene_id="ensembl", reference=reference,
                                  out_h5=tmp_path / "x.h5")
    with pytest.raises(InputDataError, match=r"unit 'log2_tpm' is log2\(x \+ p\): declare the pseudocount"):
        import_expression_matrix_(counts, unit="log2_tpm", gene_id="ensembl", out_h5=tmp_path / "x.h5")
    with pytest.raises(InputDataError, match=r"unit 'tpm' cannot be converted to fpkm \(omics\.value_column = "
                                             r"fpkm_unstranded\)"):
        import_expression_matrix_(counts, unit="tpm", gene_id="ensembl", gene_table=star["star_file"],
                                  cfg=OmicsConfig(value_column="fpkm_unstranded"), out_h5=tmp_path / "x.h5")
    log_tpm = _write(np.log2(star["tpm"] + 1.0), tmp_path / "log.tsv")  # log values declared with a wrong pseudocount
    with pytest.raises(InputDataError, match=r"log\.tsv: declared log2\(tpm \+ 4\).*Check the declared pseudocount"):
        import_expression_matrix_(log_tpm, unit="log2_tpm", pseudocount=4, gene_id="ensembl", reference=reference,
                                  out_h5=tmp_path / "x.h5")
    # counts into a counts model are fine
    import_expression_matrix_(counts, unit="counts", gene_id="ensembl", gene_table=star["star_file"],
                              cfg=OmicsConfig(value_column="unstranded", log_transform=False), out_h5=tmp_path / "c.h5")
    m = read_omics_(tmp_path / "c.h5")
    assert m.value_column == "unstranded" and m.values.sum() > 0 and not (tmp_path / "x.h5").exists()


def test_missing_genes_filled_from_the_reference_up_to_a_fraction(star: dict, reference: Path, tmp_path: Path) -> None:
    ref = read_omics_(reference)
    drop = [g for g in star["tpm"].index if g.split(".")[0] in ref.genes[:2]]
    path = _write(star["tpm"].drop(index=drop), tmp_path / "m.tsv")
    report = import_expression_matrix_(path, unit="tpm", gene_id="ensembl", reference=reference,
                                       out_h5=tmp_path / "out.h5")
    m = read_omics_(tmp_path / "out.h5")
    assert report.n_missing_genes == 2 and report.missing_examples == list(ref.genes[:2])
    np.testing.assert_allclose(m.values[:, :2], np.broadcast_to(ref.values[:, :2].mean(axis=0), (4, 2)), rtol=1e-6)
    with pytest.raises(InputDataError, match=r"m\.tsv: 2 of \d+ genes .* missing .*more than --max-missing-fraction"):
        import_expression_matrix_(path, unit="tpm", gene_id="ensembl", reference=reference, max_missing_fraction=0.0,
                                  out_h5=tmp_path / "x.h5")


def test_reference_without_a_known_unit_is_refused(star: dict, tmp_path: Path) -> None:
    ref = tmp_path / "ref.h5"
    write_omics_h5_(ref, values=np.zeros((1, 1), np.float32), patients=np.array(["A"]), genes=np.array(["ENSG1"]),
                    gene_names=np.array(["X"]), value_column="rpkm", log_transform=True, prov={})
    path = _write(star["tpm"], tmp_path / "m.tsv")
    with pytest.raises(InputDataError, match=r"reference matrix .*ref\.h5: attribute value_column = 'rpkm'"):
        import_expression_matrix_(path, unit="tpm", gene_id="ensembl", reference=ref, out_h5=tmp_path / "x.h5")


def test_table_layout_errors_name_the_cell(star: dict, reference: Path, tmp_path: Path) -> None:
    df = star["tpm"].copy()
    transposed = df.T
    transposed.index.name = "sample"
    path = tmp_path / "t.csv"
    transposed.to_csv(path, float_format="%.10g")
    import_expression_matrix_(path, unit="tpm", gene_id="ensembl", orientation="genes-in-columns",
                              reference=reference, out_h5=tmp_path / "out.h5")
    np.testing.assert_allclose(read_omics_(tmp_path / "out.h5").values, _expected(star, read_omics_(reference).genes),
                               atol=1e-6)
    with pytest.raises(InputDataError, match=r"declared Ensembl gene ids, but .* do not look like Ensembl"):
        import_expression_matrix_(path, unit="tpm", gene_id="ensembl", reference=reference, out_h5=tmp_path / "x.h5")
    bad = df.astype(object)
    bad.iat[5, 2] = "n/a"
    with pytest.raises(InputDataError, match=rf"bad\.tsv: gene '{df.index[5]}', sample '{df.columns[2]}' holds 'n/a'"):
        import_expression_matrix_(_write(bad, tmp_path / "bad.tsv"), unit="tpm", gene_id="ensembl",
                                  reference=reference, out_h5=tmp_path / "x.h5")


def test_cli_import(star: dict, reference: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _write(star["fpkm_uq"], tmp_path / "m.tsv", symbols=star["annotation"]["gene_name"])
    out = tmp_path / "expression.h5"
    assert main(["omics", "import", "--matrix", str(path), "--unit", "fpkm_uq", "--gene-id", "symbol",
                 "--reference", str(reference), "--out", str(out)]) == 0
    np.testing.assert_allclose(read_omics_(out).values, _expected(star, read_omics_(reference).genes), atol=ATOL)
    assert main(["omics", "import", "--matrix", str(path), "--unit", "counts", "--gene-id", "symbol",
                 "--reference", str(reference), "--out", str(tmp_path / "x.h5")]) == 1
    assert "unit 'counts' cannot be converted to tpm" in capsys.readouterr().err
