"""External report: KM and calibration figures (PNG + SVG) and the cohort's Markdown section from the evaluation
tables; results/summary.md ends with the external sections."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from gliofuse.cli import main
from gliofuse.io import provenance, write_table_

PROV = provenance(config={})


def _evaluation(d: Path) -> None:
    write_table_(d / "metrics.tsv", pd.DataFrame([("siteB", "m", "survival", "c_index", 0.71, 0.6, 0.8, 40),
                                                  ("siteB", "m", "survival", "logrank_p", 0.004, None, None, 40)],
                                                 columns=["cohort", "model", "task", "metric", "value", "ci_low",
                                                          "ci_high", "n_patients"]), prov=PROV)
    write_table_(d / "cutoffs.tsv", pd.DataFrame([("m", "survival", 0.25, 30, 3)], columns=[
        "model", "task", "cutoff", "n_development_patients", "n_folds"]), prov=PROV)
    write_table_(d / "km.tsv", pd.DataFrame([("m", "survival", g, t, s, n) for g in ("low", "high")
                                             for t, s, n in ((0, 1.0, 20), (300, 0.8, 15), (900, 0.5 if g == "high"
                                                                                             else 0.7, 8))],
                                            columns=["model", "task", "group", "time_days", "survival", "n_at_risk"]),
                 prov=PROV)
    write_table_(d / "calibration.tsv", pd.DataFrame(
        [("m", "survival", g, y, y * 365.25, 20, p, o, o - 0.1, o + 0.1) for g, p, o in (("low", 0.8, 0.75),
                                                                                         ("high", 0.6, 0.5))
         for y in (1.0, 2.0)], columns=["model", "task", "group", "horizon_years", "horizon_days", "n_patients",
                                        "predicted", "observed", "observed_ci_low", "observed_ci_high"]), prov=PROV)


def test_external_report_draws_both_figures_and_the_markdown_section(tmp_path: Path) -> None:
    _evaluation(tmp_path / "evaluation")
    out = tmp_path / "figures"
    rc = main(["external", "report", "--cohort", "siteB", "--evaluation-dir", str(tmp_path / "evaluation"),
               "--out-km", str(out / "km.png"), "--out-calibration", str(out / "calibration.png"),
               "--out-md", str(tmp_path / "summary.md"), "--dpi", "60"])
    assert rc == 0
    for name in ("km.png", "km.svg", "calibration.png", "calibration.svg"):
        assert (out / name).stat().st_size > 1000, name
    md = (tmp_path / "summary.md").read_text()
    assert md.startswith("## External validation — siteB")
    assert "| m | survival | c_index | 0.710 | [0.600, 0.800] | 40 |" in md and "0.25" in md
