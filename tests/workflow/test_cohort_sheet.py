"""cohort: sheet: the whole pipeline planned from an own slide sheet and clinical table (non-TCGA ids), and a bad
sheet or clinical table stopping the workflow at parse time, naming the row and the column."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from tests.workflow.conftest import job_counts, snakemake, write_config

SLIDES = {"hospA_001": "CMU-1-Small-Region.svs", "hospA_002": "tcga-cr-7395-01a-01-ts1.svs"}
CLINICAL = "PatID,OS_months,Vital,IDH,Codel,Grade\nA1,12,dead,wildtype,,G4\nA2,40,alive,mutant,codeleted,G2\n"


def _own_cohort(root: Path, shared: Path, clinical: str = CLINICAL) -> dict:
    """Two real slides renamed to hospital ids, a clinical CSV with own column names; STAR layout for RNA."""
    (root / "cohort" / "slides").mkdir(parents=True)
    for sid, name in SLIDES.items():
        (root / "cohort" / "slides" / f"{sid}.svs").symlink_to(shared / "slides" / name)
    (root / "cohort" / "metadata").mkdir()
    (root / "cohort" / "metadata" / "files_rnaseq.json").write_text("[]")
    (root / "cohort" / "rnaseq").mkdir()
    pd.DataFrame({"patient_id": ["A1", "A2"], "slide_id": list(SLIDES),
                  "slide_path": [f"slides/{s}.svs" for s in SLIDES]}).to_csv(root / "cohort" / "slides.csv", index=False)
    (root / "cohort" / "clinical.csv").write_text(clinical)
    return {
        "cohort": "sheet",
        "sheet": {"slides": "../cohort/slides.csv", "clinical": "../cohort/clinical.csv", "name": "hospA",
                  "time_unit": "months",
                  "columns": {"patient_id": "PatID", "survival_time": "OS_months", "event": "Vital", "idh": "IDH",
                              "codel": "Codel", "histologic_grade": "Grade"}},
        "data": {"n_folds": 2, "val_fraction": 0.2},
        "training": {"models": ["abmil_snn_concat"], "tasks": ["survival", "diagnosis"], "model_training": {}},
    }


def test_an_own_cohort_sheet_plans_the_whole_pipeline(tmp_path, shared_data):
    cfg = _own_cohort(tmp_path, shared_data)
    run = tmp_path / "run"
    write_config(run, cfg)
    dry = snakemake(run, "-n", timeout=300).stdout
    counts = job_counts(dry)
    assert counts["cohort_sheet"] == 1 and counts["labels_build"] == 1 and counts["data_splits"] == 1
    # 2 slides: one features shard; training.folds_per_job is the default (one): a job per task x fold
    assert counts["wsi_patch"] == 2 and counts["features_extract"] == 1 and counts["train_fold"] == 4
    assert counts["report_markdown"] == 1 and "demo_generate" not in counts and "gdc_query" not in counts
    assert "../cohort/slides/hospA_001.svs" in dry  # the slide file comes from the sheet
    # the first stages for real: the workflow's sheet copy and the label table from the own clinical table
    snakemake(run, "results/cohort/slides.tsv", "results/labels/labels.tsv", timeout=300)
    sheet = pd.read_csv(run / "results" / "cohort" / "slides.tsv", sep="\t")
    assert sheet["slide_id"].tolist() == list(SLIDES) and sheet["patient_id"].tolist() == ["A1", "A2"]
    labels = pd.read_csv(run / "results" / "labels" / "labels.tsv", sep="\t")
    assert labels["who2021_class"].tolist() == ["glioblastoma_idhwt", "oligodendroglioma_idhmut_codel"]
    assert labels["project"].tolist() == ["hospA", "hospA"] and labels["event"].tolist() == [1, 0]


@pytest.mark.parametrize("breakage,needles", [
    ("duplicate", ["slides.csv, row 2 (line 3), column 'slide_id'", "duplicate slide id 'hospA_001'"]),
    ("missing_file", ["slides.csv, row 2 (line 3), column 'slide_path'", "does not exist"]),
    ("missing_column", ["slides.csv, row 0 (header line 1), column(s) ['patient_id']", "missing"]),
    ("unknown_unit", ["clinical.csv, row 1 (line 2), column 'Unit'", "unknown value 'weeks'"]),
])
def test_a_bad_sheet_stops_the_workflow_before_any_job(tmp_path, shared_data, breakage, needles):
    clinical = CLINICAL
    if breakage == "unknown_unit":
        clinical = "PatID,OS_months,Unit,Vital\nA1,12,weeks,dead\nA2,40,months,alive\n"
    cfg = _own_cohort(tmp_path, shared_data, clinical=clinical)
    sheet = tmp_path / "cohort" / "slides.csv"
    df = pd.read_csv(sheet)
    if breakage == "duplicate":
        df.loc[1, "slide_id"] = "hospA_001"
    elif breakage == "missing_file":
        df.loc[1, "slide_path"] = "slides/nope.svs"
    elif breakage == "missing_column":
        df = df.drop(columns="patient_id")
    else:
        cfg["sheet"]["columns"] = {"patient_id": "PatID", "survival_time": "OS_months", "event": "Vital",
                                   "time_unit": "Unit"}
    df.to_csv(sheet, index=False)
    run = tmp_path / "run"
    write_config(run, cfg)
    proc = snakemake(run, "-n", check=False, timeout=300)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert all(n in out for n in needles), out[-2000:]
    assert "Job stats" not in out  # nothing was planned


def test_sheet_expression_imports_the_matrix_instead_of_star_files(tmp_path, shared_data):
    cfg = _own_cohort(tmp_path, shared_data)
    (tmp_path / "cohort" / "tpm.tsv").write_text("gene\tA1\tA2\nENSG00000141510\t3.5\t7.0\n")
    cfg["sheet"]["expression"] = {"path": "../cohort/tpm.tsv", "unit": "tpm", "gene_id": "ensembl"}
    run = tmp_path / "run"
    write_config(run, cfg)
    dry = snakemake(run, "-n", "-p", "results/omics/expression.h5", timeout=300).stdout
    assert job_counts(dry)["omics_matrix"] == 1
    assert "gliofuse omics import --config results/config/omics.yaml --matrix ../cohort/tpm.tsv --unit tpm" in dry
    assert "--gene-id ensembl" in dry and "omics matrix" not in dry and "--reference" not in dry
