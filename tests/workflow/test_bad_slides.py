"""Unreadable slides are recorded, not fatal: the reduced demo data, with a truncated, an empty and a non-WSI
slide, runs to ``report.html``; the slide QC table (also embedded in the report) names the three with their
reasons; patients left without a usable slide leave the cohort (``no_ok_slide``), a patient with another good
slide stays; and more failures than ``data.max_failed_slide_fraction`` stop data_splits with the slides named.

The data root is written by ``gliofuse demo generate`` (the SMALL demo of conftest.py) and used in GDC layout
(``cohort: tcga``, ``data_root``), one task and one model, so the run is about one reduced demo run.
"""

from __future__ import annotations

import base64
import json
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from tests.workflow.conftest import SMALL, snakemake, write_config

GLIOFUSE = str(Path(sys.executable).parent / "gliofuse")
QC = "results/qc/slides.tsv"


def _demo_root(tmp_path: Path) -> Path:
    cfg = write_config(tmp_path / "gen", {"seed": SMALL["seed"], "demo": SMALL["demo"]})
    root = tmp_path / "data"
    subprocess.run([GLIOFUSE, "demo", "generate", "--config", str(cfg), "--out", str(root)], check=True,
                   capture_output=True, text=True, timeout=300)
    return root


def _break_slides(slides: Path) -> dict[str, str]:
    """Replace three slides: a truncated SVS (of a patient with a second slide), an empty file and a text file
    (of two one-slide patients). Returns {slide_id: expected reason fragment}."""
    by_patient: dict[str, list[Path]] = {}
    for p in sorted(slides.glob("*.svs")):
        by_patient.setdefault(p.name[:12], []).append(p)
    two = [ps for ps in by_patient.values() if len(ps) > 1]
    one = [ps[0] for ps in by_patient.values() if len(ps) == 1]
    assert two and len(one) >= 2, by_patient
    truncated, empty, text = two[0][0], one[0], one[1]
    data = truncated.read_bytes()
    truncated.write_bytes(data[: len(data) // 2])
    empty.write_bytes(b"")
    text.write_text("slide withdrawn; see the pathology report\n")
    return {truncated.stem: "cannot open slide", empty.stem: "is empty (0 bytes)", text.stem: "cannot open slide"}


def _report_qc_table(html: str) -> str:
    m = re.search(r"var results = (\{.*?\});\s*</script>", html, flags=re.DOTALL)
    assert m, "report.html has no embedded results"
    items = [v for v in json.loads(m.group(1)).values() if v.get("name", "").endswith("slides.tsv")]
    assert len(items) == 1, "the slide QC table is not in the report"
    return base64.b64decode(items[0]["data_uri"].split("base64,", 1)[1]).decode()


@pytest.mark.slow
def test_bad_slides_are_recorded_and_the_study_goes_on(tmp_path: Path) -> None:
    root = _demo_root(tmp_path)
    bad = _break_slides(root / "slides")
    n_slides = len(list((root / "slides").glob("*.svs")))
    work = tmp_path / "run"
    cfg = {**SMALL, "cohort": "tcga", "data_root": str(root),
           "labels": {"molecular_table": str(root / "labels" / "molecular.tsv")},
           "data": {**SMALL["data"], "max_failed_slide_fraction": 0.3},
           "training": {**SMALL["training"], "models": ["abmil_snn_concat"], "tasks": ["survival"]}}
    write_config(work, cfg)
    snakemake(work)
    snakemake(work, "--report", "results/report.html")

    qc = pd.read_csv(work / QC, sep="\t", keep_default_na=False).set_index("slide_id")
    assert len(qc) == n_slides
    failed = qc.loc[qc["status"] == "failed"]
    assert set(failed.index) == set(bad)
    for sid, fragment in bad.items():
        reason = qc.loc[sid, "reason"]
        assert reason.startswith("unreadable: ") and fragment in reason and sid in reason, (sid, reason)
        assert qc.loc[sid, "n_patches"] == 0 and qc.loc[sid, "features_status"] == "skipped"
        assert qc.loc[sid, "features_reason"] == reason
        assert json.loads((work / f"results/wsi/status/{sid}.json").read_text())["status"] == "failed"
    assert (qc.drop(index=list(bad))["status"] == "ok").all()

    cohort = pd.read_csv(work / "results/splits/cohort.tsv", sep="\t", keep_default_na=False).set_index("patient_id")
    for sid in bad:
        patient = sid[:12]
        others = [s for s in qc.index if s[:12] == patient and s not in bad]
        if others:  # the truncated slide's patient keeps its good slide
            assert cohort.loc[patient, "in_cohort"] == 1 and cohort.loc[patient, "slide_ids"] == ";".join(others)
        else:
            assert cohort.loc[patient, "in_cohort"] == 0 and cohort.loc[patient, "reason"] == "no_ok_slide"
    oof = pd.read_csv(work / "results/evaluation/abmil_snn_concat/survival/predictions_oof.tsv", sep="\t")
    assert set(oof["patient_id"]) <= set(cohort.index[cohort["in_cohort"] == 1]) and len(oof) >= 8
    log = (work / "results/logs/data_splits/splits.log").read_text()
    assert f"3 of {n_slides} slide(s) failed and are left out" in log and all(s in log for s in bad)

    html = (work / "results/report.html").read_text(errors="ignore")
    table = _report_qc_table(html)
    for sid, fragment in bad.items():
        row = next(line for line in table.splitlines() if line.startswith(sid))
        assert "\tfailed\t" in row and fragment in row, row

    # more failures than the configured fraction: data_splits stops, naming the slides; earlier outputs stay
    write_config(work, {**cfg, "data": {**cfg["data"], "max_failed_slide_fraction": 0.1}})
    proc = snakemake(work, "results/splits/cohort.tsv", check=False)
    assert proc.returncode != 0
    log = (work / "results/logs/data_splits/splits.log").read_text()
    assert f"3 of {n_slides} slides failed" in log and "max_failed_slide_fraction=0.1" in log, log[-2000:]
    assert all(s in log for s in bad)
    assert (work / QC).exists() and len(list((work / "results/wsi/status").glob("*.json"))) == n_slides
