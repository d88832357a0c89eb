"""Workflow wiring of the model bundles (dry runs): one bundle_export job for every model x task in `all`, and the
`predict` target runs the bundles that the configured new-cohort inputs serve, or says which keys to set."""

from __future__ import annotations

from pathlib import Path

from tests.workflow.conftest import SMALL, job_counts, snakemake, write_config


def test_all_exports_every_bundle_in_one_job(tmp_path: Path) -> None:
    cfg = {**SMALL, "training": {**SMALL["training"], "models": ["abmil_snn_concat", "snn"]}}
    write_config(tmp_path, cfg)
    counts = job_counts(snakemake(tmp_path, "-n").stdout)
    assert counts.get("bundle_export") == 1 and counts.get("train_folds") == 2 * 2, counts  # models x tasks


def test_predict_target_runs_the_bundles_its_inputs_serve(tmp_path: Path) -> None:
    cfg = {**SMALL, "training": {**SMALL["training"], "models": ["abmil_snn_concat", "snn"]}}
    write_config(tmp_path, cfg)
    proc = snakemake(tmp_path, "-n", "predict", check=False)
    assert proc.returncode != 0 and "predict.features_dir" in proc.stdout + proc.stderr
    new = tmp_path / "new_cohort"
    new.mkdir()
    (new / "expression.h5").write_bytes(b"")  # only its presence matters to a dry run
    write_config(tmp_path, {**cfg, "predict": {"omics": str(new / "expression.h5")}})
    counts = job_counts(snakemake(tmp_path, "-n", "predict").stdout)
    assert counts.get("predict_cohort") == 2 and counts.get("bundle_export") == 1, counts  # snn x 2 tasks only


def test_predict_target_passes_the_new_cohorts_slide_sheet(tmp_path: Path) -> None:
    new = tmp_path / "new_cohort"
    (new / "features").mkdir(parents=True)
    (new / "features" / "hosp_001.h5").write_bytes(b"")  # only its presence matters to a dry run
    (new / "slides.csv").write_text("patient_id,slide_id,slide_path\nH1,hosp_001,hosp_001.svs\n")
    cfg = {**SMALL, "training": {**SMALL["training"], "models": ["abmil"]},
           "predict": {"features_dir": str(new / "features"), "slides": str(new / "slides.csv")}}
    write_config(tmp_path, cfg)
    dry = snakemake(tmp_path, "-n", "-p", "predict").stdout
    assert f"--slides {new / 'slides.csv'}" in dry and f"--features {new / 'features' / 'hosp_001.h5'}" in dry
