"""Cohort query, manifest, hostile names, user manifests, and the CLI with a token that must never leak."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from gliofuse.errors import InputDataError
from gliofuse.gdc.manifest import (
    MANIFEST_COLUMNS,
    UnsafeFileNameError,
    read_manifest_,
    relative_path,
    safe_file_name,
)
from gliofuse.gdc.query import CASES_JSON, FILES_RNASEQ_JSON, FILES_SLIDES_JSON, MANIFEST_TSV, query_cohort_
from gliofuse.io import sidecar_path
from gliofuse.labels.clinical import cases_from_envelope, survival_table
from gliofuse.omics.rnaseq import choose_samples

PROJECTS = ["TCGA-GBM", "TCGA-LGG"]
FID = "0b4f1a2e-2c51-4d8a-9a7e-5f1c2d3e4a5b"


def _hits(path: Path) -> list[dict]:
    return json.loads(path.read_text())["data"]["hits"]


def test_query_writes_metadata_and_manifest(client, gdc_double, demo_root, tmp_path):
    meta = query_cohort_(client=client, out_dir=tmp_path, projects=PROJECTS, config={"gdc": {}}, page_size=4)
    for rel in (FILES_SLIDES_JSON, FILES_RNASEQ_JSON, CASES_JSON, MANIFEST_TSV):
        assert (tmp_path / rel).exists(), rel
    manifest = pd.read_csv(tmp_path / MANIFEST_TSV, sep="\t", dtype=str)
    assert tuple(manifest.columns) == MANIFEST_COLUMNS
    assert len(manifest) == len(gdc_double.files) == len(meta.rows)
    assert set(manifest["kind"]) == {"slide", "rnaseq"}
    demo_slides = _hits(demo_root / FILES_SLIDES_JSON)
    assert sorted(manifest.loc[manifest["kind"] == "slide", "filename"]) == sorted(h["file_name"] for h in demo_slides)
    by_id = {f["id"]: f for f in gdc_double.files}
    for rec in manifest.to_dict("records"):
        assert rec["md5"] == by_id[rec["id"]]["md5sum"] and int(rec["size"]) == by_id[rec["id"]]["file_size"]
        assert rec["patient_id"] == by_id[rec["id"]]["cases"][0]["submitter_id"]
    prov = json.loads(sidecar_path(tmp_path / MANIFEST_TSV).read_text())
    assert prov["extra"]["n_slides"] == len(demo_slides) and prov["extra"]["authenticated"] is False
    assert prov["extra"]["gdc_status"]["status"] == "OK"


def test_queried_metadata_give_the_same_labels_and_samples_as_the_demo(client, demo_root, tmp_path):
    query_cohort_(client=client, out_dir=tmp_path, projects=PROJECTS, config={}, page_size=3)
    ours = survival_table(cases_from_envelope(json.loads((tmp_path / CASES_JSON).read_text()), source="q"), source="q")
    theirs = survival_table(cases_from_envelope(json.loads((demo_root / CASES_JSON).read_text()), source="d"), source="d")
    pd.testing.assert_frame_equal(ours, theirs)
    pd.testing.assert_frame_equal(choose_samples(_hits(tmp_path / FILES_RNASEQ_JSON), source="q"),
                                  choose_samples(_hits(demo_root / FILES_RNASEQ_JSON), source="d"))
    case = _hits(tmp_path / CASES_JSON)[0]
    assert "sex_at_birth" in case["demographic"] and "follow_ups" in case


def test_query_filters_by_project(client, gdc_double, tmp_path):
    project = gdc_double.cases[0]["project"]["project_id"]
    meta = query_cohort_(client=client, out_dir=tmp_path, projects=[project], config={})
    assert {c["project"]["project_id"] for c in meta.cases} == {project}
    assert all(h["cases"][0]["project"]["project_id"] == project for h in meta.slides + meta.rnaseq)


def test_max_patients(client, gdc_double, tmp_path):
    meta = query_cohort_(client=client, out_dir=tmp_path, projects=PROJECTS, config={}, max_patients=2)
    patients = {r.patient_id for r in meta.rows}
    assert len(patients) == 2 and {c["submitter_id"] for c in meta.cases} == patients


@pytest.mark.parametrize("name", [
    "../../etc/passwd", "/etc/passwd.svs", "a/b.svs", "a\\b.svs", "..", "x..svs", "evil\n.svs", "nul\x00.svs",
    "tab\t.svs", "C:evil.svs", "-rf.svs", "", " lead.svs", "x" * 300 + ".svs", "\u202egnp.svs",
])
def test_hostile_names_are_refused(name):
    with pytest.raises(UnsafeFileNameError, match=FID):
        safe_file_name(name, file_id=FID)


def test_plain_names_are_kept():
    name = "TCGA-02-0001-01Z-00-DX1.83fce43e-42ac-4dcd-b156-2908e75f2e47.svs"
    assert safe_file_name(name, file_id=FID) == name
    assert relative_path(kind="slide", file_id=FID, filename=name) == Path("slides") / name
    star = f"{FID}.rna_seq.augmented_star_gene_counts.tsv"
    assert relative_path(kind="rnaseq", file_id=FID, filename=star) == Path("rnaseq") / FID / star
    with pytest.raises(UnsafeFileNameError):
        relative_path(kind="rnaseq", file_id="../x", filename=star)


@pytest.mark.parametrize("name", ["../../../tmp/owned.svs", "/abs/owned.svs", "ctl\r.svs"])
def test_hostile_name_from_the_api_stops_the_query(client, gdc_double, tmp_path, name):
    victim = next(f["id"] for f in gdc_double.files if f["data_format"] == "SVS")
    gdc_double.faults.hostile_name(victim, name)
    with pytest.raises(UnsafeFileNameError, match=victim):
        query_cohort_(client=client, out_dir=tmp_path / "root", projects=PROJECTS, config={})
    assert not (tmp_path / "root" / MANIFEST_TSV).exists()
    assert not (tmp_path / "owned.svs").exists()


def test_manifest_reader_refuses_hostile_rows_and_infers_kind(tmp_path):
    star = f"{FID}.rna_seq.augmented_star_gene_counts.tsv"
    slide = "TCGA-02-0001-01Z-00-DX1.83FCE43E-42AC-4DCD-B156-2908E75F2E47.svs"
    ok = tmp_path / "ok.tsv"
    ok.write_text("id\tfilename\tmd5\tsize\tstate\n"
                  f"{FID}\t{star}\t{'a' * 32}\t10\treleased\n"
                  f"1b4f1a2e-2c51-4d8a-9a7e-5f1c2d3e4a5b\t{slide}\t{'b' * 32}\t20\treleased\n")
    rows = read_manifest_(ok)
    assert [(r.kind, r.patient_id) for r in rows] == [("rnaseq", ""), ("slide", "TCGA-02-0001")]
    bad = tmp_path / "bad.tsv"
    bad.write_text(f"id\tfilename\tmd5\tsize\n{FID}\t../../x.svs\t{'a' * 32}\t10\n")
    with pytest.raises(UnsafeFileNameError, match=FID):
        read_manifest_(bad)
    dup = tmp_path / "dup.tsv"
    dup.write_text(f"id\tfilename\tmd5\tsize\n{FID}\t{star}\t{'a' * 32}\t1\n{FID}\t{star}\t{'a' * 32}\t1\n")
    with pytest.raises(InputDataError, match="more than once"):
        read_manifest_(dup)
    with pytest.raises(InputDataError, match="lacks column"):
        (tmp_path / "cols.tsv").write_text("id\tfilename\n")
        read_manifest_(tmp_path / "cols.tsv")


def test_user_manifest_skips_the_cohort_query(client, gdc_double, tmp_path):
    query_cohort_(client=client, out_dir=tmp_path / "full", projects=PROJECTS, config={})
    full = pd.read_csv(tmp_path / "full" / MANIFEST_TSV, sep="\t", dtype=str)
    patient = full.loc[full["kind"] == "slide", "patient_id"].iloc[0]
    subset = full[full["patient_id"] == patient][["id", "filename", "md5", "size", "state"]]  # a plain DTT manifest
    user = tmp_path / "user" / "my_manifest.tsv"
    user.parent.mkdir()
    subset.to_csv(user, sep="\t", index=False)
    n_before = len(gdc_double.requests)
    meta = query_cohort_(client=client, out_dir=tmp_path / "root", projects=PROJECTS, config={}, user_manifest=user)
    assert {r.id for r in meta.rows} == set(subset["id"]) and {r.patient_id for r in meta.rows} == {patient}
    assert [c["submitter_id"] for c in meta.cases] == [patient]
    bodies = [json.loads(r.body) for r in gdc_double.requests[n_before:] if r.method == "POST"]
    assert bodies and all(b["filters"]["content"]["field"] in ("file_id", "case_id") for b in bodies)

    # metadata written by `gdc query` beside the manifest are reused: no request at all
    n_before = len(gdc_double.requests)
    meta2 = query_cohort_(client=client, out_dir=tmp_path / "root2", projects=PROJECTS, config={},
                          user_manifest=tmp_path / "root" / MANIFEST_TSV)
    assert len(gdc_double.requests) == n_before
    assert [r.id for r in meta2.rows] == [r.id for r in meta.rows]


def test_user_manifest_with_an_unknown_id_fails(client, gdc_double, tmp_path):
    user = tmp_path / "m.tsv"
    user.write_text(f"id\tfilename\tmd5\tsize\n{FID}\tTCGA-02-0001-01Z-00-DX1.svs\t{'a' * 32}\t5\n")
    with pytest.raises(InputDataError, match=FID):
        query_cohort_(client=client, out_dir=tmp_path / "root", projects=PROJECTS, config={}, user_manifest=user)


def _cli(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "gliofuse", "--log-level", "DEBUG", *args], capture_output=True,
                          text=True, env=env, timeout=120, check=False)


def test_cli_query_and_download_never_leak_the_token(demo_root, tmp_path):
    from tests.fakes.gdc_double import GdcDouble

    secret = "tok-9f2c4e71d0b8a3-SECRET"
    root = tmp_path / "data"
    cfg = tmp_path / "config.yaml"
    cfg.write_text(yaml.safe_dump({"cohort": "tcga", "data_root": str(root), "gdc": {
        "download": True, "token_env": "MY_GDC_TOKEN", "page_size": 4, "backoff_s": 0.01}}))
    env = {**os.environ, "MY_GDC_TOKEN": secret}
    with GdcDouble(demo_root, require_token=secret) as double:
        yaml_cfg = yaml.safe_load(cfg.read_text())
        yaml_cfg["gdc"]["api_url"] = double.url
        cfg.write_text(yaml.safe_dump(yaml_cfg))
        double.faults.fail_next("/files", 500)
        double.faults.cut_mid_file(next(f["id"] for f in double.files if f["data_format"] == "SVS"))
        q = _cli(["gdc", "query", "--config", str(cfg)], env)
        assert q.returncode == 0, q.stderr[-3000:]
        one = read_manifest_(root / MANIFEST_TSV)[0]
        d1 = _cli(["gdc", "download", "--config", str(cfg), "--file-id", one.id, "--out",
                   str(root / one.relpath)], env)
        assert d1.returncode == 0, d1.stderr[-3000:]
        d = _cli(["gdc", "download", "--config", str(cfg), "--jobs", "3"], env)
        assert d.returncode == 0, d.stderr[-3000:]
        assert all(r.headers.get("X-Auth-Token") == secret for r in double.requests if r.path.startswith("/data"))
        # without the token the double refuses the download: the error names the fix, not the token
        bad = _cli(["gdc", "download", "--config", str(cfg), "--file-id", one.id, "--out", str(tmp_path / "x" / one.filename)],
                   {**os.environ, "MY_GDC_TOKEN": ""})
        assert bad.returncode == 1 and "403" in bad.stderr and "token" in bad.stderr
    rows = read_manifest_(root / MANIFEST_TSV)
    assert all((root / r.relpath).read_bytes() == (demo_root / r.relpath).read_bytes() for r in rows)
    logs = q.stdout + q.stderr + d1.stdout + d1.stderr + d.stdout + d.stderr + bad.stdout + bad.stderr
    assert "HTTP 500" in logs and "resuming" in logs  # the logs are real
    assert secret not in logs
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert len(written) > len(rows)
    for p in written:
        assert secret.encode() not in p.read_bytes(), p


def test_cli_download_rejects_an_out_path_with_another_name(client, demo_root, tmp_path):
    query_cohort_(client=client, out_dir=tmp_path, projects=PROJECTS, config={})
    one = read_manifest_(tmp_path / MANIFEST_TSV)[0]
    cfg = tmp_path / "config.yaml"
    cfg.write_text(yaml.safe_dump({"cohort": "tcga", "data_root": str(tmp_path), "gdc": {"api_url": client.api_url}}))
    p = _cli(["gdc", "download", "--config", str(cfg), "--file-id", one.id, "--out", str(tmp_path / "other.svs")],
             dict(os.environ))
    assert p.returncode == 2 and "does not end in the file name" in p.stderr


def test_query_takes_data_root_like_download_and_out_dir_as_a_deprecated_alias(demo_root, tmp_path):
    from tests.fakes.gdc_double import GdcDouble

    cfg = tmp_path / "config.yaml"
    with GdcDouble(demo_root) as double:
        cfg.write_text(yaml.safe_dump({"cohort": "tcga", "data_root": str(tmp_path / "unused"),
                                       "gdc": {"download": True, "api_url": double.url, "token_env": None}}))
        new = _cli(["gdc", "query", "--config", str(cfg), "--data-root", str(tmp_path / "new")], dict(os.environ))
        old = _cli(["gdc", "query", "--config", str(cfg), "--out-dir", str(tmp_path / "old")], dict(os.environ))
    assert new.returncode == 0 and old.returncode == 0, new.stderr[-2000:] + old.stderr[-2000:]
    assert (tmp_path / "new" / MANIFEST_TSV).read_text() == (tmp_path / "old" / MANIFEST_TSV).read_text()
    assert not (tmp_path / "unused").exists()
    assert "--out-dir is deprecated; use --data-root" in old.stderr and "deprecated" not in new.stderr
