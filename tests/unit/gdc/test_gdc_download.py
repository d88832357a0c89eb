"""Downloads from the double: Range semantics, resume after a cut, retries, md5 re-fetch, tar bundles."""

from __future__ import annotations

import hashlib
import io
import tarfile
from pathlib import Path

import pytest
import requests

from gliofuse.gdc.download import DownloadError, download_all_, download_file_, part_path
from gliofuse.gdc.manifest import ManifestRow


def _row(double, *, kind: str = "slide", biggest: bool = True) -> ManifestRow:
    fmt = "SVS" if kind == "slide" else "TSV"
    files = sorted((f for f in double.files if f["data_format"] == fmt), key=lambda f: f["file_size"])
    f = files[-1] if biggest else files[0]
    return ManifestRow(id=f["id"], filename=f["file_name"], md5=f["md5sum"], size=f["file_size"], state="released",
                       kind=kind, patient_id=f["cases"][0]["submitter_id"])


def _original(double, row: ManifestRow) -> bytes:
    return double.paths[row.id].read_bytes()


def test_range_semantics_of_the_double(gdc_double):
    row = _row(gdc_double)
    data = _original(gdc_double, row)
    url = f"{gdc_double.url}/data/{row.id}"
    full = requests.get(url, timeout=10)
    assert full.status_code == 200 and full.content == data
    assert full.headers["Content-Disposition"] == f"attachment; filename={row.filename}"
    r = requests.get(url, headers={"Range": "bytes=10-19"}, timeout=10)
    assert r.status_code == 206 and r.content == data[10:20]
    assert r.headers["Content-Range"] == f"bytes 10-19/{len(data)}"
    r = requests.get(url, headers={"Range": f"bytes={len(data) - 5}-"}, timeout=10)
    assert r.status_code == 206 and r.content == data[-5:]
    r = requests.get(url, headers={"Range": "bytes=-7"}, timeout=10)
    assert r.status_code == 206 and r.content == data[-7:]
    r = requests.get(url, headers={"Range": f"bytes={len(data)}-"}, timeout=10)
    assert r.status_code == 416 and r.headers["Content-Range"] == f"bytes */{len(data)}"
    assert requests.get(f"{gdc_double.url}/data/00000000-0000-4000-8000-000000000000", timeout=10).status_code == 404


def test_tar_bundles_of_several_ids(gdc_double):
    ids = [f["id"] for f in gdc_double.files[:3]]
    for resp in (requests.get(f"{gdc_double.url}/data/{','.join(ids)}", timeout=10),
                 requests.post(f"{gdc_double.url}/data", json={"ids": ids}, timeout=10),
                 requests.post(f"{gdc_double.url}/data", data={"ids": ids}, timeout=10)):
        assert resp.status_code == 200
        assert resp.headers["Content-Disposition"].endswith(".tar.gz")
        with tarfile.open(fileobj=io.BytesIO(resp.content), mode="r:gz") as tar:
            names = tar.getnames()
            for fid in ids:
                member = f"{fid}/{gdc_double.files_by_id[fid]['file_name']}"
                assert member in names
                assert tar.extractfile(member).read() == gdc_double.paths[fid].read_bytes()
            assert "MANIFEST.txt" in names
    plain = requests.get(f"{gdc_double.url}/data/{','.join(ids)}?tarfile", timeout=10)
    with tarfile.open(fileobj=io.BytesIO(plain.content), mode="r:") as tar:
        assert len(tar.getnames()) == len(ids) + 1


def test_download_verifies_and_renames(client, gdc_double, tmp_path):
    row = _row(gdc_double, kind="rnaseq")
    dest = tmp_path / row.relpath
    res = download_file_(client, row, dest)
    assert dest.read_bytes() == _original(gdc_double, row)
    assert res.md5 == row.md5 and not res.skipped and res.resumed == 0
    assert not part_path(dest).exists()
    again = download_file_(client, row, dest)
    assert again.skipped and gdc_double.count("GET", "/data") == 1


def test_resume_after_mid_file_cut_is_byte_identical(client, gdc_double, tmp_path):
    row = _row(gdc_double)  # the biggest slide (> 2 read chunks)
    assert row.size > 140_000
    gdc_double.faults.cut_mid_file(row.id, at_byte=row.size - 1000)
    dest = tmp_path / row.relpath
    res = download_file_(client, row, dest)
    assert dest.read_bytes() == _original(gdc_double, row)
    assert res.resumed == 1
    ranges = [r.headers.get("Range") for r in gdc_double.requests if r.path.startswith("/data")]
    assert ranges[0] is None and ranges[1].startswith("bytes=") and ranges[1] != "bytes=0-"


def test_resume_of_a_part_file_left_by_a_killed_job(client, gdc_double, tmp_path):
    row = _row(gdc_double)
    dest = tmp_path / row.relpath
    dest.parent.mkdir(parents=True)
    part_path(dest).write_bytes(_original(gdc_double, row)[:12345])
    res = download_file_(client, row, dest)
    assert dest.read_bytes() == _original(gdc_double, row) and res.resumed == 1
    assert gdc_double.requests[-1].headers["Range"] == "bytes=12345-"
    assert res.fetched_bytes == row.size - 12345


def test_download_retries_500_and_429(client, gdc_double, sleeps, tmp_path):
    row = _row(gdc_double, kind="rnaseq")
    gdc_double.faults.fail_next("/data", 500, times=2)
    gdc_double.faults.fail_next("/data", 429, retry_after=3)
    download_file_(client, row, tmp_path / row.relpath)
    assert (tmp_path / row.relpath).read_bytes() == _original(gdc_double, row)
    assert 3.0 in sleeps.waits and len(sleeps.waits) == 3


def test_corrupted_transfer_is_fetched_again(client, gdc_double, tmp_path):
    row = _row(gdc_double, kind="rnaseq")
    gdc_double.faults.corrupt_next(row.id)
    res = download_file_(client, row, tmp_path / row.relpath)
    assert res.refetched == 1 and gdc_double.count("GET", "/data") == 2
    assert (tmp_path / row.relpath).read_bytes() == _original(gdc_double, row)


def test_wrong_md5_fails_after_one_refetch_naming_the_file(client, gdc_double, tmp_path):
    good = _row(gdc_double, kind="rnaseq")
    row = ManifestRow(**{**good.__dict__, "md5": hashlib.md5(b"not it").hexdigest()})
    dest = tmp_path / row.relpath
    with pytest.raises(DownloadError, match=rf"GDC file {row.id} .*md5 .* after 2 downloads"):
        download_file_(client, row, dest)
    assert gdc_double.count("GET", "/data") == 2
    assert not dest.exists() and not part_path(dest).exists()


def test_wrong_size_fails_naming_the_file(client, gdc_double, tmp_path):
    good = _row(gdc_double, kind="rnaseq")
    row = ManifestRow(**{**good.__dict__, "size": good.size - 10})
    with pytest.raises(DownloadError, match=rf"{row.id}"):
        download_file_(client, row, tmp_path / row.relpath, refetch_on_mismatch=0)


def test_too_many_cuts_keep_the_part_for_a_later_resume(client, gdc_double, tmp_path):
    row = _row(gdc_double)
    gdc_double.faults.cut_mid_file(row.id, times=10)
    dest = tmp_path / row.relpath
    with pytest.raises(DownloadError, match=rf"{row.id}.*interrupted"):
        download_file_(client, row, dest)
    assert not dest.exists()
    gdc_double.faults.clear()
    res = download_file_(client, row, dest)
    assert dest.read_bytes() == _original(gdc_double, row) and res.resumed == 1


def test_download_all_into_the_demo_layout(client, gdc_double, demo_root, tmp_path):
    rows = [ManifestRow(id=f["id"], filename=f["file_name"], md5=f["md5sum"], size=f["file_size"], state="released",
                        kind="slide" if f["data_format"] == "SVS" else "rnaseq",
                        patient_id=f["cases"][0]["submitter_id"]) for f in gdc_double.files]
    gdc_double.faults.cut_mid_file(rows[0].id)
    download_all_(client, rows, tmp_path, jobs=3)
    for sub in ("slides", "rnaseq"):
        ours = sorted(p.relative_to(tmp_path) for p in (tmp_path / sub).rglob("*") if p.is_file())
        theirs = sorted(p.relative_to(demo_root) for p in (demo_root / sub).rglob("*") if p.is_file())
        assert ours == theirs
        assert all((tmp_path / p).read_bytes() == (demo_root / p).read_bytes() for p in ours)


def test_failures_are_collected(client, gdc_double, tmp_path):
    good = _row(gdc_double, kind="rnaseq")
    bad = ManifestRow(**{**_row(gdc_double).__dict__, "md5": "0" * 32})
    with pytest.raises(DownloadError, match=rf"1 of 2 GDC downloads failed:\n  GDC file {bad.id}"):
        download_all_(client, [good, bad], tmp_path, jobs=2, refetch_on_mismatch=0)
    assert (tmp_path / good.relpath).exists() and not Path(tmp_path / bad.relpath).exists()


def test_wrong_md5_in_the_gdc_metadata_end_to_end(client, gdc_double, tmp_path):
    from gliofuse.gdc.manifest import read_manifest_
    from gliofuse.gdc.query import MANIFEST_TSV, query_cohort_

    victim = _row(gdc_double, kind="rnaseq")
    gdc_double.faults.report_wrong_md5(victim.id)
    query_cohort_(client=client, out_dir=tmp_path, projects=["TCGA-GBM", "TCGA-LGG"], config={})
    row = next(r for r in read_manifest_(tmp_path / MANIFEST_TSV) if r.id == victim.id)
    assert row.md5 != victim.md5
    with pytest.raises(DownloadError, match=rf"GDC file {victim.id} .* after 2 downloads"):
        download_file_(client, row, tmp_path / row.relpath)
    assert gdc_double.count("GET", f"/data/{victim.id}") == 2


def test_manifest_endpoints(gdc_double):
    flt = '{"op": "in", "content": {"field": "data_format", "value": ["SVS"]}}'
    text = requests.get(f"{gdc_double.url}/files", params={"filters": flt, "return_type": "manifest", "size": 1},
                        timeout=10).text
    lines = text.strip().split("\n")
    assert lines[0] == "id\tfilename\tmd5\tsize\tstate"
    assert len(lines) - 1 == sum(f["data_format"] == "SVS" for f in gdc_double.files)  # size is ignored
    fid = gdc_double.files[0]["id"]
    one = requests.post(f"{gdc_double.url}/manifest", json={"ids": [fid]}, timeout=10).text.strip().split("\n")
    assert one[1].split("\t")[:2] == [fid, gdc_double.files[0]["file_name"]]
