"""The workflow in GDC mode (cohort: tcga, gdc.download: true) against the GDC double, through evaluation.

Run A is the plain demo workflow: the session's shared reduced demo run (``demo_run`` in conftest.py, read
only here; 12 patients, 2 folds, abmil_snn_concat). The double serves A's demo data root, and run B (the
same config with ``cohort: tcga``) downloads it through the gdc_query checkpoint and the per-file download
rules, with a token set and faults armed (a 500 on /files, a connection cut mid-slide), and runs the same
stages through the survival model's evaluation. Checks: B's slides/ and rnaseq/ are byte-identical to A's;
B's label table and expression matrix equal A's; the DAG after the checkpoint has one wsi_patch per
downloaded slide; B's patch features, cohort, fold splits, out-of-fold predictions and metrics equal A's
exactly; the slide QC table shows the features status; a rerun has nothing to do; a failed extraction of a
patient's only slide takes the patient out of the cohort; a transport-config change re-queries but
re-downloads nothing; the token appears in no written file (outputs, training and evaluation logs included)
and no console output.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest

from tests.conftest import REPO
from tests.fakes.gdc_double import GdcDouble
from tests.workflow.conftest import SMALL, job_counts, write_config

SNAKEMAKE = str(Path(sys.executable).parent / "snakemake")
SECRET = "gdc-token-7c1e99b2-DO-NOT-LEAK"
MODEL, TASK, N_FOLDS = "abmil_snn_concat", "survival", SMALL["data"]["n_folds"]
TARGETS = ["results/labels/labels.tsv", "results/omics/expression.h5", "results/omics/samples.tsv"]
OOF = f"results/evaluation/{MODEL}/{TASK}/predictions_oof.tsv"
METRICS = f"results/evaluation/{MODEL}/{TASK}/metrics.tsv"
FOLDS = [f"results/splits/fold_{k}.json" for k in range(N_FOLDS)]
RESULTS = ["results/splits/cohort.tsv", *FOLDS, OOF, METRICS, "results/qc/slides.tsv"]


def snakemake(workdir: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    cmd = [SNAKEMAKE, "-s", str(REPO / "Snakefile"), "--directory", str(workdir), "--cores", "2", *args,
           "--resources", "gdc_conn=3"]  # last: --resources takes several values
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900, cwd=workdir, env=env, check=False)
    if proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-6000:]}")
    return proc


def tree(root: Path) -> dict[str, bytes]:
    """{relative path: bytes} of a folder, without Snakemake's directory() marker."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and p.name != ".snakemake_timestamp"}


def h5_datasets(path: Path, keys: tuple[str, ...] = ("values", "patients", "genes", "gene_names")) -> dict[str, np.ndarray]:
    with h5py.File(path, "r") as f:
        return {k: f[k][()] for k in keys}


def assert_same_results(a: Path, b: Path) -> None:
    """B's features, cohort, splits, out-of-fold predictions and metrics equal A's (exactly)."""
    feats_a = sorted(p.name for p in (a / "results/features/test_resnet").glob("*.h5"))
    feats_b = sorted(p.name for p in (b / "results/features/test_resnet").glob("*.h5"))
    assert feats_a == feats_b and feats_a
    for name in feats_a:
        fa = h5_datasets(a / "results/features/test_resnet" / name, ("features", "coords"))
        fb = h5_datasets(b / "results/features/test_resnet" / name, ("features", "coords"))
        for k in fa:
            np.testing.assert_array_equal(fa[k], fb[k], err_msg=f"{name}: {k}")
    for rel in ("results/splits/cohort.tsv", *FOLDS):
        assert (a / rel).read_bytes() == (b / rel).read_bytes(), rel
    oof_a, oof_b = pd.read_csv(a / OOF, sep="\t"), pd.read_csv(b / OOF, sep="\t")
    cohort = pd.read_csv(a / "results/splits/cohort.tsv", sep="\t")
    members = cohort.loc[(cohort["in_cohort"] == 1) & cohort["time_days"].notna() & cohort["event"].notna()]
    assert sorted(oof_a["patient_id"]) == sorted(members["patient_id"]) and len(oof_a) >= 10
    assert set(oof_a["fold"]) == set(range(N_FOLDS)) and oof_a["risk"].notna().all()
    pd.testing.assert_frame_equal(oof_a, oof_b, check_exact=True)
    pd.testing.assert_frame_equal(pd.read_csv(a / METRICS, sep="\t"), pd.read_csv(b / METRICS, sep="\t"),
                                  check_exact=True, obj=METRICS)


@pytest.mark.slow
def test_gdc_download_workflow_matches_the_demo_run(demo_run, tmp_path):
    # A: the demo cohort the plain way, through training and evaluation (shared run: read only)
    a = demo_run
    assert SMALL["cohort"] == "demo" and TASK in SMALL["training"]["tasks"]
    demo_root = a / "results" / "demo"

    # B: the same data through the GDC double
    b = tmp_path / "gdc_run"
    env = {**os.environ, "GDC_TOKEN": SECRET}
    with GdcDouble(demo_root, require_token=SECRET) as double:
        cfg_b = {**SMALL, "cohort": "tcga",
                 "gdc": {"download": True, "api_url": double.url, "page_size": 4, "backoff_s": 0.01},
                 "labels": {"molecular_table": str(demo_root / "labels" / "molecular.tsv")}}
        write_config(b, cfg_b)
        dry = snakemake(b, "-n", *TARGETS, env=env).stdout
        assert job_counts(dry).get("gdc_query") == 1, dry[-3000:]

        double.faults.fail_next("/files", 500)
        slide_id = next(f["id"] for f in double.files if f["data_format"] == "SVS")
        double.faults.cut_mid_file(slide_id)
        runs = [snakemake(b, *TARGETS, "gdc_download_all", env=env)]
        assert double.count("GET", "/data") == len(double.files) + 1  # every file once, the cut slide resumed
        assert all(r.headers.get("X-Auth-Token") == SECRET for r in double.requests if r.path.startswith("/data"))

        gdc_root = b / "results" / "gdc"
        for sub in ("slides", "rnaseq"):
            ours, theirs = tree(gdc_root / sub), tree(demo_root / sub)
            assert ours.keys() == theirs.keys() and ours == theirs, sub
        assert (b / "results/labels/labels.tsv").read_bytes() == (a / "results/labels/labels.tsv").read_bytes()
        assert (b / "results/omics/samples.tsv").read_bytes() == (a / "results/omics/samples.tsv").read_bytes()
        ha, hb = h5_datasets(a / "results/omics/expression.h5"), h5_datasets(b / "results/omics/expression.h5")
        for k in ha:
            np.testing.assert_array_equal(ha[k], hb[k], err_msg=k)

        # the slide list now comes from the checkpoint's manifest: one wsi_patch per downloaded slide
        n_slides = len(list((gdc_root / "slides").glob("*.svs")))
        counts = job_counts(snakemake(b, "-n", *RESULTS, env=env).stdout)
        assert counts.get("wsi_patch") == n_slides and "gdc_download_slide" not in counts, counts
        assert counts.get("train_folds") == 1, counts  # one model x task, its N_FOLDS folds in one job

        # the rest of the workflow on the downloaded data gives A's results
        runs.append(snakemake(b, *RESULTS, env=env))
        assert double.count("GET", "/data") == len(double.files) + 1  # nothing downloaded twice
        assert_same_results(a, b)
        qc = pd.read_csv(b / "results/qc/slides.tsv", sep="\t")
        assert len(qc) == n_slides and (qc["features_status"] == "ok").all()
        assert (qc["features_n_patches"] == qc["n_patches"]).all()
        assert "Nothing to be done" in snakemake(b, "-n", *TARGETS, *RESULTS, "gdc_download_all", env=env).stdout

        # data_splits reads the features status: a patient whose only slide failed extraction leaves the cohort
        cohort = pd.read_csv(b / "results/splits/cohort.tsv", sep="\t")
        victim = cohort.loc[(cohort["in_cohort"] == 1) & ~cohort["slide_ids"].str.contains(";")].iloc[0]
        status = b / f"results/features/test_resnet/status/{victim['slide_ids']}.json"
        status.write_text(json.dumps({**json.loads(status.read_text()), "status": "failed", "n_patches": 0}))
        snakemake(b, "--forcerun", "data_splits", "results/splits/cohort.tsv", env=env)
        after = pd.read_csv(b / "results/splits/cohort.tsv", sep="\t", keep_default_na=False).set_index("patient_id")
        assert after.loc[victim["patient_id"], "in_cohort"] == 0
        assert after.loc[victim["patient_id"], "reason"] == "features_failed"
        assert int(after["in_cohort"].sum()) == int(cohort["in_cohort"].sum()) - 1
        assert "1 features_failed" in (b / "results/logs/data_splits/splits.log").read_text()

        # a transport setting changes the gdc snapshot: the query reruns, the verified files are kept
        cfg_b["gdc"]["max_retries"] = 7
        write_config(b, cfg_b)
        counts = job_counts(snakemake(b, "-n", *TARGETS, "gdc_download_all", env=env).stdout)
        assert counts.get("gdc_query") == 1
        assert not {"gdc_download_slide", "gdc_download_rnaseq"} & set(counts), counts

    # the token is in no file (outputs, training/evaluation outputs, logs, .snakemake metadata) and no console output
    assert (b / "results/logs/train_folds").is_dir() and (b / "results/logs/evaluate_model").is_dir()
    for run in runs:
        assert SECRET not in run.stdout + run.stderr
    written = [p for p in b.rglob("*") if p.is_file()]
    assert any(p.name == "predictions_oof.tsv" for p in written) and any(p.suffix == ".pt" for p in written)
    for p in written:
        assert SECRET.encode() not in p.read_bytes(), p
