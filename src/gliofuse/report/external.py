"""External validation report of one cohort: Kaplan-Meier and calibration figures and a Markdown section.

Reads the tables of :mod:`gliofuse.evaluation.external` (contract §12) only.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd

from gliofuse.io import read_table_, write_text_atomic_
from gliofuse.report.style import figure_style, save_figure
from gliofuse.report.tables import markdown_table

logger = logging.getLogger(__name__)

GROUP_COLORS = {"low": "#2c7bb6", "high": "#d7191c"}


def _grid(n: int) -> tuple[plt.Figure, list[plt.Axes]]:
    cols = min(3, max(1, n))
    rows = max(1, math.ceil(n / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.4 * rows), squeeze=False)
    flat = list(axes.ravel())
    for ax in flat[n:]:
        ax.set_visible(False)
    return fig, flat


def draw_km_(km: pd.DataFrame, cutoffs: pd.DataFrame, *, cohort: str, out: Path, dpi: int = 150) -> None:
    """One panel per survival model: KM curves of the external patients split at the development cut-off."""
    pairs = list(dict.fromkeys(zip(km["model"], km["task"], strict=True)))
    cut = {(m, t): c for m, t, c in cutoffs[["model", "task", "cutoff"]].itertuples(index=False)}
    with figure_style():
        fig, axes = _grid(len(pairs))
        for ax, (model, task) in zip(axes, pairs, strict=False):
            part = km[(km["model"] == model) & (km["task"] == task)]
            for group, g in part.groupby("group", sort=True):
                ax.step(g["time_days"] / 365.25, g["survival"], where="post", color=GROUP_COLORS.get(str(group)),
                        label=f"{group} risk (n = {int(g['n_at_risk'].iloc[0])})")
            ax.set_title(f"{model} ({task})\ncut-off {cut.get((model, task), float('nan')):.3g} (development median)",
                         fontsize=9)
            ax.set_xlabel("years")
            ax.set_ylabel("overall survival")
            ax.set_ylim(0, 1.02)
            ax.legend(fontsize=8, loc="lower left")
        if not pairs:
            axes[0].text(0.5, 0.5, "no survival model", ha="center", va="center")
        fig.suptitle(f"External validation — {cohort}: Kaplan-Meier by risk group")
        fig.tight_layout()
    save_figure(fig, out, dpi=dpi)


def draw_calibration_(cal: pd.DataFrame, *, cohort: str, out: Path, dpi: int = 150) -> None:
    """One panel per survival model: mean predicted vs KM observed survival at each horizon and risk group."""
    pairs = list(dict.fromkeys(zip(cal["model"], cal["task"], strict=True)))
    with figure_style():
        fig, axes = _grid(len(pairs))
        for ax, (model, task) in zip(axes, pairs, strict=False):
            part = cal[(cal["model"] == model) & (cal["task"] == task)]
            ax.plot([0, 1], [0, 1], color="0.6", lw=0.8, ls="--")
            for group, g in part.groupby("group", sort=True):
                ok = g["predicted"].notna() & g["observed"].notna()
                g = g[ok]
                yerr = [(g["observed"] - g["observed_ci_low"]).clip(lower=0),
                        (g["observed_ci_high"] - g["observed"]).clip(lower=0)]
                ax.errorbar(g["predicted"], g["observed"], yerr=yerr, fmt="o", color=GROUP_COLORS.get(str(group)),
                            label=f"{group} risk", capsize=2)
                for r in g.itertuples(index=False):
                    ax.annotate(f"{r.horizon_years:g}y", (r.predicted, r.observed), fontsize=7,
                                xytext=(3, 3), textcoords="offset points")
            ax.set_xlim(0, 1)
            ax.set_ylim(0, 1)
            ax.set_xlabel("predicted survival")
            ax.set_ylabel("observed survival (KM)")
            ax.set_title(f"{model} ({task})", fontsize=9)
            ax.legend(fontsize=8, loc="upper left")
        if not pairs:
            axes[0].text(0.5, 0.5, "no survival model", ha="center", va="center")
        fig.suptitle(f"External validation — {cohort}: calibration at 1, 2, 5 years")
        fig.tight_layout()
    save_figure(fig, out, dpi=dpi)


def _fmt(x: float) -> str:
    return "n/a" if not math.isfinite(float(x)) else f"{float(x):.3f}"


def external_markdown(metrics: pd.DataFrame, cutoffs: pd.DataFrame, *, cohort: str) -> str:
    """The ``## External validation — <cohort>`` section of ``results/summary.md``."""
    rows = [(r.model, r.task, r.metric, _fmt(r.value),
             "" if not math.isfinite(float(r.ci_low)) else f"[{_fmt(r.ci_low)}, {_fmt(r.ci_high)}]",
             str(int(r.n_patients))) for r in metrics.itertuples(index=False)]
    parts = [f"## External validation — {cohort}", "",
             ("Development models applied frozen (the fold models' mean; normalisers, gene sets, bins and class maps "
              "from the development cohort). 95 % percentile bootstrap CIs over the external patients. Risk groups: "
              "split at the median development ensemble risk (results/external/" + cohort + "/evaluation/cutoffs.tsv)."),
             "", markdown_table(["model", "task", "metric", "value", "95% CI", "n"], rows) if rows else
             "_No metric (no prediction table)._", ""]
    if len(cutoffs):
        parts += ["Risk cut-offs (development):", "",
                  markdown_table(["model", "task", "cut-off", "development patients"],
                                 [(r.model, r.task, f"{r.cutoff:.4g}", str(int(r.n_development_patients)))
                                  for r in cutoffs.itertuples(index=False)]), ""]
    return "\n".join(parts)


def write_external_report_(*, cohort: str, evaluation_dir: Path, out_km: Path, out_calibration: Path,
                           out_md: Path, dpi: int = 150) -> None:
    """KM and calibration figures (PNG + SVG) and the Markdown section of one external cohort."""
    d = Path(evaluation_dir)
    metrics = read_table_(d / "metrics.tsv", required=["model", "task", "metric", "value"], what="external metrics")
    cutoffs = read_table_(d / "cutoffs.tsv", required=["model", "task", "cutoff"], what="external cut-offs")
    km = read_table_(d / "km.tsv", required=["model", "task", "group", "time_days", "survival"], what="external KM")
    cal = read_table_(d / "calibration.tsv", required=["model", "task", "group", "predicted", "observed"],
                      what="external calibration")
    draw_km_(km, cutoffs, cohort=cohort, out=Path(out_km), dpi=dpi)
    draw_calibration_(cal, cohort=cohort, out=Path(out_calibration), dpi=dpi)
    write_text_atomic_(out_md, external_markdown(metrics, cutoffs, cohort=cohort) + "\n")
    logger.info("external report of %s -> %s, %s, %s", cohort, out_km, out_calibration, out_md)
