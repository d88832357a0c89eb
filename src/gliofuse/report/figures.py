"""Report figures from evaluation tables (PNG + SVG, Agg backend, byte-reproducible).

* :func:`plot_model_task_`: Kaplan-Meier curves of risk groups with the log-rank p-value and the
  numbers at risk (survival), or ROC curves per class and a confusion matrix (classification),
  from ``predictions_oof.tsv``.
* :func:`plot_summary_`: the main metric of every model x task with its bootstrap CI.
* :func:`plot_cohort_`: class counts and Kaplan-Meier curves of the cohort by diagnosis.

Other figures: :mod:`gliofuse.report.training` (training curves, gradient-coordination dynamics),
:mod:`gliofuse.report.forest` (model comparisons), :mod:`gliofuse.report.attention` (heatmaps).
"""

from __future__ import annotations

import logging
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from gliofuse.errors import InputDataError
from gliofuse.evaluation.evaluate import prob_columns
from gliofuse.evaluation.metrics import logrank_p
from gliofuse.evaluation.repeats import first_repeat, n_repeats_of
from gliofuse.evaluation.summary import SUMMARY_COLUMNS
from gliofuse.evaluation.survival import median_risk_groups
from gliofuse.io import read_table_
from gliofuse.report.style import DEFAULT_DPI, figure_style, save_figure
from gliofuse.tasks import DIAGNOSIS_CLASSES, GRADE_CLASSES, task_kind

logger = logging.getLogger(__name__)

DPI = DEFAULT_DPI
MAIN_METRIC = {"survival": "c_index", "classification": "auc_macro"}
RISK_COLOURS = {"low risk": "tab:blue", "high risk": "tab:red"}


def _km(ax: plt.Axes, time: np.ndarray, event: np.ndarray, label: str, color: str | None = None) -> None:
    from lifelines import KaplanMeierFitter

    kmf = KaplanMeierFitter(label=f"{label} (n={len(time)})")
    kmf.fit(time, event_observed=event)
    kmf.plot_survival_function(ax=ax, ci_show=True, show_censors=True, color=color,
                               censor_styles={"ms": 4, "marker": "|"})


def at_risk_counts(time: np.ndarray, ticks: np.ndarray) -> list[int]:
    """Numbers at risk (still followed, ``time >= tick``) at each tick."""
    t = np.asarray(time, dtype=np.float64)
    return [int((t >= x).sum()) for x in ticks]


def _at_risk_table(ax_tab: plt.Axes, ax_km: plt.Axes, groups: list[tuple[str, np.ndarray, str]]) -> None:
    ticks = [x for x in ax_km.get_xticks() if ax_km.get_xlim()[0] <= x <= ax_km.get_xlim()[1]]
    ax_tab.set_xlim(ax_km.get_xlim())
    ax_tab.set_ylim(-0.5, len(groups) - 0.5)
    for row, (name, time, colour) in enumerate(groups):
        y = len(groups) - 1 - row
        for x, n in zip(ticks, at_risk_counts(time, np.asarray(ticks)), strict=True):
            ax_tab.text(x, y, str(n), ha="center", va="center", fontsize=8, color=colour)
    ax_tab.set_yticks(range(len(groups)), [g[0] for g in reversed(groups)], fontsize=8)
    ax_tab.set_xticks([])
    for side in ("top", "right", "bottom", "left"):
        ax_tab.spines[side].set_visible(False)
    ax_tab.tick_params(axis="y", length=0, pad=14)
    ax_tab.set_title("number at risk", fontsize=8, loc="left")


def _plot_survival(df: pd.DataFrame, title: str) -> Figure:
    t = df["time_days"].to_numpy(dtype=np.float64)
    ev = df["event"].to_numpy(dtype=np.int64)
    high = median_risk_groups(df["risk"].to_numpy(dtype=np.float64), df["fold"].to_numpy())
    fig, (ax, ax_tab) = plt.subplots(2, 1, figsize=(6.4, 5.2), height_ratios=[4.5, 0.8], layout="constrained")
    groups = []
    for mask, name in ((~high, "low risk"), (high, "high risk")):
        if mask.any():
            _km(ax, t[mask], ev[mask], name, RISK_COLOURS[name])
            groups.append((name, t[mask], RISK_COLOURS[name]))
    try:
        p = logrank_p(t, ev, high)
        ax.text(0.98, 0.95, f"log-rank p = {p:.2g}", transform=ax.transAxes, ha="right", va="top")
    except InputDataError:
        ax.text(0.98, 0.95, "log-rank p: n/a (one group)", transform=ax.transAxes, ha="right", va="top")
    ax.set_xlim(0, max(float(t.max()), 1.0) * 1.02)
    ax.set_xlabel("time (days)")
    ax.set_ylabel("survival probability")
    ax.set_ylim(0, 1.05)
    ax.set_title(f"{title}\nrisk groups: median split of out-of-fold risk within each fold", fontsize=9)
    _at_risk_table(ax_tab, ax, groups)
    return fig


def _plot_classification(df: pd.DataFrame, title: str) -> Figure:
    from sklearn.metrics import confusion_matrix, roc_auc_score, roc_curve

    cols = prob_columns(df)
    names = [c.removeprefix("prob_") for c in cols]
    y = df["y_true"].to_numpy(dtype=np.int64)
    prob = df[cols].to_numpy(dtype=np.float64)
    fig, (ax_roc, ax_cm) = plt.subplots(1, 2, figsize=(11.0, 4.6), layout="constrained")
    for k, name in enumerate(names):
        pos = y == k
        if pos.any() and (~pos).any():
            fpr, tpr, _ = roc_curve(pos, prob[:, k])
            ax_roc.plot(fpr, tpr, label=f"{name} (AUC {roc_auc_score(pos, prob[:, k]):.2f})")
        else:
            ax_roc.plot([], [], label=f"{name} (n/a: one class)")
    ax_roc.plot([0, 1], [0, 1], color="grey", ls="--", lw=0.8)
    ax_roc.set_xlabel("false positive rate")
    ax_roc.set_ylabel("true positive rate")
    ax_roc.set_title("ROC, one-vs-rest", fontsize=10)
    ax_roc.legend(fontsize=7, loc="lower right")
    cm = confusion_matrix(y, prob.argmax(axis=1), labels=list(range(len(names))))
    ax_cm.imshow(cm, cmap="Blues")
    for i in range(cm.shape[0]):
        for j in range(cm.shape[1]):
            ax_cm.text(j, i, str(cm[i, j]), ha="center", va="center",
                       color="white" if cm[i, j] > cm.max() / 2 else "black")
    short = [n if len(n) <= 14 else n[:12] + "…" for n in names]
    ax_cm.set_xticks(range(len(names)), short, rotation=30, ha="right", fontsize=8)
    ax_cm.set_yticks(range(len(names)), short, fontsize=8)
    ax_cm.set_xlabel("predicted")
    ax_cm.set_ylabel("true")
    ax_cm.set_title("confusion matrix (out-of-fold)", fontsize=10)
    fig.suptitle(title)
    return fig


def plot_model_task_(*, oof_path: Path, task: str, out_png: Path, out_vector: Path | None = None,
                     dpi: int = DPI) -> None:
    """Figure of one model's out-of-fold predictions for one task.

    Survival: Kaplan-Meier curves of the low- and high-risk groups (median split of the
    out-of-fold risk within each fold) with the log-rank p-value and the numbers at risk.
    Classification: one-vs-rest ROC curves per class next to the confusion matrix.
    A repeated cross-validation shows repeat 0 (each patient once).

    Parameters
    ----------
    oof_path : ``results/evaluation/<model>/<task>/predictions_oof.tsv`` (contract §9).
    task : ``"survival"``, ``"grade"`` or ``"diagnosis"``.
    out_png : output PNG; ``out_vector`` its SVG/PDF twin (default: ``out_png`` with ``.svg``).
    dpi : PNG resolution.
    """
    kind = task_kind(task)
    required = ["model", "fold", *(("time_days", "event", "risk") if kind == "survival" else ("y_true",))]
    df = read_table_(oof_path, required=required, what="out-of-fold prediction table")
    if df.empty:
        raise InputDataError(f"out-of-fold prediction table {oof_path} has no rows.")
    n_rep = n_repeats_of(df)
    df = first_repeat(df)  # a repeated CV: repeat 0, every patient once
    title = f"{df['model'].iloc[0]} — {task} (n={len(df)}{f', repeat 0 of {n_rep}' if n_rep > 1 else ''})"
    with figure_style():
        fig = _plot_survival(df, title) if kind == "survival" else _plot_classification(df, title)
    save_figure(fig, Path(out_png), out_vector=out_vector, dpi=dpi)


def plot_summary_(*, summary_path: Path, out_png: Path, out_vector: Path | None = None, dpi: int = DPI) -> None:
    """Bar chart of the main metric (``c_index`` / ``auc_macro``) per model, one panel per task.

    Bars show the pooled out-of-fold value with its bootstrap CI as error bars (the fold mean
    when the pooled value is missing; a repeated CV: the mean over the repeats and the CI of that mean);
    the dashed line marks chance (0.5).
    """
    df = read_table_(summary_path, required=SUMMARY_COLUMNS, what="summary table")
    tasks = sorted(df["task"].unique(), key=lambda t: (t != "survival", t))
    if not tasks:
        raise InputDataError(f"summary table {summary_path} has no rows.")
    with figure_style():
        fig = _summary_figure(df, tasks)
    save_figure(fig, Path(out_png), out_vector=out_vector, dpi=dpi)


def _summary_figure(df: pd.DataFrame, tasks: list[str]) -> Figure:
    fig, axes = plt.subplots(1, len(tasks), figsize=(max(4.0, 3.8 * len(tasks)), 4.2), squeeze=False,
                             layout="constrained")
    for ax, task in zip(axes[0], tasks, strict=True):
        metric = MAIN_METRIC[task_kind(task)]
        sub = df[(df["task"] == task) & (df["metric"] == metric)].sort_values("model")
        value = sub["pooled"].where(sub["pooled"].notna(), sub["mean"]).to_numpy(dtype=np.float64)
        lo = sub["ci_low"].to_numpy(dtype=np.float64)
        hi = sub["ci_high"].to_numpy(dtype=np.float64)
        err = np.vstack([np.where(np.isfinite(lo), value - lo, 0), np.where(np.isfinite(hi), hi - value, 0)])
        x = np.arange(len(sub))
        ax.bar(x, value, width=0.6, yerr=np.clip(err, 0, None), capsize=4, color="tab:blue", alpha=0.8)
        ax.set_xlim(-0.7, max(len(sub), 2) - 0.3)
        ax.axhline(0.5, color="grey", ls="--", lw=0.8)
        ax.set_xticks(x, sub["model"].tolist(), rotation=30, ha="right", fontsize=8)
        ax.set_ylim(0, 1)
        ax.set_ylabel(metric)
        ax.set_title(task)
    n_rep = int(pd.to_numeric(df["n_repeats"], errors="coerce").max()) if "n_repeats" in df.columns else 1
    fig.suptitle("pooled out-of-fold performance (95% bootstrap CI)" if n_rep <= 1 else
                 f"out-of-fold performance, mean of {n_rep} CV repeats (95% bootstrap CI of the mean)", fontsize=10)
    return fig


def plot_cohort_(*, labels_path: Path, out_png: Path, out_vector: Path | None = None, dpi: int = DPI) -> None:
    """Cohort overview from the label table (contract §3).

    Panels: patients per diagnosis, patients per WHO grade (missing labels shown as
    ``missing``), and Kaplan-Meier curves of overall survival by diagnosis.
    """
    df = read_table_(labels_path, required=["patient_id", "time_days", "event", "diagnosis", "grade"],
                     what="label table", dtype={"patient_id": str})
    with figure_style():
        fig = _cohort_figure(df)
    save_figure(fig, Path(out_png), out_vector=out_vector, dpi=dpi)


def _cohort_figure(df: pd.DataFrame) -> Figure:
    fig, (ax_d, ax_g, ax_km) = plt.subplots(1, 3, figsize=(15.0, 4.4), layout="constrained")
    for ax, col, names, title in ((ax_d, "diagnosis", DIAGNOSIS_CLASSES, "diagnosis (WHO 2021)"),
                                  (ax_g, "grade", GRADE_CLASSES, "WHO CNS grade")):
        codes = pd.to_numeric(df[col], errors="coerce").fillna(-1).astype(int)
        labels = [*names, "missing"]
        counts = [int((codes == k).sum()) for k in range(len(names))] + [int((codes < 0).sum())]
        bars = ax.bar(range(len(labels)), counts, color=["tab:blue"] * len(names) + ["lightgrey"])
        ax.bar_label(bars, fontsize=8)
        ax.set_xticks(range(len(labels)), labels, rotation=25, ha="right", fontsize=8)
        ax.set_ylabel("patients")
        ax.set_title(f"{title} (n={len(df)})", fontsize=10)
    t = pd.to_numeric(df["time_days"], errors="coerce")
    ev = pd.to_numeric(df["event"], errors="coerce")
    dx = pd.to_numeric(df["diagnosis"], errors="coerce").fillna(-1).astype(int)
    ok = t.notna() & ev.notna() & (t > 0)
    for k, name in enumerate(DIAGNOSIS_CLASSES):
        sel = ok & (dx == k)
        if sel.sum() >= 1:
            _km(ax_km, t[sel].to_numpy(), ev[sel].to_numpy().astype(int), name)
    ax_km.set_xlabel("time (days)")
    ax_km.set_ylabel("overall survival")
    ax_km.set_ylim(0, 1.05)
    ax_km.set_title("Kaplan-Meier by diagnosis", fontsize=10)
    if ax_km.get_legend() is not None:
        ax_km.legend(fontsize=7)
    return fig
