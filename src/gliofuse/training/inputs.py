"""Reading one fold's inputs (docs/data-contracts.md): split (§7), labels (§3), omics matrix (§6), features (§5)."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from gliofuse.data.batch import Targets
from gliofuse.data.splits import Split, short_ids
from gliofuse.errors import InputDataError
from gliofuse.features.store import FeatureFileInfo
from gliofuse.io import read_table_
from gliofuse.omics.matrix import read_omics_
from gliofuse.tasks import SPLITS, TaskSpec, class_indices
from gliofuse.training.assemble import FoldData

logger = logging.getLogger(__name__)


def read_task_targets_(labels_path: Path, patients: Sequence[str], task: TaskSpec) -> tuple[Targets, np.ndarray]:
    """Targets of ``patients`` for ``task`` from the label table (contract §3).

    Returns
    -------
    targets : :class:`Targets` aligned to ``patients``.
    usable : bool array, shape = (len(patients),): the patient has this task's outcome
        (survival: ``time_days`` and ``event`` known; classification: label != -1).

    Raises
    ------
    InputDataError
        Missing columns, duplicate patients, a split patient without a label row, or bad values.
    """
    four_class = task.name == "diagnosis" and task.n_classes == 4
    required = ["patient_id", "time_days", "event"] + ([task.label_column] if task.label_column else [])
    if four_class:
        required.append("who2021_grade")
    labels = read_table_(labels_path, required=required, what="label table", dtype={"patient_id": str})
    dup = labels["patient_id"][labels["patient_id"].duplicated()].tolist()
    if dup:
        raise InputDataError(f"label table {labels_path}: duplicate patient_id {short_ids(dup)}. Rerun `labels_build`.")
    labels = labels.set_index("patient_id")
    absent = [p for p in patients if p not in labels.index]
    if absent:
        raise InputDataError(f"{len(absent)} patient(s) of the split have no row in the label table "
                             f"{labels_path}: {short_ids(absent)}. Rerun `data_splits` after `labels_build`.")
    rows = labels.loc[list(patients)]
    time_days = pd.to_numeric(rows["time_days"], errors="coerce").to_numpy(dtype=np.float64)
    event = pd.to_numeric(rows["event"], errors="coerce").to_numpy(dtype=np.float64)
    label = np.full(len(patients), -1, dtype=np.int64)
    if task.kind == "survival":
        usable = np.isfinite(time_days) & np.isfinite(event)
        bad_event = [p for p, e, u in zip(patients, event, usable, strict=True) if u and e not in (0.0, 1.0)]
        if bad_event:
            raise InputDataError(f"label table {labels_path}: column 'event' must be 0/1 (1 = death observed); "
                                 f"bad values for {short_ids(bad_event)}.")
        bad_time = [p for p, t, u in zip(patients, time_days, usable, strict=True) if u and not t > 0]
        if bad_time:
            raise InputDataError(f"label table {labels_path}: column 'time_days' must be > 0 days; "
                                 f"bad values for {short_ids(bad_time)}. Fix labels_build.")
    else:
        assert task.label_column is not None
        raw = pd.to_numeric(rows[task.label_column], errors="coerce").to_numpy(dtype=np.float64)
        grade = pd.to_numeric(rows["who2021_grade"], errors="coerce").to_numpy(np.float64) if four_class else None
        indices, bad_at = class_indices(task, raw.tolist(), None if grade is None else grade.tolist())
        if bad_at:
            raise InputDataError(
                f"label table {labels_path}: column {task.label_column!r} must hold class indices "
                f"0..{2 if four_class else task.n_classes - 1} or -1 (missing); bad values for "
                f"{short_ids([patients[i] for i in bad_at])}.")
        label = np.asarray(indices, dtype=np.int64)
        usable = label >= 0
    return Targets(time_days=time_days, event=event, label=label), usable


def read_fold_data_(split: Split, *, split_path: Path, labels_path: Path, omics_path: Path | None,
                    tasks: Sequence[TaskSpec], slide_files: Mapping[str, list[FeatureFileInfo]] | None = None,
                    wsi_dim: int = 0) -> tuple[FoldData, dict[str, int]]:
    """The fold's :class:`FoldData`: targets, omics rows and the partitions of patients with the outcome.

    Parameters
    ----------
    split : the fold split read from ``split_path`` (contract §7).
    tasks : the trained tasks, the primary first; it decides who is kept (the other tasks' missing
        outcomes are masked in their losses).
    omics_path : the omics matrix, or None when the model reads no omics.
    slide_files, wsi_dim : the fold patients' feature files (None when the model reads no WSI).

    Returns
    -------
    data, dropped : the inputs, and per partition the number of patients without the primary task's outcome.

    Raises
    ------
    InputDataError
        A split patient without labels or omics profile, fewer than 2 training patients with the outcome,
        or (survival) no event among them.
    """
    spec, patients = tasks[0], split.patients
    targets, usable = read_task_targets_(labels_path, patients, spec)
    if len(tasks) > 1:
        labels = {s.name: read_task_targets_(labels_path, patients, s)[0].label
                  for s in tasks if s.kind == "classification"}
        targets = Targets(time_days=targets.time_days, event=targets.event, label=targets.label, labels=labels)
    matrix = None
    if omics_path is not None:
        matrix = read_omics_(Path(omics_path))
        no_omics = [p for p in patients if p not in set(matrix.patients)]
        if no_omics:
            raise InputDataError(f"{len(no_omics)} patient(s) of split {split_path} have no profile in the omics "
                                 f"matrix {omics_path}: {short_ids(no_omics)}. Rerun `data_splits` after `omics_matrix`.")
    index = {p: i for i, p in enumerate(patients)}
    keep: dict[str, list[int]] = {}
    dropped: dict[str, int] = {}
    for name in SPLITS:
        idx = [index[p] for p in split.partition(name)]
        keep[name] = [i for i in idx if usable[i]]
        dropped[name] = len(idx) - len(keep[name])
    if sum(dropped.values()):
        what = "unknown time_days/event" if spec.kind == "survival" else f"{spec.label_column} = -1"
        logger.info("task %s: dropped %d of %d patients with %s (train %d, val %d, test %d)", spec.name,
                    sum(dropped.values()), len(patients), what, dropped["train"], dropped["val"], dropped["test"])
    if len(keep["train"]) < 2:
        raise InputDataError(f"task {spec.name}: fewer than 2 training patients with an outcome in fold "
                             f"{split.fold} ({split_path}).")
    if spec.kind == "survival" and not np.nansum(targets.event[keep["train"]]) > 0:
        raise InputDataError(f"task survival: no death event among the training patients of fold {split.fold}; "
                             "the survival model cannot be fit. Use fewer folds or stratify_by: event.")
    data = FoldData(patients=list(patients), targets=targets, partitions=keep,
                    omics=None if matrix is None else matrix.rows(patients),
                    genes=() if matrix is None else list(matrix.genes),
                    gene_names=() if matrix is None else list(matrix.gene_names),
                    slide_files=slide_files, wsi_dim=wsi_dim)
    return data, dropped
