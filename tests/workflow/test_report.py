"""The Snakemake report renders in headless Chromium with its figures, and every figure is rebuilt from the stored
tables only (no retraining), byte for byte.

Both tests work on copies of the shared reduced demo run (``demo_run`` in conftest.py). Chromium comes from
Debian (``apt-get install chromium``; `.ci/run` installs it): without it the browser test is skipped locally and
fails under CI (``CI`` set).
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.workflow.conftest import copy_run, job_counts, snakemake

CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--no-first-run", "--hide-scrollbars")
CATEGORIES = ("0. Cohort", "1. Results", "2. Models", "3. Training", "4. Attention")
#: models that write attention.h5 (docs/data-contracts.md §10)
ATTENTION_MODELS = frozenset({"abmil", "abmil_snn_concat", "subspace_fusion", "subspace_fusion_no_split",
                              "subspace_fusion_no_cons", "subspace_fusion_no_gc"})


def _attention_models(results: Path) -> list[str]:
    """Trained models of the run that write attention; the demo run has at least abmil_snn_concat."""
    models = sorted(p.name for p in (results / "training").iterdir() if p.name in ATTENTION_MODELS)
    assert "abmil_snn_concat" in models, models
    return models
#: figure rules rebuilt by --forcerun; none of them may retrain or re-evaluate
FIGURE_RULES = ("report_model_task", "report_summary", "report_forest",
                "report_cohort", "report_qc", "report_markdown")
#: clicks through the report app: category "2. Models", then the first item's eye button (shows the figure)
CLICK_SCRIPT = """<script>
function clickText(t) { for (const a of document.querySelectorAll('a')) { if (a.textContent.trim() === t) {
  a.click(); return true; } } return false; }
setTimeout(() => { clickText('2. Models'); }, 500);
setTimeout(() => { const e = document.querySelector('a[iconname="eye"]'); if (e) { e.click(); } }, 1200);
</script>"""


def _chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    # a failure, never a skip: the report must be checked in a real browser (.ci/run installs it)
    pytest.fail("headless Chromium is not installed: run `apt-get install -y chromium` (as .ci/run does)")


def _run_chromium(binary: str, page: Path, profile: Path, *args: str) -> subprocess.CompletedProcess:
    cmd = [binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--virtual-time-budget=15000", *args,
           page.resolve().as_uri()]
    proc = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}"
    return proc


def _visible_text(dom: str) -> str:
    body = re.sub(r"<(script|style)\b.*?</\1>", " ", dom, flags=re.DOTALL)
    return " ".join(re.sub(r"<[^>]+>", " ", body).split())


def _report_categories(html: str) -> dict[str, dict[str, list[str]]]:
    """The report's ``var categories = {category: {subcategory: [result paths]}}``."""
    m = re.search(r"var categories = (\{.*?\});\s*</script>", html, flags=re.DOTALL)
    assert m, "report.html has no embedded categories"
    return json.loads(m.group(1))


def _report_items(html: str) -> dict[str, dict]:
    """The report's embedded result items (``var results = {...}`` of the Snakemake report app)."""
    m = re.search(r"var results = (\{.*?\});\s*</script>", html, flags=re.DOTALL)
    assert m, "report.html has no embedded results"
    return json.loads(m.group(1))


def _not_blank(img: Image.Image) -> bool:
    a = np.asarray(img.convert("RGB"), dtype=np.float64)
    return a.std() > 10 and len(np.unique(a.reshape(-1, 3), axis=0)) > 50


@pytest.mark.slow
def test_report_renders_in_headless_chromium(demo_run: Path, tmp_path: Path) -> None:
    binary = _chromium()
    work = copy_run(demo_run, tmp_path / "run")
    snakemake(work, "--report", "results/report.html")
    report = work / "results" / "report.html"
    html = report.read_text()

    # every figure and table is embedded, and each figure decodes to a non-blank image
    items = _report_items(html)
    names = {v["filename"] for v in items.values()}
    for expected in ("cohort.png", "qc_slides.png", "slides.tsv", "summary.tsv", "summary.png", "comparisons.tsv",
                     "ablation.tsv", "forest.png", "summary.md", "survival.png", "diagnosis.png",
                     "survival_training.png", "diagnosis_training.png"):
        assert expected in names, (expected, sorted(names))
    pngs = [v for v in items.values() if v["mime_type"] == "image/png"]
    assert len(pngs) >= 8
    for item in pngs:
        data = base64.b64decode(item["data_uri"].split("base64,", 1)[1])
        with Image.open(io.BytesIO(data)) as im:
            assert im.width > 200 and im.height > 150 and _not_blank(im), item["filename"]
        assert item["caption"].strip(), f"{item['filename']} has no caption"

    # the attention heatmaps are in their category, one subcategory per model with attention
    attention = _report_categories(html)["4. Attention"]
    models = _attention_models(work / "results")
    assert set(models) <= set(attention), sorted(attention)
    for model in models:
        assert any(f"{model}/survival_attention/" in p and p.endswith(".png") for p in attention[model])

    # the app runs: the navigation lists the report's categories
    dom = _run_chromium(binary, report, tmp_path / "profile1", "--dump-dom").stdout
    text = _visible_text(dom)
    assert "Snakemake Report" in text and "Results" in text, text[:500]
    for category in CATEGORIES:
        assert category in text, (category, text[:1000])

    # open a model figure as a user would; it is displayed and the screenshot is not blank
    clicked = tmp_path / "clicked.html"
    clicked.write_text(html[: html.rfind("</body>")] + CLICK_SCRIPT + html[html.rfind("</body>"):])
    dom = _run_chromium(binary, clicked, tmp_path / "profile2", "--dump-dom").stdout
    shown = re.findall(r'<img src="data:image/png;charset=utf8;filename=([^;"]+)', dom)
    assert set(shown) & {"survival.png", "diagnosis.png"}, shown
    shot = tmp_path / "shot.png"
    _run_chromium(binary, clicked, tmp_path / "profile3", "--window-size=1400,900", f"--screenshot={shot}")
    with Image.open(shot) as im:
        assert im.size == (1400, 900)
        figure_area = im.crop((int(im.width * 0.3), 0, im.width, im.height))
        assert _not_blank(figure_area), "the figure area of the screenshot is blank"


def test_attention_heatmaps_of_the_configured_patients(demo_run: Path) -> None:
    """Attention models write attention.h5 per fold (test slides); report_attention draws report.attention_patients."""
    import h5py
    import pandas as pd

    res = demo_run / "results"
    n_patients = 3  # report.attention_patients (default; SMALL leaves it)
    for model in _attention_models(res):
        for task in ("survival", "diagnosis"):
            folds = sorted((res / "training" / model / task).glob("fold_*"))
            assert len(folds) == len(list((res / "splits").glob("fold_*.json")))
            for fold in folds:
                pred = pd.read_csv(fold / "predictions.tsv", sep="\t", dtype={"patient_id": str})
                with h5py.File(fold / "attention.h5", "r") as fh:
                    patients = {str(fh[s].attrs["patient_id"]) for s in fh}
                    assert all(fh[s].attrs["split"] == "test" for s in fh)
                # the fold's test patients with this task's outcome (prediction rows), each with its slides
                assert patients == set(pred.loc[pred["split"] == "test", "patient_id"]), (model, task, fold)
            oof = pd.read_csv(res / "evaluation" / model / task / "predictions_oof.tsv", sep="\t",
                              dtype={"patient_id": str})
            pngs = sorted((res / "figures" / model / f"{task}_attention").glob("*.png"))
            assert len(pngs) == min(n_patients, len(oof)), (model, task, pngs)
            assert {p.stem for p in pngs} <= set(oof["patient_id"])
            for png in pngs:
                assert png.with_suffix(".svg").exists()
                with Image.open(png) as im:
                    assert im.width > 200 and im.height > 150 and _not_blank(im), png
                    rgb = np.asarray(im.convert("RGB"), dtype=np.int64)
                # the heat overlay is drawn on the slide panels (left of the colour bar): orange patches of
                # high-percentile attention, a colour the H&E thumbnails themselves never have
                panels = rgb[:, : int(rgb.shape[1] * 0.8)]
                orange = (panels[..., 0] > 200) & (panels[..., 1] > 120) & (panels[..., 2] < 120)
                assert orange.sum() > 500, (png, int(orange.sum()))


def _hashes(results: Path) -> dict[str, str]:
    files = [p for p in (results / "figures").rglob("*") if p.is_file() and not p.name.startswith(".")]
    files += [results / "summary.md"]
    return {str(p.relative_to(results)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(files)}


@pytest.mark.slow
def test_figures_regenerate_from_tables_byte_identically(demo_run: Path, tmp_path: Path) -> None:
    work = copy_run(demo_run, tmp_path / "run")
    res = work / "results"
    original = _hashes(res)
    assert any(k.endswith(".svg") for k in original) and "summary.md" in original
    checkpoints = {p: p.stat().st_mtime_ns for p in (res / "training").rglob("checkpoint.pt")}
    assert checkpoints

    first = snakemake(work, "--forcerun", *FIGURE_RULES)
    counts = job_counts(first.stdout + first.stderr)
    assert counts, first.stderr[-2000:]
    assert set(counts) - {"all"} == set(FIGURE_RULES), counts  # nothing upstream (training, evaluation) reran
    again = _hashes(res)
    snakemake(work, "--forcerun", *FIGURE_RULES)
    third = _hashes(res)
    assert again == third, sorted(k for k in again if again[k] != third.get(k))
    assert again == original, sorted(k for k in again if again[k] != original.get(k))
    assert {p: p.stat().st_mtime_ns for p in checkpoints} == checkpoints
