"""The workflow in GDC mode (cohort: tcga, gdc.download: true) against the GDC double.

Run A is the plain demo workflow (labels + omics). The double then serves A's demo data root, and run B
downloads it through the gdc_query checkpoint and the per-file download rules, with a token set and
faults armed (a 500 on /files, a connection cut mid-slide). Checks: B's slides/ and rnaseq/ are
byte-identical to A's, B's label table and expression matrix equal A's, the DAG after the checkpoint
has one wsi_patch per downloaded slide, a rerun has nothing to do, a transport-config change re-queries
but re-downloads nothing, and the token appears in no written file and no log.
Training is not run here (tests/workflow/test_workflow.py covers it on the demo cohort).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from gliofuse.gdc.double import GdcDouble
from tests.conftest import REPO
from tests.workflow.conftest import job_counts, write_config

SNAKEMAKE = str(Path(sys.executable).parent / "snakemake")
SECRET = "gdc-token-7c1e99b2-DO-NOT-LEAK"
BASE = {
    "seed": 11,
    "demo": {"n_patients": 8, "frac_two_slides": 0.25, "slide_width_um": 600.0, "slide_height_um": 400.0,
             "n_genes": 100},
    "wsi": {"patch_px": 128},
    "data": {"n_folds": 2, "val_fraction": 0.2},
    "training": {"epochs": 2, "patience": 2, "n_top_genes": 16, "tasks": ["survival"]},
    "evaluation": {"n_bootstrap": 10},
}
TARGETS = ["results/labels/labels.tsv", "results/omics/expression.h5", "results/omics/samples.tsv"]


def snakemake(workdir: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    cmd = [SNAKEMAKE, "-s", str(REPO / "Snakefile"), "--directory", str(workdir), "--cores", "2", *args,
           "--resources", "gdc_conn=3"]  # last: --resources takes several values
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=workdir, env=env, check=False)
    if proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-6000:]}")
    return proc


def tree(root: Path) -> dict[str, bytes]:
    """{relative path: bytes} of a folder, without Snakemake's directory() marker."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and p.name != ".snakemake_timestamp"}


def h5_datasets(path: Path) -> dict[str, np.ndarray]:
    with h5py.File(path, "r") as f:
        return {k: f[k][()] for k in ("values", "patients", "genes", "gene_names")}


@pytest.mark.slow
def test_gdc_download_workflow_matches_the_demo_run(tmp_path):
    # A: the demo cohort the plain way
    a = tmp_path / "demo_run"
    write_config(a, {"cohort": "demo", **BASE})
    snakemake(a, *TARGETS)
    demo_root = a / "results" / "demo"

    # B: the same data through the GDC double
    b = tmp_path / "gdc_run"
    env = {**os.environ, "GDC_TOKEN": SECRET}
    with GdcDouble(demo_root, require_token=SECRET) as double:
        cfg_b = {"cohort": "tcga", **BASE,
                 "gdc": {"download": True, "api_url": double.url, "page_size": 4, "backoff_s": 0.01},
                 "labels": {"molecular_table": str(demo_root / "labels" / "molecular.tsv")}}
        write_config(b, cfg_b)
        dry = snakemake(b, "-n", *TARGETS, env=env).stdout
        assert job_counts(dry).get("gdc_query") == 1, dry[-3000:]

        double.faults.fail_next("/files", 500)
        slide_id = next(f["id"] for f in double.files if f["data_format"] == "SVS")
        double.faults.cut_mid_file(slide_id)
        run = snakemake(b, *TARGETS, "gdc_download_all", env=env)
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
        counts = job_counts(snakemake(b, "-n", "results/qc/slides.tsv", env=env).stdout)
        assert counts.get("wsi_patch") == n_slides and "gdc_download_slide" not in counts, counts
        assert "Nothing to be done" in snakemake(b, "-n", *TARGETS, "gdc_download_all", env=env).stdout

        # a transport setting changes the gdc snapshot: the query reruns, the verified files are kept
        cfg_b["gdc"]["max_retries"] = 7
        write_config(b, cfg_b)
        counts = job_counts(snakemake(b, "-n", *TARGETS, "gdc_download_all", env=env).stdout)
        assert counts.get("gdc_query") == 1
        assert not {"gdc_download_slide", "gdc_download_rnaseq"} & set(counts), counts

    # the token is in no file (outputs, logs, .snakemake metadata) and no console output
    assert SECRET not in run.stdout + run.stderr
    for p in b.rglob("*"):
        if p.is_file():
            assert SECRET.encode() not in p.read_bytes(), p
