"""Concordance of predicted risks with a simulated cohort's true risk (the demo's ground truth).

The demo generator writes ``truth/ground_truth.tsv`` (``patient_id``, ``true_risk`` = the true log
hazard, among other columns). The observed C-index mixes what a model learned with the label noise
of sampled survival times and censoring; the concordance with ``true_risk`` measures the first
alone. Real cohorts have no ground truth: callers pass none and the column is left out. This module
is the one reader of the ground-truth table. Tables only: no torch.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from gliofuse.errors import InputDataError, NoComparablePairsError
from gliofuse.evaluation.metrics import concordance_index
from gliofuse.evaluation.repeats import repeats_of
from gliofuse.io import read_table_
from gliofuse.tasks import task_kind

logger = logging.getLogger(__name__)

#: column added to the comparison and ablation tables when a ground truth is given (survival rows)
TRUE_RISK_COLUMN = "c_index_true_risk"


def read_true_risk_(path: Path) -> pd.Series:
    """``true_risk`` by ``patient_id`` from a ground-truth table (the demo's ``truth/ground_truth.tsv``).

    Raises
    ------
    InputDataError
        Missing columns, duplicate patients, or non-finite ``true_risk`` values (the message names the file).
    """
    df = read_table_(path, required=["patient_id", "true_risk"], what="ground-truth table", dtype={"patient_id": str})
    dup = df["patient_id"][df["patient_id"].duplicated()].tolist()
    if dup:
        raise InputDataError(f"ground-truth table {path}: duplicate patient(s) {dup[:5]}.")
    risk = pd.to_numeric(df["true_risk"], errors="coerce")
    bad = df["patient_id"][~np.isfinite(risk.to_numpy(np.float64))].tolist()
    if bad:
        raise InputDataError(f"ground-truth table {path}: true_risk is missing or not a finite number for "
                             f"patient(s) {bad[:5]}.")
    return pd.Series(risk.to_numpy(np.float64), index=df["patient_id"].to_numpy(), name="true_risk")


def true_risk_concordance(risk: np.ndarray, true_risk: np.ndarray) -> float:
    """Concordance between predicted and true risks: the fraction of patient pairs with different true
    risks that the prediction orders the same way (prediction ties count 1/2); 0.5 = chance, 1 = perfect.

    Harrell's C with every patient an event at time ``-true_risk`` (a higher true risk is an earlier
    event). Shapes: ``risk`` and ``true_risk`` (n_patients,). NaN when no pair has different true risks.
    """
    risk = np.asarray(risk, dtype=np.float64)
    true_risk = np.asarray(true_risk, dtype=np.float64)
    if risk.shape != true_risk.shape:
        raise InputDataError(f"true-risk concordance: {risk.shape[0]} predicted risks but {true_risk.shape[0]} "
                             "true risks.")
    try:
        return concordance_index(np.ones(risk.shape[0], dtype=np.int64), -true_risk, risk)
    except NoComparablePairsError:
        return float("nan")


def add_true_risk_column(table: pd.DataFrame, oofs: dict[tuple[str, str], pd.DataFrame],
                         true_risk: pd.Series) -> pd.DataFrame:
    """Add ``c_index_true_risk`` to a comparison or ablation table: for each survival row, the
    concordance of the row's model's pooled out-of-fold ``risk`` with ``true_risk`` (patients without a
    true risk are left out, with a warning; a repeated CV: the mean over the repeats); NaN for classification
    rows."""
    values = []
    for model, task in zip(table["model"], table["task"], strict=True):
        oof = oofs.get((str(model), str(task)))
        if oof is None or task_kind(str(task)) != "survival":
            values.append(float("nan"))
            continue
        known = oof["patient_id"].isin(true_risk.index)
        if not known.all():
            logger.warning("%s/%s: %d patient(s) have no true risk; the true-risk C-index leaves them out",
                           model, task, int((~known).sum()))
        part, rep = oof[known], repeats_of(oof)[known.to_numpy()]
        values.append(float(np.mean([  # a repeated CV: the mean over the repeats (one value per repeat)
            true_risk_concordance(part["risk"].to_numpy(np.float64)[rep == j],
                                  true_risk.loc[part["patient_id"][rep == j]].to_numpy(np.float64))
            for j in np.unique(rep)])) if len(part) else float("nan"))
    out = table.copy()
    out[TRUE_RISK_COLUMN] = values
    return out
