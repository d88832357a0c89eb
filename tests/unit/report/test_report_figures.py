"""Figures are written as non-empty PNGs with SVG twins from evaluation tables, byte-reproducibly."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from gliofuse.errors import InputDataError
from gliofuse.report.figures import plot_cohort_, plot_model_task_, plot_summary_

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
CLASSES = ("G2", "G3", "G4")


def _assert_png(path: Path) -> None:
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC and len(data) > 5000
    svg = path.with_suffix(".svg").read_text()
    assert svg.lstrip().startswith("<?xml") and "<svg" in svg
    assert "<dc:date>" not in svg and "Matplotlib" not in svg  # no timestamp or version metadata
    assert b"Software" not in data  # PNG text chunk left out


def _oof(path: Path, task: str, n: int = 31, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    z = rng.standard_normal(n)
    df = pd.DataFrame({"patient_id": [f"TCGA-02-{i:04d}" for i in range(n)], "model": "abmil_snn_concat",
                       "task": task, "fold": np.arange(n) % 3, "split": "test"})
    if task == "survival":
        df["time_days"] = np.exp(-z) * 400 + 1
        df["event"] = (rng.random(n) < 0.7).astype(int)
        df["risk"] = z
    else:
        y = rng.integers(0, 3, n)
        prob = rng.dirichlet(np.ones(3), n) + np.eye(3)[y]
        prob /= prob.sum(axis=1, keepdims=True)
        df["y_true"], df["y_pred"] = y, prob.argmax(1)
        for k, c in enumerate(CLASSES):
            df[f"prob_{c}"] = prob[:, k]
    df.to_csv(path, sep="\t", index=False)
    return path


@pytest.mark.parametrize("task", ["survival", "grade"])
def test_plot_model_task(tmp_path: Path, task: str) -> None:
    out = tmp_path / "figs" / f"{task}.png"
    plot_model_task_(oof_path=_oof(tmp_path / "oof.tsv", task), task=task, out_png=out)
    _assert_png(out)


def test_figures_are_byte_identical_when_regenerated(tmp_path: Path) -> None:
    oof = _oof(tmp_path / "oof.tsv", "survival")
    a, b = tmp_path / "a" / "km.png", tmp_path / "b" / "km.png"
    plot_model_task_(oof_path=oof, task="survival", out_png=a)
    plot_model_task_(oof_path=oof, task="survival", out_png=b, dpi=110)
    assert a.read_bytes() == b.read_bytes()
    assert a.with_suffix(".svg").read_bytes() == b.with_suffix(".svg").read_bytes()
    pdf = tmp_path / "c" / "km.pdf"
    plot_model_task_(oof_path=oof, task="survival", out_png=tmp_path / "c" / "km.png", out_vector=pdf)
    plot_model_task_(oof_path=oof, task="survival", out_png=tmp_path / "d" / "km.png",
                     out_vector=tmp_path / "d" / "km.pdf")
    assert pdf.read_bytes()[:5] == b"%PDF-" and pdf.read_bytes() == (tmp_path / "d" / "km.pdf").read_bytes()


def test_at_risk_counts() -> None:
    from gliofuse.report.figures import at_risk_counts

    assert at_risk_counts(np.array([5.0, 10.0, 10.0, 30.0]), np.array([0.0, 10.0, 20.0, 40.0])) == [4, 3, 1, 0]


def test_plot_summary(tmp_path: Path) -> None:
    rows = []
    for model in ("abmil", "snn", "abmil_snn_concat"):
        rows.append((model, "survival", "c_index", 0.7, 0.05, 0.71, 0.62, 0.8))
        rows.append((model, "survival", "logrank_p", 0.01, 0.01, 0.001, np.nan, np.nan))
        rows.append((model, "diagnosis", "auc_macro", 0.8, 0.04, 0.82, np.nan, np.nan))
    path = tmp_path / "summary.tsv"
    pd.DataFrame(rows, columns=["model", "task", "metric", "mean", "sd", "pooled", "ci_low", "ci_high"]).to_csv(
        path, sep="\t", index=False)
    plot_summary_(summary_path=path, out_png=tmp_path / "summary.png")
    _assert_png(tmp_path / "summary.png")


def test_plot_cohort(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    n = 40
    dx = rng.integers(-1, 3, n)
    labels = pd.DataFrame({"patient_id": [f"TCGA-02-{i:04d}" for i in range(n)],
                           "time_days": np.where(rng.random(n) < 0.1, np.nan, rng.uniform(30, 3000, n)),
                           "event": rng.integers(0, 2, n), "diagnosis": dx, "grade": np.clip(dx, -1, 2)})
    path = tmp_path / "labels.tsv"
    labels.to_csv(path, sep="\t", index=False)
    plot_cohort_(labels_path=path, out_png=tmp_path / "cohort.png")
    _assert_png(tmp_path / "cohort.png")


def test_missing_column_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "oof.tsv"
    pd.DataFrame({"model": ["m"], "fold": [0]}).to_csv(path, sep="\t", index=False)
    with pytest.raises(InputDataError, match=r"lacks required column\(s\) \['time_days', 'event', 'risk'\]"):
        plot_model_task_(oof_path=path, task="survival", out_png=tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()
