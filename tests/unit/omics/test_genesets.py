"""Shipped gene sets: names, provenance-checked content and matching against a matrix's gene_names."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from gliofuse.errors import ConfigError, InputDataError
from gliofuse.omics import genesets


def test_files_match_their_documented_md5():
    readme = genesets.data_file("README.md").read_text()
    for name in (genesets.MCAT_FILE, genesets.TME_FILE):
        digest = hashlib.md5(genesets.data_file(name).read_bytes()).hexdigest()
        assert digest in readme, f"{name}: md5 {digest} not in the README (update the provenance)"


def test_names_and_sizes():
    names = genesets.available_gene_sets()
    assert names[0] == "all"
    assert {"tumour", "microenvironment", "tumour.proliferation", "microenvironment.myeloid"} <= set(names)
    sizes = {f: len(genesets.gene_set(f"mcat.{f}")) for f in genesets.MCAT_FAMILIES}
    assert sizes == {"tumor_suppressor_genes": 82, "oncogenes": 328, "protein_kinases": 513,
                     "cell_differentiation_markers": 443, "transcription_factors": 1536,
                     "cytokines_and_growth_factors": 452}
    tumour, micro = set(genesets.gene_set("tumour")), set(genesets.gene_set("microenvironment"))
    assert len(tumour) == 50 and len(micro) == 58 and not tumour & micro
    assert "IDH1" in genesets.gene_set("mcat.oncogenes")
    with pytest.raises(ConfigError, match="available"):
        genesets.gene_set("nope")
    with pytest.raises(ConfigError):
        genesets.gene_set_group("nope")


def test_demo_programs_are_covered():
    from gliofuse.demo.expression import GENE_SETS

    assert set(GENE_SETS["tumour"]) | set(GENE_SETS["idh"]) <= set(genesets.gene_set("tumour"))
    assert set(GENE_SETS["micro"]) <= set(genesets.gene_set("microenvironment"))


def test_matching_against_gene_names():
    names = ["EGFR", "CD163", "TSPAN6", "MKI67", "EGFR", "C1orf5"]
    assert genesets.match_gene_set("all", names).tolist() == list(range(6))
    assert genesets.match_gene_set("tumour", names).tolist() == [0, 3, 4]
    assert genesets.match_gene_set("microenvironment", names).tolist() == [1]
    idx = genesets.match_gene_sets(genesets.gene_set_group("tme"), names)
    assert set(idx) == {"tumour", "microenvironment"} and all(v.dtype == np.int64 for v in idx.values())
    with pytest.raises(InputDataError, match="only 0"):
        genesets.match_gene_set("microenvironment.lymphoid", names)


def test_matching_a_real_matrix(tmp_path):
    import h5py

    path = tmp_path / "expression.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("gene_names", data=np.array(["TP53", "PTEN", "XYZ"], dtype="S"))
    names = genesets.read_gene_names_(path)
    assert genesets.match_gene_set("mcat.tumor_suppressor_genes", names).tolist() == [0, 1]
