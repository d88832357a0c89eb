"""Paired model comparisons on the same patients and folds; the ablation table.

Contracts: reads §9 ``predictions_oof.tsv`` of every model and task (and the model cards, from the
training provenance or a cards JSON: :mod:`gliofuse.evaluation.cards`), writes §9 ``comparisons.tsv`` and
``ablation.tsv``; given a simulated cohort's ground truth, both get the column ``c_index_true_risk``
(:mod:`gliofuse.evaluation.truth`). Tables only: no torch.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from gliofuse.errors import InputDataError
from gliofuse.evaluation.bootstrap import paired_bootstrap
from gliofuse.evaluation.cards import read_cards_, read_training_cards_
from gliofuse.evaluation.evaluate import prob_columns
from gliofuse.evaluation.metrics import classification_metrics, concordance_index
from gliofuse.evaluation.repeats import (
    REPEAT_COLUMN,
    corrected_resampled_ttest,
    first_repeat,
    n_repeats_of,
    repeat_blocks,
    repeat_mean_statistic,
)
from gliofuse.evaluation.truth import add_true_risk_column, read_true_risk_
from gliofuse.io import provenance, read_table_, sidecar_path, write_table_
from gliofuse.tasks import task_kind

logger = logging.getLogger(__name__)

#: metrics compared between models, by task kind (the first is the task's main metric)
COMPARISON_METRICS: dict[str, tuple[str, ...]] = {
    "survival": ("c_index",),
    "classification": ("auc_macro", "balanced_accuracy"),
}
COMPARISON_COLUMNS: tuple[str, ...] = (
    "task", "metric", "model", "reference", "kind", "n_patients", "value", "value_ci_low", "value_ci_high",
    "reference_value", "diff", "diff_ci_low", "diff_ci_high", "p_value", "p_holm", "n_folds", "fold_diff_mean",
    "fold_diff_sd", "p_folds",
)
KIND_REFERENCE = "vs_reference"
KIND_ABLATION = "ablation"


def _stat_fn(task: str) -> Callable[..., dict[str, float]]:
    if task_kind(task) == "survival":
        return lambda event, time, risk: {"c_index": concordance_index(event, time, risk)}
    names = COMPARISON_METRICS["classification"]
    return lambda y, prob: classification_metrics(y, prob, names=names)


def _arrays(df: pd.DataFrame, task: str) -> list[np.ndarray]:
    if task_kind(task) == "survival":
        return [df["event"].to_numpy(np.int64), df["time_days"].to_numpy(np.float64), df["risk"].to_numpy(np.float64)]
    return [df["y_true"].to_numpy(np.int64), df[prob_columns(df)].to_numpy(np.float64)]


def read_oof_(path: Path) -> pd.DataFrame:
    """Read one ``predictions_oof.tsv`` (contract §9) of one model and task.

    Raises
    ------
    InputDataError
        Missing columns, several models or tasks in one file, duplicate patients.
    """
    df = read_table_(path, required=["patient_id", "model", "task", "fold"], what="out-of-fold prediction table",
                     dtype={"patient_id": str})
    for col in ("model", "task"):
        if df[col].nunique() != 1:
            raise InputDataError(f"out-of-fold prediction table {path}: column {col!r} must hold one value, got "
                                 f"{sorted(set(df[col].astype(str)))[:4]}.")
    task = str(df["task"].iloc[0])
    need = ["time_days", "event", "risk"] if task_kind(task) == "survival" else ["y_true"]
    missing = [c for c in need if c not in df.columns]
    if missing or (task_kind(task) == "classification" and len(prob_columns(df)) < 2):
        raise InputDataError(f"out-of-fold prediction table {path} lacks column(s) {missing or ['prob_<class>']} "
                             f"for task {task!r}.")
    key = df[[c for c in (REPEAT_COLUMN, "patient_id") if c in df.columns]]
    dup = df["patient_id"][key.duplicated()].tolist()
    if dup:
        raise InputDataError(f"out-of-fold prediction table {path}: duplicate patient(s) {dup[:5]}"
                             f"{' within one repeat' if REPEAT_COLUMN in df.columns else ''}.")
    return df


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values (NaN entries stay NaN and are not counted).

    References
    ----------
    Holm. A simple sequentially rejective multiple test procedure. Scand J Statist 6(2), 1979.
    """
    p = np.asarray(p_values, dtype=np.float64)
    out = np.full(p.shape, np.nan)
    ok = np.flatnonzero(np.isfinite(p))
    m = ok.size
    running = 0.0
    for rank, i in enumerate(ok[np.argsort(p[ok], kind="stable")]):
        running = max(running, min(1.0, (m - rank) * p[i]))
        out[i] = running
    return out.tolist()


def _fold_values(model_df: pd.DataFrame, ref_df: pd.DataFrame, task: str,
                 metric: str) -> tuple[list[float], list[float]]:
    """The metric of both models on each fold (the same folds) where both are defined."""
    stat = _stat_fn(task)
    a_vals, b_vals = [], []
    for fold in sorted(set(model_df["fold"])):
        a = model_df[model_df["fold"] == fold]
        b = ref_df[ref_df["fold"] == fold]
        try:
            va, vb = stat(*_arrays(a, task))[metric], stat(*_arrays(b, task))[metric]
        except InputDataError:
            continue
        if np.isfinite(va) and np.isfinite(vb):
            a_vals.append(va)
            b_vals.append(vb)
    return a_vals, b_vals


def _fold_test(model_df: pd.DataFrame, ref_df: pd.DataFrame, task: str, metric: str, *,
               n_repeats: int = 1) -> tuple[int, float, float, float]:
    """Per-fold metric differences on the same folds: (n folds, mean, sd, p).

    One repeat: the paired t-test over the k folds. r > 1 repeats: the corrected resampled t-test over the
    k x r folds (:func:`gliofuse.evaluation.repeats.corrected_resampled_ttest`, n_test / n_train = 1 / (k - 1)).
    """
    from scipy.stats import ttest_rel

    a_vals, b_vals = _fold_values(model_df, ref_df, task, metric)
    d = np.asarray(a_vals) - np.asarray(b_vals)
    if d.size == 0:
        return 0, math.nan, math.nan, math.nan
    sd = float(d.std(ddof=1)) if d.size > 1 else math.nan
    p = math.nan
    if n_repeats > 1:
        k = model_df["fold"].nunique() / n_repeats
        p = corrected_resampled_ttest(d, test_train_ratio=1.0 / (k - 1)) if k > 1 else math.nan
    elif d.size > 1 and np.ptp(d) > 0:
        p = float(ttest_rel(a_vals, b_vals).pvalue)
    elif d.size > 1:
        p = 1.0 if d[0] == 0 else math.nan
    return int(d.size), float(d.mean()), sd, p


def _aligned(model_df: pd.DataFrame, ref_df: pd.DataFrame, *, task: str, model: str,
             reference: str) -> tuple[list[pd.DataFrame], list[pd.DataFrame]]:
    """Both models' rows per repeat on their shared patients, in one patient order (one block per repeat)."""
    what = f"{task}: {model} vs {reference}"
    if n_repeats_of(model_df) != n_repeats_of(ref_df):
        raise InputDataError(f"{what}: {n_repeats_of(model_df)} vs {n_repeats_of(ref_df)} cross-validation repeats; "
                             "evaluate both on the same split files.")
    a0, b0 = first_repeat(model_df), first_repeat(ref_df)
    common = sorted(set(a0["patient_id"]) & set(b0["patient_id"]))
    if len(common) < len(a0) or len(common) < len(b0):
        logger.warning("%s: %s and %s share %d patients (%d and %d in their tables); compared on the shared ones",
                       task, model, reference, len(common), len(a0), len(b0))
    return (repeat_blocks(model_df, what=f"{what} ({model})", patients=common),
            repeat_blocks(ref_df, what=f"{what} ({reference})", patients=common))


def _compare_pair(model_df: pd.DataFrame, ref_df: pd.DataFrame, *, task: str, model: str, reference: str,
                  kind: str, n_bootstrap: int, seed: int) -> list[dict[str, Any]]:
    blocks_a, blocks_b = _aligned(model_df, ref_df, task=task, model=model, reference=reference)
    n_rep = len(blocks_a)
    same_folds = all(bool((a["fold"].to_numpy() == b["fold"].to_numpy()).all())
                     for a, b in zip(blocks_a, blocks_b, strict=True))
    if not same_folds:
        logger.warning("%s: %s and %s put some patients in different folds; no per-fold test", task, model, reference)
    self_compare = model == reference
    arrays_a = [x for blk in blocks_a for x in _arrays(blk, task)]
    arrays_b = [x for blk in blocks_b for x in _arrays(blk, task)]
    stat = _stat_fn(task) if n_rep == 1 else repeat_mean_statistic(_stat_fn(task), len(arrays_a) // n_rep, n_rep)
    res = paired_bootstrap(stat, arrays_a, arrays_b, n_bootstrap=n_bootstrap, seed=seed)
    a, b = pd.concat(blocks_a, ignore_index=True), pd.concat(blocks_b, ignore_index=True)
    rows = []
    for metric in COMPARISON_METRICS[task_kind(task)]:
        r = res.get(metric)
        if r is None:
            continue
        n_folds, fmean, fsd, pf = (_fold_test(a, b, task, metric, n_repeats=n_rep) if same_folds and not self_compare
                                   else (a["fold"].nunique(), math.nan, math.nan, math.nan))
        rows.append({
            "task": task, "metric": metric, "model": model, "reference": reference, "kind": kind,
            "n_patients": len(blocks_a[0]), "value": r.value, "value_ci_low": r.value_ci[0],
            "value_ci_high": r.value_ci[1], "reference_value": r.reference_value,
            "diff": math.nan if self_compare else r.diff,
            "diff_ci_low": math.nan if self_compare else r.diff_ci[0],
            "diff_ci_high": math.nan if self_compare else r.diff_ci[1],
            "p_value": math.nan if self_compare else r.p_value, "p_holm": math.nan,
            "n_folds": n_folds, "fold_diff_mean": fmean, "fold_diff_sd": fsd, "p_folds": pf, "n_repeats": n_rep,
        })
    return rows


def compare_models(oofs: Mapping[tuple[str, str], pd.DataFrame], *, reference: str,
                   cards: Mapping[str, Mapping[str, Any]] | None = None, n_bootstrap: int,
                   seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Compare every model with the reference model, and every ablation with its full model.

    Parameters
    ----------
    oofs : ``{(model, task): out-of-fold table}`` (contract §9).
    reference : the main model (``evaluation.reference_model``); tasks it has no table for are left out
        of ``comparisons`` (with a warning), ablations of those tasks are still compared.
    cards : ``{model: card}``; a card with ``ablation_of`` naming another compared model adds an
        ablation comparison.
    n_bootstrap, seed : paired patient-level bootstrap (same resamples for both models).

    Returns
    -------
    comparisons : one row per task, metric and model against the reference (the reference's own
        row has its value and CI, no difference), columns ``COMPARISON_COLUMNS``. ``p_holm`` is the
        Holm-adjusted p-value over the models of one task and metric.
    ablation : the same columns for each ablation against the model it ablates (``kind = ablation``).

    Raises
    ------
    InputDataError
        The reference model has no table at all.
    """
    cards = cards or {}
    tasks = sorted({t for _, t in oofs}, key=lambda t: (t != "survival", t))
    if oofs and not any(m == reference for m, _ in oofs):
        raise InputDataError(f"the reference model {reference!r} has no out-of-fold table (models with one: "
                             f"{sorted({m for m, _ in oofs})}). Set evaluation.reference_model to one of them.")
    rows: list[dict[str, Any]] = []
    abl: list[dict[str, Any]] = []
    for task in tasks:
        models = sorted(m for m, t in oofs if t == task)
        if reference not in models:  # per-model task lists (training.model_training.<m>.tasks)
            logger.warning("task %s: the reference model %s was not trained for it; models %s are not compared "
                           "with it on this task", task, reference, models)
        else:
            ref_df = oofs[(reference, task)]
            for model in [reference, *[m for m in models if m != reference]]:
                rows += _compare_pair(oofs[(model, task)], ref_df, task=task, model=model, reference=reference,
                                      kind=KIND_REFERENCE, n_bootstrap=n_bootstrap, seed=seed)
        for model in models:
            full = (cards.get(model) or {}).get("ablation_of")
            if not full:
                continue
            if full not in models:
                logger.info("%s: %s ablates %s, which was not trained for this task; not in the ablation table",
                            task, model, full)
                continue
            abl += _compare_pair(oofs[(model, task)], oofs[(full, task)], task=task, model=model, reference=str(full),
                                 kind=KIND_ABLATION, n_bootstrap=n_bootstrap, seed=seed)
    repeated = any(r["n_repeats"] > 1 for r in [*rows, *abl])
    columns = [*COMPARISON_COLUMNS, *(["n_repeats"] if repeated else [])]
    comp = pd.DataFrame(rows, columns=columns)
    ablation = pd.DataFrame(abl, columns=columns)
    for df in (comp, ablation):
        for idx in df.groupby(["task", "metric", "reference"], sort=False).groups.values():
            df.loc[idx, "p_holm"] = holm(df.loc[idx, "p_value"].tolist())
    return comp, ablation


def compare_models_(*, oof_paths: list[Path], reference: str, cards_path: Path | None, n_bootstrap: int, seed: int,
                    out_comparisons: Path, out_ablation: Path, card_predictions: Sequence[Path] = (),
                    truth_path: Path | None = None) -> None:
    """Read the out-of-fold tables, run :func:`compare_models` and write ``comparisons.tsv`` and ``ablation.tsv``.

    The model cards (for the ablations) come from ``cards_path`` (a cards JSON) and from the provenance
    sidecars of ``card_predictions`` (fold ``predictions.tsv`` files, :func:`read_training_cards_`).
    ``truth_path``: a ground-truth table with ``true_risk`` (the demo's ``truth/ground_truth.tsv``); given,
    both tables get ``c_index_true_risk`` (:func:`gliofuse.evaluation.truth.add_true_risk_column`).

    Raises
    ------
    InputDataError
        A table violates contract §9, two tables are for the same model and task, the reference
        model lacks a table, or a card source is unreadable.
    """
    oofs: dict[tuple[str, str], pd.DataFrame] = {}
    for path in oof_paths:
        df = read_oof_(Path(path))
        key = (str(df["model"].iloc[0]), str(df["task"].iloc[0]))
        if key in oofs:
            raise InputDataError(f"two out-of-fold tables for model {key[0]!r}, task {key[1]!r} (one is {path}).")
        oofs[key] = df
    cards = read_cards_(Path(cards_path) if cards_path else None) | read_training_cards_(card_predictions)
    comp, ablation = compare_models(oofs, reference=reference, cards=cards, n_bootstrap=n_bootstrap, seed=seed)
    if truth_path is not None:
        true_risk = read_true_risk_(Path(truth_path))
        comp, ablation = (add_true_risk_column(df, oofs, true_risk) for df in (comp, ablation))
    inputs = ({str(p): p for p in oof_paths} | ({"cards": cards_path} if cards_path else {})
              | ({"truth": truth_path} if truth_path is not None else {})
              | {str(sidecar_path(p)): sidecar_path(p) for p in card_predictions})
    prov = provenance(config={"reference": reference, "n_bootstrap": n_bootstrap, "seed": seed}, inputs=inputs,
                      extra={"reference": reference, "n_bootstrap": n_bootstrap, "seed": seed,
                             "ablation_of": {m: c.get("ablation_of") for m, c in sorted(cards.items())
                                             if c.get("ablation_of")}})
    write_table_(out_comparisons, comp, prov=prov)
    write_table_(out_ablation, ablation, prov=prov)
    logger.info("compared %d model/task tables against %s (%d ablation rows) -> %s", len(oofs), reference,
                len(ablation), out_comparisons)

