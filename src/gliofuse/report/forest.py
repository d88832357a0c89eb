"""Forest plot of model comparisons (from ``comparisons.tsv`` and ``ablation.tsv``, contract §9)."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from gliofuse.errors import InputDataError
from gliofuse.evaluation.compare import COMPARISON_COLUMNS, COMPARISON_METRICS, KIND_ABLATION
from gliofuse.io import read_table_
from gliofuse.report.style import DEFAULT_DPI, figure_style, save_figure
from gliofuse.tasks import task_kind


def format_p(p: float) -> str:
    """p-value for tables and figures, two significant digits: ``0.5``, ``0.012``, ``<0.001``, ``n/a``."""
    if p is None or not math.isfinite(p):
        return "n/a"
    if p < 0.001:
        return "<0.001"
    return f"{p:.2g}"


def _panels(comp: pd.DataFrame) -> list[tuple[str, str]]:
    tasks = sorted(comp["task"].unique(), key=lambda t: (t != "survival", t))
    return [(t, COMPARISON_METRICS[task_kind(t)][0]) for t in tasks]


def _forest_figure(comp: pd.DataFrame, ablation: pd.DataFrame) -> Figure:
    panels = _panels(comp)
    heights = []
    for task, metric in panels:
        n = int(((comp["task"] == task) & (comp["metric"] == metric)).sum())
        n += int(((ablation["task"] == task) & (ablation["metric"] == metric)).sum())
        heights.append(max(n, 1) + 1.2)
    fig, axes = plt.subplots(len(panels), 1, figsize=(8.2, 0.42 * sum(heights) + 1.2), squeeze=False,
                             height_ratios=heights, layout="constrained")
    for ax, (task, metric) in zip(axes[:, 0], panels, strict=True):
        sel = comp[(comp["task"] == task) & (comp["metric"] == metric)]
        ref_rows = sel[sel["model"] == sel["reference"]]
        others = sel[sel["model"] != sel["reference"]].sort_values("value", ascending=False)
        abl = ablation[(ablation["task"] == task) & (ablation["metric"] == metric)].sort_values("model")
        abl = abl[~abl["reference"].isin(ref_rows["model"])]  # ablations of the reference are rows above
        rows = [(r, "reference", "black") for r in ref_rows.itertuples(index=False)]
        rows += [(r, "vs reference", "tab:blue") for r in others.itertuples(index=False)]
        rows += [(r, "ablation", "tab:orange") for r in abl.itertuples(index=False)]
        for i, (r, kind, colour) in enumerate(rows):
            y = len(rows) - 1 - i
            lo, hi = float(r.value_ci_low), float(r.value_ci_high)
            if math.isfinite(lo) and math.isfinite(hi):
                ax.plot([lo, hi], [y, y], color=colour, lw=1.6)
            ax.plot([r.value], [y], "D" if kind == "reference" else "o", color=colour, ms=6)
            if kind == "reference":
                text = "reference"
            else:
                vs = "" if kind == "vs reference" else f" vs {r.reference}"
                text = (f"Δ{vs} {r.diff:+.3f} [{r.diff_ci_low:+.3f}, {r.diff_ci_high:+.3f}], "
                        f"p={format_p(float(r.p_value))}")
            ax.annotate(text, xy=(1.01, y), xycoords=("axes fraction", "data"), va="center", fontsize=7.5)
        labels = [("★ " if kind == "reference" else "") + str(r.model) for r, kind, _ in reversed(rows)]
        ax.set_yticks(range(len(rows)), labels, fontsize=8)
        ax.set_ylim(-0.8, max(len(rows), 1) - 0.2)
        if len(ref_rows):
            ax.axvline(float(ref_rows["value"].iloc[0]), color="grey", ls="--", lw=0.8)
        ax.axvline(0.5, color="lightgrey", ls=":", lw=0.8)
        cols = ["value_ci_low", "value_ci_high", "value"]
        finite = np.concatenate([sel[cols].to_numpy(dtype=np.float64).ravel(),
                                 abl[cols].to_numpy(dtype=np.float64).ravel()])
        finite = finite[np.isfinite(finite)]
        lo = min(0.45, float(finite.min()) - 0.02) if finite.size else 0.4
        hi = max(0.55, float(finite.max()) + 0.02) if finite.size else 1.0
        ax.set_xlim(max(0.0, lo), min(1.0, hi))
        n_rep = int(pd.to_numeric(sel["n_repeats"], errors="coerce").max()) if "n_repeats" in sel.columns else 1
        ax.set_xlabel(f"{metric} (pooled out-of-fold, 95% bootstrap CI)" if n_rep <= 1 else
                      f"{metric} (mean of {n_rep} CV repeats' pooled out-of-fold values, 95% bootstrap CI)")
        ax.set_title(f"{task}", fontsize=10, loc="left")
    fig.suptitle("model comparison: paired patient-level bootstrap against the reference", fontsize=10)
    return fig


def plot_forest_(*, comparisons_path: Path, ablation_path: Path | None = None, out_png: Path,
                 out_vector: Path | None = None, dpi: int = DEFAULT_DPI) -> None:
    """Forest plot: each model's main metric (C-index / macro AUC) with its CI, one panel per task.

    The reference model is drawn first (diamond, dashed vertical line at its value); every other
    model is annotated with its paired difference to the reference, the CI of that difference and
    the bootstrap p-value; ablations of another model than the reference (orange) are annotated
    against the model they ablate.

    Raises
    ------
    InputDataError
        The comparisons table lacks a contract column or has no rows.
    """
    comp = read_table_(comparisons_path, required=COMPARISON_COLUMNS, what="comparisons table")
    if comp.empty:
        raise InputDataError(f"comparisons table {comparisons_path} has no rows.")
    abl = (read_table_(ablation_path, required=COMPARISON_COLUMNS, what="ablation table")
           if ablation_path else pd.DataFrame(columns=list(COMPARISON_COLUMNS)))
    abl = abl[abl["kind"] == KIND_ABLATION] if len(abl) else abl
    with figure_style():
        fig = _forest_figure(comp, abl)
    save_figure(fig, Path(out_png), out_vector=out_vector, dpi=dpi)
