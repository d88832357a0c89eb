"""External validation cohorts in the workflow (dry runs): one cohort adds its own namespaced slide jobs and exactly one
labels, expression, predict, evaluation and report job, and leaves every development job as it was; a slide id
shared with the development cohort, or a bad external sheet, stops the workflow at parse time."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import yaml

from tests.conftest import REPO
from tests.workflow.conftest import SMALL, copy_run, job_counts, snakemake, write_config

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
    assert counts["external_wsi_patch"] == 2 and counts["external_features_extract"] == 1, counts  # 2 slides: one shard
    for rule in ("external_labels", "external_omics", "external_predict", "external_evaluate", "external_report"):
        assert counts[rule] == 1, (rule, counts)
    # the development jobs are the same jobs with or without the external cohort
    assert {r: n for r, n in counts.items() if not r.startswith("external_") and r != "config_snapshot"} == {
        r: n for r, n in without.items() if r != "config_snapshot"}
    assert "results/external/siteB/features/test_resnet/siteB_001.h5" in dry
    assert "--reference results/omics/expression.h5" in dry and "--gene-id symbol" in dry
    assert "gliofuse external predict" in dry and "--slides " + str(tmp_path / "siteB" / "slides.csv") in dry
    assert "--external results/external/siteB/summary.md" in dry  # the section of results/summary.md


def test_the_default_demo_plans_its_external_site_and_changes_no_development_job(tmp_path):
    """config.yaml (make demo): the generated site is the external cohort SITEB, its paths from the generator."""
    default = yaml.safe_load((REPO / "config.yaml").read_text())
    write_config(tmp_path / "off", {**default, "demo": {**default.get("demo", {}), "external": {"enabled": False}}})
    without = job_counts(snakemake(tmp_path / "off", "-n").stdout)
    write_config(tmp_path / "on", default)
    dry = snakemake(tmp_path / "on", "-n", "-p").stdout
    counts = job_counts(dry)
    assert counts["demo_external"] == 1 and "demo_external" not in without
    assert counts["external_wsi_patch"] == 12 and counts["external_features_extract"] == 1, counts  # one shard of 16
    for rule in ("external_labels", "external_omics", "external_predict", "external_evaluate", "external_report"):
        assert counts[rule] == 1, (rule, counts)
    assert {r: n for r, n in counts.items() if not r.startswith(("external_", "demo_external", "config_snapshot"))} \
        == {r: n for r, n in without.items() if r != "config_snapshot"}
    assert "gliofuse demo external --config results/config/demo.yaml --out results/demo_external" in dry
    assert "--clinical results/demo_external/clinical.csv" in dry  # labels read the generated table
    assert "--matrix results/demo_external/expression_tpm.tsv" in dry and "--unit tpm --gene-id symbol" in dry
    assert "--truth results/demo_external/truth/ground_truth.tsv" in dry  # C-index vs the site's true risk
    assert "results/external/SITEB/features/" in dry and "--external results/external/SITEB/summary.md" in dry
    # a DICOM slide is the level_0.dcm of its folder: patched under its slide id, not the file name
    assert re.search(r"--slide results/demo_external/slides/(SITEB-\d+-HE1)/level_0\.dcm --slide-id \1 ", dry), dry[-2000:]


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
    assert "external.siteB.columns.survival_time" in out


def _site_from_the_demo(run: Path, n_patients: int = 5) -> dict:
    """The first demo patients as an external site: slides and patients renamed, a TPM matrix with gene symbols
    (from the development expression.h5) and a clinical CSV with own column names (from the label table)."""
    site = run / "siteB"
    (site / "slides").mkdir(parents=True)
    sheet = pd.read_csv(run / "results" / "cohort" / "slides.tsv", sep="\t")
    labels = pd.read_csv(run / "results" / "labels" / "labels.tsv", sep="\t")
    patients = sorted(sheet["patient_id"].unique())[:n_patients]
    rename = {p: f"B{k}" for k, p in enumerate(patients)}
    rows = []
    for r in sheet[sheet["patient_id"].isin(patients)].itertuples():
        sid = f"siteB_{len(rows):03d}"
        (site / "slides" / f"{sid}.svs").symlink_to((run / "results" / "cohort" / r.slide_path).resolve())
        rows.append((rename[r.patient_id], sid, f"slides/{sid}.svs"))
    pd.DataFrame(rows, columns=["patient_id", "slide_id", "slide_path"]).to_csv(site / "slides.csv", index=False)
    lab = labels[labels["patient_id"].isin(patients)]
    pd.DataFrame({"PatID": lab["patient_id"].map(rename), "OS_days": lab["time_days"],
                  "Vital": np.where(lab["event"] == 1, "dead", "alive"), "Diagnosis": lab["who2021_class"],
                  "Grade": lab["who2021_grade"].astype("Int64").astype(str)}).to_csv(site / "clinical.csv", index=False)
    with h5py.File(run / "results" / "omics" / "expression.h5") as fh:
        values, names = fh["values"][()], [g.decode() for g in fh["gene_names"][()]]
        rows_of = {p.decode(): i for i, p in enumerate(fh["patients"][()])}
    tpm = np.power(2.0, values[[rows_of[p] for p in patients]]) - 1.0  # stored as log2(TPM + 1)
    matrix = pd.DataFrame(tpm.T, columns=[rename[p] for p in patients])
    matrix.insert(0, "gene", names)
    matrix.to_csv(site / "tpm.tsv", sep="\t", index=False)
    return {"slides": "siteB/slides.csv", "clinical": "siteB/clinical.csv", "name": "siteB",
            "columns": {"patient_id": "PatID", "survival_time": "OS_days", "event": "Vital",
                        "diagnosis": "Diagnosis", "grade": "Grade"},
            "expression": {"path": "siteB/tpm.tsv", "unit": "tpm", "gene_id": "symbol"}}


def _development_bytes(run: Path) -> dict[str, bytes]:
    res = run / "results"
    files = [*res.glob("splits/*"), *res.glob("training/*/*/fold_*/predictions.tsv*"), *res.glob("models/**/*.json")]
    return {str(p.relative_to(run)): p.read_bytes() for p in sorted(files)}


def test_an_external_cohort_runs_without_touching_the_development_fit(demo_run: Path, tmp_path: Path) -> None:
    run = copy_run(demo_run, tmp_path / "run")
    before = _development_bytes(run)
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    write_config(run, {**cfg, "external": {"siteB": _site_from_the_demo(run)}})
    planned = job_counts(snakemake(run, "-n").stdout)
    assert set(planned) - {"config_snapshot", "report_markdown", "all"} == {
        "external_wsi_patch", "external_features_extract", "external_labels", "external_omics", "external_predict",
        "external_evaluate", "external_report"}, planned
    snakemake(run, timeout=1200)
    assert _development_bytes(run) == before  # same splits, fold predictions (and their provenance), bundles
    ext = run / "results" / "external" / "siteB"
    metrics = pd.read_csv(ext / "evaluation" / "metrics.tsv", sep="\t")
    from gliofuse.config import parse_config

    jobs = set(parse_config(cfg).training.jobs())
    assert {(m, t) for m, t in zip(metrics["model"], metrics["task"], strict=True)} == jobs
    assert (ext / "figures" / "km.png").exists() and (ext / "figures" / "calibration.png").exists()
    assert "## External validation — siteB" in (run / "results" / "summary.md").read_text()
    # the workflow's predictions are `gliofuse predict` on the same inputs
    model = metrics["model"].iloc[0]
    bundle = run / "results" / "models" / model / "survival" / "bundle"
    features = sorted((ext / "features").glob("*/*.h5"))
    subprocess.run([str(Path(sys.executable).parent / "gliofuse"), "predict", "--bundle", str(bundle), "--features",
                    *map(str, features), "--omics", str(ext / "omics" / "expression.h5"), "--slides",
                    str(run / "siteB" / "slides.csv"), "--out-dir", str(tmp_path / "predict")], check=True, cwd=run)
    assert (tmp_path / "predict" / "predictions.tsv").read_bytes() == (
        ext / "predict" / model / "survival" / "predictions.tsv").read_bytes()
