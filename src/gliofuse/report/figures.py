"""Report figures from evaluation tables (PNG, Agg backend).

* :func:`plot_model_task_`: Kaplan-Meier curves of risk groups (survival) or ROC curves and a
  confusion matrix (classification) from ``predictions_oof.tsv``.
* :func:`plot_summary_`: the main metric of every model x task with its bootstrap CI.
* :func:`plot_cohort_`: class counts and Kaplan-Meier curves of the cohort by diagnosis.
"""

from __future__ import annotations

import logging
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from gliofuse.errors import InputDataError
from gliofuse.evaluation.aggregate import SUMMARY_COLUMNS, prob_columns, task_kind
from gliofuse.evaluation.metrics import logrank_p
from gliofuse.evaluation.survival import median_risk_groups
from gliofuse.io import atomic_path, read_table_
from gliofuse.training.tasks import DIAGNOSIS_CLASSES, GRADE_CLASSES

logger = logging.getLogger(__name__)

DPI = 110
MAIN_METRIC = {"survival": "c_index", "classification": "auc_macro"}


def _save(fig: Figure, out_png: Path) -> None:
    with atomic_path(out_png) as tmp:
        fig.savefig(tmp, format="png", dpi=DPI)
    plt.close(fig)
    logger.info("wrote %s", out_png)


def _km(ax: plt.Axes, time: np.ndarray, event: np.ndarray, label: str, color: str | None = None) -> None:
    from lifelines import KaplanMeierFitter

    kmf = KaplanMeierFitter(label=f"{label} (n={len(time)})")
    kmf.fit(time, event_observed=event)
    kmf.plot_survival_function(ax=ax, ci_show=True, show_censors=True, color=color,
                               censor_styles={"ms": 4, "marker": "|"})


def _plot_survival(df: pd.DataFrame, title: str) -> Figure:
    t = df["time_days"].to_numpy(dtype=np.float64)
    ev = df["event"].to_numpy(dtype=np.int64)
    high = median_risk_groups(df["risk"].to_numpy(dtype=np.float64), df["fold"].to_numpy())
    fig, ax = plt.subplots(figsize=(6.0, 4.5), layout="constrained")
    for mask, name, color in ((~high, "low risk", "tab:blue"), (high, "high risk", "tab:red")):
        if mask.any():
            _km(ax, t[mask], ev[mask], name, color)
    try:
        p = logrank_p(t, ev, high)
        ax.text(0.98, 0.95, f"log-rank p = {p:.2g}", transform=ax.transAxes, ha="right", va="top")
    except InputDataError:
        ax.text(0.98, 0.95, "log-rank p: n/a (one group)", transform=ax.transAxes, ha="right", va="top")
    ax.set_xlabel("time (days)")
    ax.set_ylabel("survival probability")
    ax.set_ylim(0, 1.05)
    ax.set_title(f"{title}\nrisk groups: median split of out-of-fold risk within each fold", fontsize=9)
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


def plot_model_task_(*, oof_path: Path, task: str, out_png: Path) -> None:
    """Figure of one model's out-of-fold predictions for one task.

    Survival: Kaplan-Meier curves of the low- and high-risk groups (median split of the
    out-of-fold risk within each fold) with the log-rank p-value. Classification: one-vs-rest
    ROC curves per class next to the confusion matrix.

    Parameters
    ----------
    oof_path : ``results/evaluation/<model>/<task>/predictions_oof.tsv`` (contract §9).
    task : ``"survival"``, ``"grade"`` or ``"diagnosis"``.
    out_png : output PNG.
    """
    kind = task_kind(task)
    required = ["model", "fold", *(("time_days", "event", "risk") if kind == "survival" else ("y_true",))]
    df = read_table_(oof_path, required=required, what="out-of-fold prediction table")
    if df.empty:
        raise InputDataError(f"out-of-fold prediction table {oof_path} has no rows.")
    title = f"{df['model'].iloc[0]} — {task} (n={len(df)})"
    fig = _plot_survival(df, title) if kind == "survival" else _plot_classification(df, title)
    _save(fig, Path(out_png))


def plot_summary_(*, summary_path: Path, out_png: Path) -> None:
    """Bar chart of the main metric (``c_index`` / ``auc_macro``) per model, one panel per task.

    Bars show the pooled out-of-fold value with its bootstrap CI as error bars (the fold mean
    when the pooled value is missing); the dashed line marks chance (0.5).
    """
    df = read_table_(summary_path, required=SUMMARY_COLUMNS, what="summary table")
    tasks = sorted(df["task"].unique(), key=lambda t: (t != "survival", t))
    if not tasks:
        raise InputDataError(f"summary table {summary_path} has no rows.")
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
    fig.suptitle("pooled out-of-fold performance (95% bootstrap CI)", fontsize=10)
    _save(fig, Path(out_png))


def plot_cohort_(*, labels_path: Path, out_png: Path) -> None:
    """Cohort overview from the label table (contract §3).

    Panels: patients per diagnosis, patients per WHO grade (missing labels shown as
    ``missing``), and Kaplan-Meier curves of overall survival by diagnosis.
    """
    df = read_table_(labels_path, required=["patient_id", "time_days", "event", "diagnosis", "grade"],
                     what="label table", dtype={"patient_id": str})
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
    _save(fig, Path(out_png))
