import json
from pathlib import Path

import numpy as np
import pytest

from gliofuse.errors import InputDataError
from gliofuse.omics.matrix import read_omics_
from gliofuse.omics.rnaseq import build_expression_matrix_, choose_samples, read_star_counts

HEADER = "gene_id\tgene_name\tgene_type\tunstranded\tstranded_first\tstranded_second\ttpm_unstranded\tfpkm_unstranded\tfpkm_uq_unstranded\n"
N_ROWS = "".join(f"{n}\t\t\t10\t10\t10\t\t\t\n" for n in ("N_unmapped", "N_multimapping", "N_noFeature", "N_ambiguous"))


def write_star(path: Path, tpms: dict[str, float]) -> None:
    genes = [("ENSG00000000003.15", "TSPAN6", "protein_coding"), ("ENSG00000000005.6", "TNMD", "protein_coding"),
             ("ENSG00000000419.13", "DPM1", "protein_coding"), ("ENSG00000230021.9", "AL669831.3", "lncRNA")]
    lines = ["# gene-model: GENCODE v36\n", HEADER, N_ROWS]
    for gid, name, gtype in genes:
        t = tpms.get(name, 0.0)
        lines.append(f"{gid}\t{name}\t{gtype}\t{int(t * 10)}\t0\t0\t{t:.4f}\t{t / 2:.4f}\t{t / 3:.4f}\n")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(lines))


def _hit(fid, pid, sample, stype="Primary Tumor"):
    return {"id": fid, "file_id": fid, "file_name": f"{fid}.rna_seq.augmented_star_gene_counts.tsv",
            "cases": [{"submitter_id": pid, "project": {"project_id": "TCGA-LGG"},
                       "samples": [{"sample_type": stype, "submitter_id": sample}]}]}


def test_read_star_drops_summary_rows_and_versions(tmp_path):
    write_star(tmp_path / "a.tsv", {"TSPAN6": 5.0})
    df = read_star_counts(tmp_path / "a.tsv", value_column="tpm_unstranded")
    assert list(df.index) == ["ENSG00000000003", "ENSG00000000005", "ENSG00000000419", "ENSG00000230021"]
    assert df.loc["ENSG00000000003", "value"] == 5.0


def test_read_star_names_missing_column(tmp_path):
    (tmp_path / "bad.tsv").write_text("gene_id\tgene_name\nENSG1.1\tX\n")
    with pytest.raises(InputDataError, match="lacks column"):
        read_star_counts(tmp_path / "bad.tsv", value_column="tpm_unstranded")


def test_choose_samples_prefers_primary_and_lowest_vial():
    hits = [_hit("f3", "TCGA-AA-0001", "TCGA-AA-0001-02A", "Recurrent Tumor"),
            _hit("f2", "TCGA-AA-0001", "TCGA-AA-0001-01B"), _hit("f1", "TCGA-AA-0001", "TCGA-AA-0001-01A"),
            _hit("f4", "TCGA-AA-0002", "TCGA-AA-0002-02A", "Recurrent Tumor")]
    df = choose_samples(hits, source="x")
    assert df["file_id"].tolist() == ["f1"]  # patient 0002 has no primary tumour


def test_build_matrix_end_to_end(tmp_path):
    root = tmp_path / "root"
    hits = []
    for i, (pid, t) in enumerate([("TCGA-AA-0002", 3.0), ("TCGA-AA-0001", 7.0)]):
        fid = f"uuid-{i}"
        hits.append(_hit(fid, pid, pid + "-01A"))
        write_star(root / "rnaseq" / fid / f"{fid}.rna_seq.augmented_star_gene_counts.tsv", {"TSPAN6": t, "DPM1": 1.0})
    (root / "metadata").mkdir(parents=True)
    (root / "metadata" / "files_rnaseq.json").write_text(json.dumps({"data": {"hits": hits}}))
    out = tmp_path / "expr.h5"
    shape = build_expression_matrix_(files_json=root / "metadata" / "files_rnaseq.json", rnaseq_dir=root / "rnaseq", value_column="tpm_unstranded", gene_types=["protein_coding"],
                                     log_transform=True, out_h5=out, out_samples=tmp_path / "s.tsv", config={})
    assert shape == (2, 3)  # lncRNA filtered out
    m = read_omics_(out)
    values = m.values
    assert m.patients == ("TCGA-AA-0001", "TCGA-AA-0002")
    assert m.genes[0] == "ENSG00000000003" and m.gene_names[0] == "TSPAN6"
    assert values[0, 0] == pytest.approx(np.log2(8.0)) and values[1, 0] == pytest.approx(np.log2(4.0))


def test_build_matrix_names_missing_file(tmp_path):
    root = tmp_path / "root"
    (root / "metadata").mkdir(parents=True)
    (root / "metadata" / "files_rnaseq.json").write_text(json.dumps({"data": {"hits": [_hit("gone", "TCGA-AA-0001", "TCGA-AA-0001-01A")]}}))
    with pytest.raises(InputDataError, match="missing.*gone"):
        build_expression_matrix_(files_json=root / "metadata" / "files_rnaseq.json", rnaseq_dir=root / "rnaseq", value_column="tpm_unstranded", gene_types=["protein_coding"],
                                 log_transform=True, out_h5=tmp_path / "e.h5", out_samples=tmp_path / "s.tsv", config={})
    assert not (tmp_path / "e.h5").exists()
