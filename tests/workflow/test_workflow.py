"""Workflow-level tests: lint, schema, config errors, an end-to-end demo run, rerun behaviour and the report."""

from __future__ import annotations

import json
import re
import subprocess

import pandas as pd
import pytest
import yaml

from tests.conftest import REPO
from tests.workflow.conftest import SMALL, SNAKEMAKE, copy_run, job_counts, snakemake, write_config


def test_schema_file_in_sync():
    from gliofuse.config_schema import schema_yaml

    checked_in = (REPO / "workflow" / "schemas" / "config.schema.yaml").read_text()
    assert checked_in == schema_yaml(), "run: gliofuse config schema --out workflow/schemas/config.schema.yaml"


def test_lint_is_clean():
    proc = subprocess.run([SNAKEMAKE, "--lint", "--cores", "1"], cwd=REPO, capture_output=True, text=True, timeout=300,
                          check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    assert "Lints for" not in out, out[-3000:]


@pytest.mark.parametrize("bad,needle", [
    ({"wsi": {"target_mp": 0.5}}, "target_mp"),
    ({"training": {"epochs": "many"}}, "epochs"),
    ({"training": {"models": ["no_such_model"]}}, "no_such_model"),
])
def test_bad_config_fails_at_parse_time_naming_the_key(tmp_path, bad, needle):
    cfg = {**SMALL, **{k: {**SMALL.get(k, {}), **v} for k, v in bad.items()}}
    write_config(tmp_path, cfg)
    proc = snakemake(tmp_path, "-n", check=False, timeout=300)
    assert proc.returncode != 0
    assert needle in proc.stdout + proc.stderr


def test_folds_per_job_changes_the_jobs_not_the_outputs(tmp_path):
    """one: a train_fold job per model x task x fold; all: a train_folds job per model x task writing every fold's
    files. The rest of the DAG (evaluation, figures) is the same."""
    plans = {}
    for mode in ("one", "all"):
        work = tmp_path / mode
        write_config(work, {**SMALL, "training": {**SMALL["training"], "folds_per_job": mode}})
        out = snakemake(work, "-n", "-p", timeout=300).stdout
        plans[mode] = (job_counts(out), sorted(re.findall(r"--out-dirs? ((?:results/training/\S+ ?)+)", out)))
    (one, one_dirs), (all_, all_dirs) = plans["one"], plans["all"]
    assert one.pop("train_fold") == 2 * 2 and all_.pop("train_folds") == 2  # 2 tasks x 2 folds
    assert one == all_
    fold_dirs = sorted(d for dirs in all_dirs for d in dirs.split())
    assert fold_dirs == sorted(d.strip() for d in one_dirs) and len(fold_dirs) == 4


def test_env_files_parse_and_pin():
    for env in sorted((REPO / "envs").glob("*.yaml")):
        spec = yaml.safe_load(env.read_text())
        assert "conda-forge" in spec["channels"], env
        deps = [d for d in spec["dependencies"] if isinstance(d, str)]
        assert all("=" in d for d in deps), f"unpinned dependency in {env}: {deps}"
    rules = "".join(p.read_text() for p in (REPO / "workflow" / "rules").glob("*.smk"))
    for ref in set(re.findall(r'"\.\./\.\./(envs/[a-z]+\.yaml)"', rules)):
        assert (REPO / ref).exists(), ref


@pytest.mark.slow
def test_demo_end_to_end_rerun_and_report(demo_run, tmp_path):
    work = copy_run(demo_run, tmp_path / "run")  # the shared SMALL run (conftest.py); this test modifies it
    res = work / "results"

    summary = pd.read_csv(res / "evaluation" / "summary.tsv", sep="\t")
    assert set(summary["task"]) == {"survival", "diagnosis"}
    assert set(summary["model"]) == {"abmil_snn_concat"}
    assert summary["pooled"].notna().all()
    for task in ("survival", "diagnosis"):
        oof = pd.read_csv(res / "evaluation" / "abmil_snn_concat" / task / "predictions_oof.tsv", sep="\t")
        cohort = pd.read_csv(res / "splits" / "cohort.tsv", sep="\t")
        assert set(oof["patient_id"]) <= set(cohort["patient_id"])
        assert oof["patient_id"].is_unique
    qc = pd.read_csv(res / "qc" / "slides.tsv", sep="\t")
    assert (qc["status"] == "ok").all()
    for png in ("summary.png", "cohort.png", "qc_slides.png", "abmil_snn_concat/survival.png"):
        assert (res / "figures" / png).stat().st_size > 5000, png
    assert (res / "features" / "test_resnet").is_dir()

    # a completed workflow has nothing left to do
    assert "Nothing to be done" in snakemake(work, "-n").stdout

    # a deleted feature file is re-extracted by forcing its shard table (the file's readers name the table and this
    # fix): that one shard reruns and re-encodes only the deleted slide, its other slides' files are reused untouched
    feat_dir = res / "features" / "test_resnet"
    table = min((feat_dir / "shards").glob("shard_*.tsv"))
    rows = pd.read_csv(table, sep="\t")
    assert len(rows) >= 2 and (rows["status"] == "ok").all()
    victim, kept = (work / rows["features"].iloc[0]), (work / rows["features"].iloc[1])
    kept_mtime = kept.stat().st_mtime_ns
    victim.unlink()
    force = ("--forcerun", str(table.relative_to(work)))
    counts = job_counts(snakemake(work, "-n", *force).stdout)
    assert counts.get("features_extract") == 1
    assert counts.get("train_folds") == 2  # 2 tasks (each job: both folds), all read every shard table
    for rule in ("demo_generate", "wsi_patch", "labels_build", "omics_matrix", "data_splits", "report_cohort", "report_qc"):
        assert rule not in counts, (rule, counts)
    snakemake(work, *force)
    assert victim.exists() and kept.stat().st_mtime_ns == kept_mtime
    kept_status = feat_dir / "status" / f"{rows['slide_id'].iloc[1]}.json"
    assert json.loads(kept_status.read_text())["reused"] is True

    # the report is self-contained HTML with the annotated figures
    snakemake(work, "--report", "results/report.html")
    html = (res / "report.html").read_text(errors="ignore")
    assert len(html) > 50_000
    assert "summary.png" in html and "qc_slides.png" in html
