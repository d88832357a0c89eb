"""``summary.tsv`` (contract §9): the metrics of every model and task in one table.

One row per model, task and metric: the mean and sd over the test folds and the pooled out-of-fold value
with its bootstrap CI. A repeated cross-validation (metrics with ``repeat_<j>`` rows) adds the columns
:data:`REPEAT_SUMMARY_COLUMNS`; then ``pooled`` is the mean over the repeats.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

from gliofuse.errors import InputDataError
from gliofuse.evaluation.evaluate import METRICS_COLUMNS
from gliofuse.evaluation.repeats import REPEAT_FOLD_PREFIX
from gliofuse.io import provenance, read_table_, write_table_

logger = logging.getLogger(__name__)

SUMMARY_COLUMNS: tuple[str, ...] = ("model", "task", "metric", "mean", "sd", "pooled", "ci_low", "ci_high")
#: added when any model was evaluated on a repeated cross-validation: the number of repeats, the sd (ddof = 1)
#: of the per-repeat out-of-fold values and those values (``;``-separated, repeat order)
REPEAT_SUMMARY_COLUMNS: tuple[str, ...] = ("n_repeats", "repeat_sd", "repeat_values")


def _is_repeat(fold: pd.Series) -> pd.Series:
    return fold.str.startswith(REPEAT_FOLD_PREFIX)


def _repeat_order(labels: pd.Series) -> list[int]:
    return sorted(range(len(labels)), key=lambda i: int(labels.iloc[i].removeprefix(REPEAT_FOLD_PREFIX)))


def _summary_row(g: pd.DataFrame) -> dict[str, float | int | str]:
    per_fold = pd.to_numeric(g.loc[g["fold"].str.fullmatch(r"\d+"), "value"], errors="coerce").dropna()
    pooled = g[g["fold"] == "pooled"]
    pv, lo, hi = (pooled[["value", "ci_low", "ci_high"]].iloc[0].astype(float).tolist()
                  if len(pooled) else [float("nan")] * 3)
    reps = g[_is_repeat(g["fold"])]
    rvals = pd.to_numeric(reps["value"], errors="coerce").iloc[_repeat_order(reps["fold"])]
    return {
        "mean": float(per_fold.mean()) if len(per_fold) else float("nan"),
        "sd": float(per_fold.std(ddof=1)) if len(per_fold) > 1 else float("nan"),
        "pooled": pv, "ci_low": lo, "ci_high": hi,
        "n_repeats": max(1, len(rvals)),
        "repeat_sd": float(rvals.std(ddof=1)) if len(rvals) > 1 else float("nan"),
        "repeat_values": ";".join(f"{v:.6g}" for v in rvals) if len(rvals) else f"{pv:.6g}",
    }


def summarise_(*, metrics_paths: list[Path], out_summary: Path) -> None:
    """Combine ``metrics.tsv`` files of several models and tasks into ``summary.tsv`` (contract §9).

    One row per model, task and metric: ``mean`` and ``sd`` (ddof = 1) of the per-fold values (all k x r
    folds of a repeated CV; NaN folds ignored), and the ``pooled`` value with its ``ci_low``/``ci_high``
    (repeated CV: the mean of the per-repeat values and the bootstrap CI of that mean). When any file has
    per-repeat rows (``fold = repeat_<j>``), the columns ``n_repeats``, ``repeat_sd`` and ``repeat_values``
    follow (a file without them counts as one repeat whose value is ``pooled``).

    Raises
    ------
    InputDataError
        A file lacks a contract column or has no per-fold rows.
    """
    frames = []
    for path in metrics_paths:
        df = read_table_(path, required=METRICS_COLUMNS, what="metrics table", dtype={"fold": str})
        if not df["fold"].str.fullmatch(r"\d+").any():
            raise InputDataError(f"metrics table {path} has no per-fold rows (column 'fold').")
        frames.append(df)
    if not frames:
        raise InputDataError("summarise: no metrics files given.")
    allm = pd.concat(frames, ignore_index=True)
    repeated = bool(_is_repeat(allm["fold"]).any())
    columns = [*SUMMARY_COLUMNS, *(REPEAT_SUMMARY_COLUMNS if repeated else ())]
    records = []
    for (model, task, metric), g in allm.groupby(["model", "task", "metric"], sort=True):
        records.append({"model": model, "task": task, "metric": metric, **_summary_row(g)})
    summary = pd.DataFrame(records)[columns] if records else pd.DataFrame(columns=columns)
    prov = provenance(config={}, inputs={str(p): p for p in metrics_paths})
    write_table_(out_summary, summary, prov=prov)
    logger.info("summary of %d model/task pairs -> %s", len(frames), out_summary)
