"""The SLURM profile (workflow/profiles/slurm) on a real single-node SLURM on localhost.

The fast tests render the profile (its environment-variable settings) and dry-run the workflow with it. The slow
test starts slurmctld + slurmd + munged (tests/workflow/slurm_cluster.py), runs the reduced demo workflow with
``--executor slurm`` through a test profile derived from the tracked one, and checks that

* every non-local rule ran as SLURM jobs (job ids in Snakemake's log, the jobs in slurmctld's table with the
  executor's ``rule_<name>`` comment, the per-slide/per-fold rules as array jobs, the tail as one group job),
* the outputs equal those of a local run of the same config (label table, splits, omics matrix, coordinates and
  feature h5 datasets, fold predictions and metrics within a tolerance).

Without slurm-wlm/munge, or not as root, the slow test FAILS with the install line of ``.ci/run``: a skipped test
never counts as a pass here.
"""

from __future__ import annotations

import copy
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
import yaml

from tests.conftest import REPO
from tests.workflow.slurm_cluster import LocalSlurm, SlurmUnavailable

SNAKEMAKE = str(Path(sys.executable).parent / "snakemake")
PROFILE = REPO / "workflow" / "profiles" / "slurm" / "config.yaml"
ENV_KEYS = ("GLIOFUSE_SLURM_PARTITION", "GLIOFUSE_SLURM_GPU_PARTITION", "GLIOFUSE_SLURM_ACCOUNT")

# the smallest demo that still has several slides per rule, a patient with two slides and two folds
TINY = {
    "cohort": "demo",
    "seed": 7,
    "demo": {"n_patients": 6, "frac_two_slides": 0.2, "slide_width_um": 600.0, "slide_height_um": 400.0,
             "n_genes": 100},
    "wsi": {"patch_px": 128},
    "features": {"encoder": "test_resnet", "batch_size": 16, "device": "cpu", "shard_size": 3},
    "data": {"n_folds": 2, "val_fraction": 0.0},
    "training": {"epochs": 2, "patience": 2, "n_top_genes": 16, "tasks": ["survival"], "device": "cpu"},
    "evaluation": {"n_bootstrap": 10},
}
LOCAL_RULES = {"config_snapshot", "all"}
ARRAY_RULES = {"wsi_patch": "slides", "features_extract": "shards", "train_fold": "folds"}
GROUP = "post"
# every stage up to the metrics; the figure rules (matplotlib, the same in both runs) are left out for time
TARGETS = ("results/evaluation/summary.tsv", "results/qc/slides.tsv")
RUN_TIMEOUT_S = 600
NODE_CPUS = 2
NODE_GPUS = 2  # fake GPUs: SLURM schedules the profile's GPU requests; the jobs compute on the CPU


def render_profile(env: dict[str, str] | None = None) -> dict:
    """The tracked SLURM profile as Snakemake reads it (YTE template evaluated with ``env``)."""
    import yte

    saved = {k: os.environ.pop(k) for k in ENV_KEYS if k in os.environ}
    try:
        os.environ.update(env or {})
        with PROFILE.open() as fh:
            return yte.process_yaml(fh, require_use_yte=True)
    finally:
        for k in ENV_KEYS:
            os.environ.pop(k, None)
        os.environ.update(saved)


def workflow_rules() -> dict[str, str]:
    """{rule name: its text} of workflow/rules/*.smk."""
    text = "".join(p.read_text() for p in sorted((REPO / "workflow" / "rules").glob("*.smk")))
    parts = re.split(r"^\s*(?:rule|checkpoint) (\w+):", text, flags=re.MULTILINE)
    return dict(zip(parts[1::2], parts[2::2], strict=True))


def test_profile_settings():
    prof = render_profile()
    assert prof["executor"] == "slurm"
    assert prof["slurm-status-command"] == "squeue"  # no slurmdbd needed
    assert prof["rerun-incomplete"] is True and prof["retries"] >= 1
    assert {"wsi_patch", "features_extract"} <= set(prof["slurm-array-jobs"].split(","))
    assert prof["default-resources"]["runtime"] and prof["default-resources"]["mem_mb"]  # rules not listed
    res = prof["set-resources"]
    for rule in ("features_extract", "train_fold"):
        assert res[rule]["gpu"] == 1 and res[rule]["cpus_per_gpu"] >= 1, rule
        assert res[rule]["runtime"] and res[rule]["mem_mb"], rule
        assert "slurm_extra" not in res[rule], "the plugin rejects --gres/--gpus in slurm_extra"
    assert max(prof["set-threads"].values()) <= prof["cores"]  # `cores` caps threads per job
    # every rule the profile names exists (a renamed rule would silently lose its settings)
    rules = workflow_rules()
    named = set(res) | set(prof["set-threads"]) | set(prof["groups"]) | set(prof["slurm-array-jobs"].split(","))
    assert named <= set(rules), f"rules in workflow/profiles/slurm/config.yaml but not in the workflow: {named - set(rules)}"
    # downloads are local rules (compute nodes often have no internet); nothing local is grouped or arrayed
    local = {name for name, body in rules.items() if re.search(r"^\s*localrule: True", body, flags=re.MULTILINE)}
    assert {"gdc_query", "gdc_download_slide", "gdc_download_rnaseq", "gdc_download_all", "config_snapshot"} <= local
    assert not (local & named)
    # nothing cluster-specific in the tracked file: partition and account come from the environment
    assert "slurm_partition" not in prof["default-resources"] and "slurm_account" not in prof["default-resources"]
    assert "slurm_partition" not in res["features_extract"]

    prof = render_profile({"GLIOFUSE_SLURM_PARTITION": "cpu", "GLIOFUSE_SLURM_GPU_PARTITION": "gpu",
                           "GLIOFUSE_SLURM_ACCOUNT": "lab42"})
    assert prof["default-resources"]["slurm_partition"] == "cpu"
    assert prof["default-resources"]["slurm_account"] == "lab42"
    assert prof["set-resources"]["features_extract"]["slurm_partition"] == "gpu"
    assert prof["set-resources"]["train_fold"]["slurm_partition"] == "gpu"
    prof = render_profile({"GLIOFUSE_SLURM_PARTITION": "batch"})
    assert prof["set-resources"]["features_extract"]["slurm_partition"] == "batch"
    assert "slurm_account" not in prof["default-resources"]


def write_config(workdir: Path, cfg: dict) -> None:
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "config.yaml").write_text(yaml.safe_dump(cfg))


def test_dry_run_with_slurm_profile(tmp_path):
    write_config(tmp_path, TINY)
    env = {**os.environ, "GLIOFUSE_SLURM_PARTITION": "cpu", "GLIOFUSE_SLURM_GPU_PARTITION": "gpu"}
    proc = subprocess.run([SNAKEMAKE, "-s", str(REPO / "Snakefile"), "--directory", str(tmp_path), "-n",
                           "--workflow-profile", str(PROFILE.parent)], check=False, capture_output=True,
                          text=True, timeout=300, cwd=tmp_path, env=env)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    blocks = re.split(r"\n(?=\[|rule \w+:)", out)
    extract = next(b for b in blocks if b.startswith("rule features_extract:"))
    assert "slurm_partition=gpu" in extract and "gpu=1" in extract and "cpus_per_gpu=8" in extract
    patch = next(b for b in blocks if b.startswith("rule wsi_patch:"))
    assert "slurm_partition=cpu" in patch and "runtime=" in patch


# ------------------------------------------------------------------------------------------------ real SLURM
def make_test_profile(tmp_dir: Path) -> Path:
    """The tracked profile adapted to a 2-CPU node without GPUs; every other key is kept as it is.

    Deltas: one CPU per GPU (the node has 2 CPUs and 2 fake GPUs; features and training still run on the CPU,
    as in the local run) and one thread per job (the local run's threads: identical numerics), small memory
    requests and ``cores`` = the node's CPUs (so the group job fits), the node's only partition, fast status
    polling, short latency wait, SLURM logs kept. GPU requests, arrays, groups, retries etc. stay as they are.
    """
    prof = copy.deepcopy(render_profile())
    prof.update({
        "jobs": 20,
        "cores": NODE_CPUS,
        "latency-wait": 5,
        "seconds-between-status-checks": 1,
        "slurm-init-seconds-before-status-checks": 1,
        "slurm-keep-successful-logs": True,
        "set-threads": {rule: 1 for rule in prof.get("set-threads", {})},
    })
    for res in [*prof["set-resources"].values(), prof["default-resources"]]:
        for key in ("slurm_partition", "slurm_account"):
            res.pop(key, None)
        if "cpus_per_gpu" in res:
            res["cpus_per_gpu"] = 1
        if "mem_mb" in res:
            res["mem_mb"] = min(int(res["mem_mb"]), 1000)
    prof.pop("__definitions__", None)
    prof.pop("__use_yte__", None)
    out = tmp_dir / "profile"
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.yaml").write_text(yaml.safe_dump(prof, sort_keys=False))
    return out



@pytest.fixture(scope="module")
def slurm_cluster():
    """(cluster, None) or (cluster, why it could not start); the daemons are stopped after the module."""
    cluster = LocalSlurm(cpus=NODE_CPUS, gpus=NODE_GPUS, min_job_age_s=900)
    error = None
    try:
        cluster.start()
    except SlurmUnavailable as exc:
        error = str(exc)
    try:
        yield cluster, error
    finally:
        cluster.stop()


def start_snakemake(workdir: Path, *args: str) -> tuple[subprocess.Popen, list[str]]:
    cmd = [SNAKEMAKE, "-s", str(REPO / "Snakefile"), "--directory", str(workdir), *args]
    env = {k: v for k, v in os.environ.items() if k not in ENV_KEYS and not k.startswith("SLURM_")}
    log = (workdir / "snakemake.out").open("w")
    proc = subprocess.Popen(cmd, cwd=workdir, env=env, stdout=log, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    log.close()
    return proc, cmd


def finish_snakemake(proc: subprocess.Popen, cmd: list[str], workdir: Path, deadline: float) -> str:
    """Wait until ``deadline`` (monotonic); past it stop Snakemake with SIGINT (which also cancels its SLURM
    jobs), then fail. Returns Snakemake's output."""
    try:
        proc.wait(timeout=max(1.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        out = (workdir / "snakemake.out").read_text(errors="replace")
        raise AssertionError(f"{' '.join(cmd)} ran out of time (stopped with SIGINT):\n{out[-6000:]}")
    out = (workdir / "snakemake.out").read_text(errors="replace")
    if proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{out[-8000:]}")
    return out


def run_snakemake(workdir: Path, *args: str, timeout: float) -> str:
    proc, cmd = start_snakemake(workdir, *args)
    return finish_snakemake(proc, cmd, workdir, time.monotonic() + timeout)


def h5_datasets(path: Path) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    with h5py.File(path, "r") as f:
        f.visititems(lambda name, obj: out.__setitem__(name, obj[()]) if isinstance(obj, h5py.Dataset) else None)
    return out


def assert_same_h5(a: Path, b: Path, atol: float = 1e-6) -> None:
    da, db = h5_datasets(a), h5_datasets(b)
    assert da.keys() == db.keys(), (a, sorted(da), sorted(db))
    for name, va in da.items():
        vb = db[name]
        assert va.shape == vb.shape and va.dtype == vb.dtype, (a, name)
        if np.issubdtype(va.dtype, np.floating):
            np.testing.assert_allclose(va, vb, rtol=1e-5, atol=atol, err_msg=f"{a}:{name}")
        else:
            assert np.array_equal(va, vb), f"{a}:{name} differs"


def assert_same_table(a: Path, b: Path) -> None:
    ta, tb = pd.read_csv(a, sep="\t"), pd.read_csv(b, sep="\t")
    pd.testing.assert_frame_equal(ta, tb, check_exact=False, rtol=1e-4, atol=1e-5, obj=str(a))


@pytest.mark.slow
def test_workflow_on_slurm_matches_local_run(tmp_path, slurm_cluster):
    slurm, error = slurm_cluster
    if error:  # a failure, never a skip: CI installs SLURM (.ci/run)
        pytest.fail(f"cannot start a local SLURM for the SLURM profile test: {error}", pytrace=False)
    local, cluster = tmp_path / "local", tmp_path / "slurm"
    write_config(local, TINY)
    write_config(cluster, TINY)

    # the local reference run fills the SLURM run's idle time (status polling); both run with 1 thread per job
    t0 = time.monotonic()
    deadline = t0 + RUN_TIMEOUT_S
    local_run = start_snakemake(local, "--cores", str(NODE_CPUS), *TARGETS)
    slurm_run = start_snakemake(cluster, "--workflow-profile", str(make_test_profile(tmp_path)), *TARGETS)
    try:
        out = finish_snakemake(*slurm_run, cluster, deadline)
        t_slurm = time.monotonic() - t0
    finally:
        finish_snakemake(*local_run, local, deadline)
    print(f"SLURM run {t_slurm:.0f} s, both runs {time.monotonic() - t0:.0f} s")

    # ---- the jobs went through SLURM: ids in Snakemake's log, the jobs in slurmctld's table, SLURM logs
    single = re.findall(r"Job \S+ has been submitted with SLURM jobid (\d+)", out)
    arrays = re.findall(r"Submitted array job with Snakemake IDs ([\d,]+) and SLURM job ID (\d+)", out)
    assert single and arrays, out[-4000:]
    table = slurm.job_table()
    assert {row["JobState"] for row in table} == {"COMPLETED"}, table
    submitted = {row.get("ArrayJobId", row["JobId"]) for row in table}
    assert set(single) | {a[1] for a in arrays} == submitted, (single, arrays, submitted)

    def rule_of(row: dict[str, str]) -> str:
        return re.sub(r"^rule_|_wildcards_.*$", "", row.get("Comment", ""))

    ran_on_slurm = {rule_of(row) for row in table}
    expected = {"demo_generate", "labels_build", "omics_matrix", "data_splits", "wsi_patch", "features_extract",
                "train_fold"}
    assert expected <= ran_on_slurm, ran_on_slurm
    assert not (LOCAL_RULES & ran_on_slurm)  # local rules stay on the submit host
    # per-slide, per-shard and per-fold rules: one SLURM job or array task each, mostly as arrays (a rule's jobs that are
    # ready together go out as one array; a lone ready job as a plain job)
    n = {"slides": len(list((local / "results" / "wsi" / "coords").glob("*.h5"))), "folds": 2,
         "shards": len(list((local / "results" / "features" / "test_resnet" / "shards").glob("shard_*.tsv")))}
    assert n["shards"] >= 2, n
    for rule, unit in ARRAY_RULES.items():
        rows = [row for row in table if rule_of(row) == rule]
        assert len(rows) == n[unit], (rule, rows)
        per_array: dict[str, int] = {}
        for row in rows:
            if row.get("ArrayJobId"):
                per_array[row["ArrayJobId"]] = per_array.get(row["ArrayJobId"], 0) + 1
        if rule != "features_extract":  # a shard is ready when its slides' patching tasks are done: often alone
            assert per_array and max(per_array.values()) >= 2, (rule, per_array)
    assert len({row["ArrayJobId"] for row in table if rule_of(row) == "wsi_patch"}) == 1  # all ready at once
    # the GPU rules got one (fake) GPU and one CPU per GPU from SLURM, the others none
    for row in table:
        gpu_rule = rule_of(row) in ("features_extract", "train_fold")
        assert (row.get("TresPerJob") == "gres:gpu:1") == gpu_rule, (rule_of(row), row.get("TresPerJob"))
        assert (row.get("CpusPerTres") == "gres:gpu:1") == gpu_rule, (rule_of(row), row.get("CpusPerTres"))
    # the small tail (evaluation + slide QC table: two unconnected parts) as one group job
    tail = [r for r in ran_on_slurm if r.startswith(GROUP + "_")]
    assert len(tail) == 1 and "evaluate_model" in tail[0] and "report_qc" in tail[0], ran_on_slurm
    logs = cluster / ".snakemake" / "slurm_logs"
    for jobid in single:
        assert list(logs.glob(f"*/**/{jobid}.log")), f"no SLURM log for job {jobid}"
    for _, jobid in arrays:
        assert list(logs.glob(f"*/**/{jobid}_*.log")), f"no SLURM log for array job {jobid}"

    # ---- same outputs as the local run
    lres, cres = local / "results", cluster / "results"
    for rel in ("labels/labels.tsv", "splits/cohort.tsv", "omics/samples.tsv"):
        assert (lres / rel).read_text() == (cres / rel).read_text(), rel
    for fold in (0, 1):
        rel = f"splits/fold_{fold}.json"
        assert json.loads((lres / rel).read_text()) == json.loads((cres / rel).read_text()), rel
    assert_same_h5(lres / "omics" / "expression.h5", cres / "omics" / "expression.h5")
    coords = sorted(p.name for p in (lres / "wsi" / "coords").glob("*.h5"))
    feats = sorted(p.name for p in (lres / "features" / "test_resnet").glob("*.h5"))
    assert coords == sorted(p.name for p in (cres / "wsi" / "coords").glob("*.h5")) and len(coords) >= 6
    assert feats == sorted(p.name for p in (cres / "features" / "test_resnet").glob("*.h5")) == coords
    for name in coords:
        assert_same_h5(lres / "wsi" / "coords" / name, cres / "wsi" / "coords" / name)
        assert_same_h5(lres / "features" / "test_resnet" / name, cres / "features" / "test_resnet" / name)
    for fold in (0, 1):
        rel = f"training/abmil_snn_concat/survival/fold_{fold}/predictions.tsv"
        assert_same_table(lres / rel, cres / rel)
    assert_same_table(lres / "evaluation" / "summary.tsv", cres / "evaluation" / "summary.tsv")
    # a finished workflow has nothing left to do under SLURM either
    assert "Nothing to be done" in run_snakemake(cluster, "--workflow-profile", str(tmp_path / "profile"), "-n",
                                                 *TARGETS, timeout=120)
