"""External validation cohorts in the workflow (dry runs): one cohort adds its own namespaced slide jobs and exactly one
labels, expression, predict, evaluation and report job, and leaves every development job as it was; a slide id
shared with the development cohort, or a bad external sheet, stops the workflow at parse time."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from tests.workflow.conftest import SMALL, job_counts, snakemake, write_config

CLINICAL = "PatID,OS_months,Vital,IDH,Codel,Grade\nB1,12,dead,wildtype,,G4\nB2,40,alive,mutant,codeleted,G2\n"


def _external_site(root: Path, shared: Path, slide_ids: tuple[str, str] = ("siteB_001", "siteB_002")) -> dict:
    """Two real slides under site ids, a clinical CSV with own column names and a TPM matrix with symbols."""
    site = root / "siteB"
    (site / "slides").mkdir(parents=True)
    for sid, name in zip(slide_ids, ("CMU-1-Small-Region.svs", "tcga-cr-7395-01a-01-ts1.svs"), strict=True):
        (site / "slides" / f"{sid}.svs").symlink_to(shared / "slides" / name)
    pd.DataFrame({"patient_id": ["B1", "B2"], "slide_id": list(slide_ids),
                  "slide_path": [f"slides/{s}.svs" for s in slide_ids]}).to_csv(site / "slides.csv", index=False)
    (site / "clinical.csv").write_text(CLINICAL)
    (site / "tpm.tsv").write_text("gene\tB1\tB2\nTP53\t3.5\t7.0\n")
    return {"slides": str(site / "slides.csv"), "clinical": str(site / "clinical.csv"), "name": "siteB",
            "time_unit": "months",
            "columns": {"patient_id": "PatID", "survival_time": "OS_months", "event": "Vital", "idh": "IDH",
                        "codel": "Codel", "histologic_grade": "Grade"},
            "expression": {"path": str(site / "tpm.tsv"), "unit": "tpm", "gene_id": "symbol"}}


def test_an_external_cohort_adds_its_jobs_and_changes_no_development_job(tmp_path, shared_data):
    base = tmp_path / "base"
    write_config(base, SMALL)
    without = job_counts(snakemake(base, "-n").stdout)
    run = tmp_path / "run"
    write_config(run, {**SMALL, "external": {"siteB": _external_site(tmp_path, shared_data)}})
    dry = snakemake(run, "-n", "-p").stdout
    counts = job_counts(dry)
    assert counts["external_wsi_patch"] == 2 and counts["external_features_extract"] == 2, counts
    for rule in ("external_labels", "external_omics", "external_predict", "external_evaluate", "external_report"):
        assert counts[rule] == 1, (rule, counts)
    # the development jobs are the same jobs with or without the external cohort
    assert {r: n for r, n in counts.items() if not r.startswith("external_") and r != "config_snapshot"} == {
        r: n for r, n in without.items() if r != "config_snapshot"}
    assert "results/external/siteB/features/test_resnet/siteB_001.h5" in dry
    assert "--reference results/omics/expression.h5" in dry and "--gene-id symbol" in dry
    assert "gliofuse external predict" in dry and "--slides " + str(tmp_path / "siteB" / "slides.csv") in dry
    assert "--external results/external/siteB/summary.md" in dry  # the section of results/summary.md


def test_an_external_slide_id_of_the_development_cohort_is_refused(tmp_path, shared_data):
    from gliofuse.config import parse_config
    from gliofuse.demo.plan import plan_cohort

    cfg = parse_config(SMALL)
    dev_slide = plan_cohort(seed=cfg.seed, cfg=cfg.demo).slide_ids[0]
    run = tmp_path / "run"
    write_config(run, {**SMALL, "external": {"siteB": _external_site(tmp_path, shared_data,
                                                                     (dev_slide, "siteB_002"))}})
    proc = snakemake(run, "-n", check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0 and "external cohort 'siteB'" in out and dev_slide in out
    assert "Rename them in the external sheet" in out


def test_a_bad_external_clinical_table_stops_the_workflow_naming_the_cohort(tmp_path, shared_data):
    site = _external_site(tmp_path, shared_data)
    Path(site["clinical"]).write_text(CLINICAL.replace("OS_months", "OS"))
    run = tmp_path / "run"
    write_config(run, {**SMALL, "external": {"siteB": site}})
    proc = snakemake(run, "-n", check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0 and "external cohort 'siteB'" in out and "OS_months" in out
