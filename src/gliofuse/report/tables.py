"""``results/summary.md``: the main tables in Markdown, and the trained models' cards.

Markdown is written without timestamps, so two runs on the same tables give the same bytes.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from gliofuse.evaluation.cards import read_cards_
from gliofuse.evaluation.compare import COMPARISON_COLUMNS, COMPARISON_METRICS
from gliofuse.evaluation.evaluate import (
    CLASSIFICATION_METRICS,
    LOWER_IS_BETTER,
    P_VALUE_METRICS,
    SURVIVAL_METRICS,
)
from gliofuse.evaluation.summary import SUMMARY_COLUMNS
from gliofuse.evaluation.truth import TRUE_RISK_COLUMN
from gliofuse.io import read_table_, sidecar_path, write_text_atomic_
from gliofuse.report.forest import format_p

logger = logging.getLogger(__name__)

METRIC_NAMES: dict[str, str] = {
    "c_index": "Harrell's C-index", "c_index_uno": "Uno's C-index", "td_auc": "mean time-dependent AUC",
    "ibs": "integrated Brier score", "logrank_p": "log-rank p (median split)", "auc_macro": "macro AUC",
    "auc_micro": "micro AUC", "average_precision": "average precision", "balanced_accuracy": "balanced accuracy",
    "f1_macro": "macro F1", "accuracy": "accuracy",
}


def _f(x: Any, digits: int = 3, signed: bool = False) -> str:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return "n/a"
    if not math.isfinite(v):
        return "n/a"
    return f"{v:+.{digits}f}" if signed else f"{v:.{digits}f}"


def _ci(lo: Any, hi: Any, signed: bool = False) -> str:
    a, b = _f(lo, signed=signed), _f(hi, signed=signed)
    return "n/a" if "n/a" in (a, b) else f"[{a}, {b}]"


def _metric_value(metric: str, x: Any) -> str:
    """A metric value for a table cell: p-value metrics as p-values (``<0.001``), the others to 3 decimals."""
    if metric in P_VALUE_METRICS:
        try:
            return format_p(float(x))
        except (TypeError, ValueError):
            return "n/a"
    return _f(x)


def _metric_ci(metric: str, lo: Any, hi: Any) -> str:
    if metric not in P_VALUE_METRICS:
        return _ci(lo, hi)
    a, b = _metric_value(metric, lo), _metric_value(metric, hi)
    return "n/a" if "n/a" in (a, b) else f"[{a}, {b}]"


def _has_truth(df: pd.DataFrame) -> bool:
    """Whether a comparison/ablation table carries the C-index against the true risk (simulated cohorts)."""
    return TRUE_RISK_COLUMN in df.columns and bool(pd.to_numeric(df[TRUE_RISK_COLUMN], errors="coerce").notna().any())


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A GitHub-flavoured Markdown table (``|`` in cells escaped)."""
    def cell(x: str) -> str:
        return str(x).replace("|", "\\|")

    lines = ["| " + " | ".join(cell(h) for h in header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def _task_order(tasks: Sequence[str]) -> list[str]:
    return sorted(set(tasks), key=lambda t: (t != "survival", t))


def n_repeats_in(summary: pd.DataFrame) -> int:
    """The most cross-validation repeats of any row of ``summary.tsv`` (1 without the repeat columns)."""
    if "n_repeats" not in summary.columns or not len(summary):
        return 1
    return int(pd.to_numeric(summary["n_repeats"], errors="coerce").fillna(1).max())


def _main_table(comp: pd.DataFrame, *, repeated: bool = False) -> str:
    truth = _has_truth(comp)
    rows = []
    for task in _task_order(comp["task"].tolist()):
        sub = comp[comp["task"] == task]
        for metric in dict.fromkeys(sub["metric"]):
            part = sub[sub["metric"] == metric]
            part = pd.concat([part[part["model"] == part["reference"]],
                              part[part["model"] != part["reference"]].sort_values("model")])
            for r in part.itertuples(index=False):
                is_ref = r.model == r.reference
                fold = ("n/a" if is_ref or not math.isfinite(float(r.fold_diff_mean))
                        else f"{_f(r.fold_diff_mean, signed=True)} ± {_f(r.fold_diff_sd)} (p={format_p(float(r.p_folds))})")
                rows.append([task, METRIC_NAMES.get(metric, metric), f"**{r.model}**" if is_ref else str(r.model),
                             _f(r.value), _ci(r.value_ci_low, r.value_ci_high),
                             "reference" if is_ref else _f(r.diff, signed=True),
                             "" if is_ref else _ci(r.diff_ci_low, r.diff_ci_high, signed=True),
                             "" if is_ref else format_p(float(r.p_value)),
                             "" if is_ref else format_p(float(r.p_holm)), "" if is_ref else fold]
                            + ([_f(getattr(r, TRUE_RISK_COLUMN))] if truth else []))
    return markdown_table(["task", "metric", "model", "value", "95% CI", "Δ vs reference", "Δ 95% CI", "p",
                           "p (Holm)", ("per-fold Δ mean ± sd (corrected resampled t p)" if repeated
                                        else "per-fold Δ mean ± sd (paired t p)")]
                          + (["C-index vs true risk"] if truth else []), rows)


def _pooled_cell(r: Any) -> str:
    """The pooled value; with repeats: the repeat mean ± the sd over the repeats."""
    value = _metric_value(r.metric, r.pooled)
    n_rep = pd.to_numeric(getattr(r, "n_repeats", 1), errors="coerce")
    return f"{value} ± {_f(r.repeat_sd)}" if math.isfinite(n_rep) and n_rep > 1 else value


def _all_metrics_table(summary: pd.DataFrame) -> str:
    repeated = n_repeats_in(summary) > 1
    rows = []
    order = {m: i for i, m in enumerate((*SURVIVAL_METRICS, *CLASSIFICATION_METRICS))}
    for task in _task_order(summary["task"].tolist()):
        sub = summary[summary["task"] == task].copy()
        sub["_order"] = sub["metric"].map(order).fillna(len(order))
        for r in sub.sort_values(["model", "_order", "metric"], kind="stable").itertuples(index=False):
            rows.append([task, str(r.model), METRIC_NAMES.get(str(r.metric), str(r.metric)),
                         f"{_metric_value(r.metric, r.mean)} ± {_f(r.sd)}", _pooled_cell(r),
                         _metric_ci(r.metric, r.ci_low, r.ci_high),
                         "lower" if r.metric in LOWER_IS_BETTER else "higher"])
    pooled = "pooled: repeat mean ± sd" if repeated else "pooled"
    return markdown_table(["task", "model", "metric", "fold mean ± sd", pooled, f"{pooled.split(':')[0]} 95% CI",
                           "better"], rows)


def _repeats_table(summary: pd.DataFrame) -> str:
    """The main metrics of every model on each repeat of a repeated cross-validation (``repeat_values``)."""
    n_rep = n_repeats_in(summary)
    main = {m for ms in COMPARISON_METRICS.values() for m in ms}
    rows = []
    for task in _task_order(summary["task"].tolist()):
        sub = summary[(summary["task"] == task) & summary["metric"].isin(main)]
        for r in sub.sort_values(["metric", "model"], kind="stable").itertuples(index=False):
            values = str(r.repeat_values).split(";")
            rows.append([task, str(r.model), METRIC_NAMES.get(str(r.metric), str(r.metric)),
                         f"{_f(r.pooled)} ± {_f(r.repeat_sd)}",
                         *[_f(v) for v in values], *[""] * (n_rep - len(values))])
    return markdown_table(["task", "model", "metric", "mean ± sd", *[f"repeat {j}" for j in range(n_rep)]], rows)


def _ablation_table(abl: pd.DataFrame) -> str:
    truth = _has_truth(abl)
    rows = []
    for task in _task_order(abl["task"].tolist()):
        for r in abl[abl["task"] == task].sort_values(["metric", "model"]).itertuples(index=False):
            rows.append([task, METRIC_NAMES.get(str(r.metric), str(r.metric)), str(r.model), str(r.reference),
                         _f(r.reference_value), _f(r.value), _f(r.diff, signed=True),
                         _ci(r.diff_ci_low, r.diff_ci_high, signed=True), format_p(float(r.p_value)),
                         format_p(float(r.p_holm))] + ([_f(getattr(r, TRUE_RISK_COLUMN))] if truth else []))
    return markdown_table(["task", "metric", "ablation", "full model", "full", "ablation value", "Δ", "Δ 95% CI",
                           "p", "p (Holm)"] + (["ablation C-index vs true risk"] if truth else []), rows)


def _models_table(cards: Mapping[str, Mapping[str, Any]]) -> str:
    rows = []
    for name in sorted(cards):
        c = cards[name]
        params = c.get("params") or {}
        notes = ""
        if params.get("rna_encoder") is not None:  # Path-GPTOmic: which frozen RNA encoder ran
            weights = str(params["rna_encoder"])
            if weights == "fallback":
                notes = "RNA encoder: fallback (frozen seeded random projection; no foundation weights given)"
            else:
                smoothing = "with" if params.get("sc_reference") else "without"
                notes = f"RNA encoder: gene-embedding table {weights}, {smoothing} single-cell smoothing"
        rows.append([name, str(c.get("family", "")), ", ".join(c.get("modalities", [])),
                     str(c.get("ablation_of") or ""), str(c.get("reference", "")), notes])
    return markdown_table(["model", "family", "modalities", "ablation of", "reference", "notes"], rows)


def summary_markdown(*, title: str, summary: pd.DataFrame, comparisons: pd.DataFrame, ablation: pd.DataFrame,
                     n_bootstrap: int | None = None, cards: Mapping[str, Mapping[str, Any]] | None = None) -> str:
    """The text of ``results/summary.md``: main table, ablation table, all metrics (and the models, given cards)."""
    ref = sorted(set(comparisons["reference"].astype(str))) if len(comparisons) else []
    boot = f"{n_bootstrap} " if n_bootstrap is not None else ""
    n_rep = n_repeats_in(summary)
    repeats_note = "" if n_rep == 1 else (
        f" The cross-validation is repeated {n_rep} times with different patient partitions: every value is the "
        "mean over the repeats of the metric on one repeat's pooled out-of-fold predictions (a patient appears "
        "once per repeat; repeats are never pooled together), its CI and the paired bootstrap resample the same "
        "patients in every repeat, and the per-fold test is the corrected resampled t-test over all folds of all "
        "repeats (Nadeau & Bengio 2003; Bouckaert & Frank 2004). Per-repeat values: section Repeats.")
    parts = [
        f"# {title}",
        "",
        (f"Reference model: **{', '.join(ref) or 'n/a'}**. Models: {', '.join(sorted(set(summary['model'])))}. "
         f"Tasks: {', '.join(_task_order(summary['task'].tolist()))}."),
        "",
        ("All values are computed from the pooled out-of-fold (test) predictions of the cross-validation. "
         f"Confidence intervals: percentile bootstrap over patients ({boot}resamples). Differences (Δ) and p-values: "
         "paired bootstrap on the same patients against the reference model (two-sided; Holm-adjusted over the "
         "models of one task and metric), and a "
         + ("corrected resampled" if n_rep > 1 else "paired") + " t-test over the per-fold differences." + repeats_note),
        "",
        "## Main results",
        "",
        _main_table(comparisons, repeated=n_rep > 1) if len(comparisons) else "_No comparison table._",
        "",
        "## Ablations",
        "",
        (_ablation_table(ablation) if len(ablation) else
         "_No configured model is an ablation of another configured model (ModelCard.ablation_of)._"),
        "",
        "## All metrics",
        "",
        ("Per-fold mean ± standard deviation over the test folds, and the pooled out-of-fold value with its "
         "bootstrap 95% CI. Survival: Harrell's and Uno's C-index, mean cumulative/dynamic AUC and integrated Brier "
         "score (survival curves from discrete hazards, or Breslow's baseline hazard of each fold for Cox risks); "
         "classification: macro/micro one-vs-rest AUC, average precision, balanced accuracy, macro F1, accuracy."),
        "",
        _all_metrics_table(summary),
        "",
    ]
    if n_rep > 1:
        parts += ["## Repeats", "", (f"The main metrics on each of the {n_rep} cross-validation repeats (pooled "
                                     "out-of-fold predictions of one repeat), with their mean ± sd."), "",
                  _repeats_table(summary), ""]
    if cards:
        parts += ["## Models", "", ("Registry cards of the trained models (from the training provenance); for Path-GPTOmic "
                                    "the RNA foundation encoder that ran (a local checkpoint, or the documented "
                                    "fallback)."), "",
                  _models_table(cards), ""]
    return "\n".join(parts)


def write_summary_markdown_(*, summary_path: Path, comparisons_path: Path, ablation_path: Path, out: Path,
                            title: str = "gliofuse report", cards_path: Path | None = None,
                            external_sections: Sequence[Path] = ()) -> None:
    """Write ``results/summary.md`` from ``summary.tsv``, ``comparisons.tsv`` and ``ablation.tsv`` (contract §9),
    followed by the external cohorts' sections (``results/external/<cohort>/summary.md``, contract §12)."""
    summary = read_table_(summary_path, required=SUMMARY_COLUMNS, what="summary table")
    comp = read_table_(comparisons_path, required=COMPARISON_COLUMNS, what="comparisons table")
    abl = read_table_(ablation_path, required=COMPARISON_COLUMNS, what="ablation table")
    n_boot = None
    side = sidecar_path(comparisons_path)
    if side.exists():
        n_boot = json.loads(side.read_text()).get("extra", {}).get("n_bootstrap")
    cards = read_cards_(cards_path)
    text = summary_markdown(title=title, summary=summary, comparisons=comp, ablation=abl, n_bootstrap=n_boot,
                            cards=cards)
    for section in external_sections:
        text = text.rstrip("\n") + "\n\n" + Path(section).read_text().rstrip("\n") + "\n"
    write_text_atomic_(out, text)
    logger.info("wrote %s", out)

