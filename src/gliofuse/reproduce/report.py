"""The Markdown report and the figure of the reproduction (``report.md``, ``validation.png`` + ``.svg``).

The published numbers, the protocol notes and the known differences come from
:mod:`gliofuse.reproduce.protocols`; this module only lays them out next to the summary.
"""

from __future__ import annotations

import os
import platform
from pathlib import Path

import numpy as np
import pandas as pd

from gliofuse.config import ValidationConfig
from gliofuse.io import write_text_atomic_
from gliofuse.reproduce.jobs import JOB_COLUMNS
from gliofuse.reproduce.protocols import KNOWN_DIFFERENCES, PROTOCOL_NOTES, published_result


def machine_description() -> str:
    """CPU model, core count, Python and torch versions, torch threads."""
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (f"{cpu}, {os.cpu_count()} cores (torch threads {torch.get_num_threads()}), Python "
            f"{platform.python_version()}, torch {torch.__version__}, {platform.system()}")


def _train_seconds(metrics: pd.DataFrame) -> float:
    per_job = metrics.drop_duplicates(subset=list(JOB_COLUMNS))
    return float(per_job["train_seconds"].sum())


def format_value(x: float | None, digits: int = 3) -> str:
    """``x`` with ``digits`` decimals; ``–`` for None or a non-finite value."""
    return "–" if x is None or not np.isfinite(x) else f"{x:.{digits}f}"


def write_report_(*, cfg: ValidationConfig, summary: pd.DataFrame, metrics: pd.DataFrame, out_md: Path,
                  out_png: Path, wall_seconds: float | None = None) -> None:
    """Write ``report.md`` and the comparison figure (``validation.png`` + ``.svg``)."""
    lines = ["# Validation on real TCGA-GBMLGG tables (omics models)", "",
             ("Published omics tables, their original splits and label coding, trained with the gliofuse harness "
             "(`gliofuse validate`; protocol details in docs/validation.md)."), "",
             "## Results vs published", "",
             f"Tolerance: ±{cfg.tolerance:g} (`match`), above it `better`, below it `gap`.", "",
             ("| protocol | model | task | patients | metric | splits | mean ± SD | 95% CI ± | range | published | Δ "
             "| status |"),
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in summary.itertuples(index=False):
        pub = "–" if not np.isfinite(r.published) else (
            f"{r.published:.3f}" + (f" ± {r.published_pm:.3f}" if np.isfinite(r.published_pm) else ""))
        delta = "–" if not np.isfinite(r.delta) else f"{r.delta:+.3f}"
        lines.append(f"| {r.protocol} | {r.model} | {r.task} | {r.cohort} | {r.metric} | {r.n_splits} | "
                     f"{format_value(r.mean)} ± {format_value(r.sd)} | {format_value(r.ci95)} | "
                     f"{format_value(r.min)}–{format_value(r.max)} | {pub} | {delta} | {r.status or '–'} |")
    lines += ["", "Published values and what their ± means:", ""]
    for r in summary[np.isfinite(summary["published"])].drop_duplicates(["protocol", "task", "metric"]).itertuples(
            index=False):
        lines.append(f"* {r.protocol}/{r.task}/{r.metric}: {r.published:.3f} ({r.published_pm_kind}). {r.source}.")
    lines += ["", "![per-split results](validation.png)", "", "## Protocols as run", ""]
    for protocol in sorted(set(summary["protocol"])):
        lines.append(f"**{protocol}**")
        lines.append("")
        lines += [f"* {note}" for note in PROTOCOL_NOTES.get(protocol, ())]
        lines.append("")
    lines += ["## Known differences from the published runs", "",
              *[f"* {item}" for item in KNOWN_DIFFERENCES], "",
              "## Run", "",
              f"* Machine: {machine_description()}.",
              f"* Training time (sum of the jobs' epoch times): {format_value(_train_seconds(metrics), 1)} s"
              + (f"; wall time of the whole run: {wall_seconds:.1f} s." if wall_seconds is not None else "."),
              (f"* Jobs: {metrics[list(JOB_COLUMNS)].drop_duplicates().shape[0]}; per-split values "
              "in `metrics.tsv`, this table in `summary.tsv`."), ""]
    write_text_atomic_(out_md, "\n".join(lines))
    _plot_validation(summary, metrics, out_png, tolerance=cfg.tolerance)


def _plot_validation(summary: pd.DataFrame, metrics: pd.DataFrame, out_png: Path, *, tolerance: float) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from gliofuse.report.style import figure_style, save_figure

    panels = summary[np.isfinite(summary["published"])][["protocol", "task", "metric"]].drop_duplicates()
    if panels.empty:
        panels = summary[["protocol", "task", "metric"]].drop_duplicates()
    n = max(1, len(panels))
    with figure_style():
        fig, axes = plt.subplots(1, n, figsize=(3.2 * n, 3.4), squeeze=False)
        for ax, (protocol, task, metric) in zip(axes[0], panels.itertuples(index=False), strict=False):
            sel = metrics[(metrics["protocol"] == protocol) & (metrics["task"] == task) & (metrics["metric"] == metric)]
            groups = sorted(set(zip(sel["model"], sel["cohort"], strict=True)))
            pub = published_result(protocol, task, metric)
            if pub is not None:
                ax.axhspan(pub.value - tolerance, pub.value + tolerance, color="tab:orange", alpha=0.15, lw=0)
                ax.axhline(pub.value, color="tab:orange", lw=1.5, label=f"published {pub.value:.3f}")
            for i, (model, cohort) in enumerate(groups):
                v = sel.loc[(sel["model"] == model) & (sel["cohort"] == cohort), "value"].to_numpy(np.float64)
                jitter = np.linspace(-0.12, 0.12, v.size) if v.size > 1 else np.zeros(1)
                ax.scatter(i + jitter, v, s=14, color="tab:blue", alpha=0.7)
                ax.errorbar(i + 0.3, v.mean(), yerr=v.std(ddof=1) if v.size > 1 else 0, fmt="o", color="black",
                            capsize=3, label="mean ± SD" if i == 0 else None)
            ax.set_xticks(range(len(groups)), [f"{m}\n{c} patients" for m, c in groups], fontsize=7)
            ax.set_xlim(-0.6, len(groups) - 0.1)
            ax.set_title(f"{protocol.upper()} {task}", fontsize=9)
            ax.set_ylabel(metric)
            ax.legend(fontsize=7, loc="lower right")
        fig.tight_layout()
        save_figure(fig, Path(out_png))
        plt.close(fig)
