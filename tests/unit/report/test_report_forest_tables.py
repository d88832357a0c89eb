"""Forest plot and results/summary.md."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from gliofuse.evaluation.compare import compare_models
from gliofuse.evaluation.truth import TRUE_RISK_COLUMN
from gliofuse.report.forest import format_p, plot_forest_
from gliofuse.report.tables import markdown_table, write_summary_markdown_


def _tables(tmp_path: Path) -> tuple[Path, Path, Path]:
    rng = np.random.default_rng(0)
    n = 60
    z = rng.standard_normal(n)
    base = {"patient_id": [f"TCGA-02-{i:04d}" for i in range(n)], "task": "survival", "fold": np.arange(n) % 3,
            "time_days": np.exp(-z) * 300 + 1, "event": (rng.random(n) < 0.7).astype(int)}
    oofs = {(m, "survival"): pd.DataFrame({**base, "model": m, "risk": z + s * rng.standard_normal(n)})
            for m, s in (("subspace_fusion", 0.3), ("abmil", 2.0), ("subspace_fusion_no_gc", 0.5),
                         ("abmil_no_pool", 2.5))}
    cards = {"subspace_fusion_no_gc": {"ablation_of": "subspace_fusion"}, "abmil_no_pool": {"ablation_of": "abmil"}}
    comp, abl = compare_models(oofs, reference="subspace_fusion", cards=cards, n_bootstrap=40, seed=0)
    cp, ap = tmp_path / "comparisons.tsv", tmp_path / "ablation.tsv"
    comp.to_csv(cp, sep="\t", index=False)
    abl.to_csv(ap, sep="\t", index=False)
    summary = pd.DataFrame([(m, "survival", metric, 0.7, 0.05, 0.71, 0.6, 0.8) for m, _ in oofs
                            for metric in ("c_index", "ibs")]
                           + [("abmil", "survival", "logrank_p", 0.0123, 0.01, 0.0004, 0.00001, 0.2)],
                           columns=["model", "task", "metric", "mean", "sd", "pooled", "ci_low", "ci_high"])
    sp = tmp_path / "summary.tsv"
    summary.to_csv(sp, sep="\t", index=False)
    return sp, cp, ap


def test_forest_plot(tmp_path: Path) -> None:
    _, cp, ap = _tables(tmp_path)
    out = tmp_path / "forest.png"
    plot_forest_(comparisons_path=cp, ablation_path=ap, out_png=out)
    assert out.stat().st_size > 5000 and out.with_suffix(".svg").exists()
    plot_forest_(comparisons_path=cp, out_png=tmp_path / "forest2.png")
    assert format_p(0.0004) == "<0.001" and format_p(0.0123) == "0.012" and format_p(0.5) == "0.5"
    assert format_p(float("nan")) == "n/a"


def test_summary_markdown_true_risk_column(tmp_path: Path) -> None:
    sp, cp, ap = _tables(tmp_path)
    for path, values in ((cp, {"subspace_fusion": 0.91, "abmil": 0.6, "subspace_fusion_no_gc": 0.8,
                               "abmil_no_pool": 0.55}), (ap, {"subspace_fusion_no_gc": 0.8, "abmil_no_pool": 0.55})):
        df = pd.read_csv(path, sep="\t")
        df[TRUE_RISK_COLUMN] = df["model"].map(values)
        df.to_csv(path, sep="\t", index=False)
    out = tmp_path / "summary.md"
    write_summary_markdown_(summary_path=sp, comparisons_path=cp, ablation_path=ap, out=out, title="t")
    main, ablation = out.read_text().split("## Ablations")
    assert "| C-index vs true risk |" in main and "ablation C-index vs true risk" in ablation
    ref_row = next(line for line in main.splitlines() if line.startswith("| survival | Harrell's C-index | **subspace_fusion**"))
    assert ref_row.endswith("| 0.910 |")
    abl_row = next(line for line in ablation.splitlines() if line.startswith("| survival | Harrell's C-index | abmil_no_pool"))
    assert abl_row.endswith("| 0.550 |")


def test_summary_markdown(tmp_path: Path) -> None:
    sp, cp, ap = _tables(tmp_path)
    out = tmp_path / "summary.md"
    write_summary_markdown_(summary_path=sp, comparisons_path=cp, ablation_path=ap, out=out, title="My study")
    text = out.read_text()
    assert text.startswith("# My study\n")
    for heading in ("## Main results", "## Ablations", "## All metrics"):
        assert heading in text
    assert "**subspace_fusion**" in text and "| abmil_no_pool | abmil |" in text
    assert "integrated Brier score" in text and "lower" in text
    # p-value metrics print as p-values: a pooled log-rank p of 0.0004 is "<0.001", not "0.000"
    assert "| survival | abmil | log-rank p (median split) | 0.012 ± 0.010 | <0.001 | [<0.001, 0.2] | lower |" in text
    assert "C-index vs true risk" not in text  # no ground truth (a real cohort): no column
    first = text
    write_summary_markdown_(summary_path=sp, comparisons_path=cp, ablation_path=ap, out=out, title="My study")
    assert out.read_text() == first
    assert markdown_table(["a", "b"], [["x|y", "1"]]) == "| a | b |\n|---|---|\n| x\\|y | 1 |"
    assert "## Models" not in first
    cards = tmp_path / "cards.json"
    cards.write_text(json.dumps({
        "path_gptomic": {"family": "pathgptomic", "modalities": ["wsi", "omics"], "reference": "arXiv:x",
                         "params": {"rna_encoder": "fallback", "sc_reference": None}},
        "mine": {"family": "mil", "modalities": ["wsi"], "params": {"rna_encoder": "/w/genes.pt",
                                                                  "sc_reference": "/w/sc.h5ad"}}}))
    write_summary_markdown_(summary_path=sp, comparisons_path=cp, ablation_path=ap, out=out, title="My study",
                            cards_path=cards)
    text = out.read_text()
    assert "## Models" in text
    assert "| path_gptomic | pathgptomic | wsi, omics |  | arXiv:x | RNA encoder: fallback" in text
    assert "gene-embedding table /w/genes.pt, with single-cell smoothing" in text


def test_summary_markdown_of_a_repeated_cv(tmp_path: Path) -> None:
    sp, cp, ap = _tables(tmp_path)
    summary = pd.read_csv(sp, sep="\t")
    summary["n_repeats"] = 3
    summary["repeat_sd"] = 0.02
    summary["repeat_values"] = "0.69;0.71;0.73"
    summary.to_csv(sp, sep="\t", index=False)
    out = tmp_path / "summary.md"
    write_summary_markdown_(summary_path=sp, comparisons_path=cp, ablation_path=ap, out=out, title="t")
    text = out.read_text()
    assert "repeated 3 times" in text and "Nadeau & Bengio 2003" in text
    assert "per-fold Δ mean ± sd (corrected resampled t p)" in text
    assert "| pooled: repeat mean ± sd | pooled 95% CI |" in text
    assert "| survival | abmil | Harrell's C-index | 0.700 ± 0.050 | 0.710 ± 0.020 | [0.600, 0.800] | higher |" in text
    repeats = text.split("## Repeats", 1)[1]
    assert "| task | model | metric | mean ± sd | repeat 0 | repeat 1 | repeat 2 |" in repeats
    assert "| survival | abmil | Harrell's C-index | 0.710 ± 0.020 | 0.690 | 0.710 | 0.730 |" in repeats
    assert "Integrated Brier" not in repeats and "ibs" not in repeats  # main metrics only


def test_summary_markdown_of_one_repeat_has_no_repeat_section(tmp_path: Path) -> None:
    sp, cp, ap = _tables(tmp_path)
    out = tmp_path / "summary.md"
    write_summary_markdown_(summary_path=sp, comparisons_path=cp, ablation_path=ap, out=out, title="t")
    text = out.read_text()
    assert "## Repeats" not in text and "repeated" not in text and "(paired t p)" in text
