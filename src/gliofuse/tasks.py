"""The prediction tasks: names, class lists in index order, label columns, prediction columns, survival unit.

The one owner of the task vocabulary (docs/data-contracts.md §3, §8). Torch-free, so labels, evaluation and
report code may import it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from gliofuse.errors import ConfigError

TASK_NAMES: tuple[str, ...] = ("survival", "grade", "diagnosis")
"""Every task gliofuse trains and evaluates, in report order."""

SURVIVAL_TIME_UNIT = "days"
"""Survival times are stored in days (label-table column ``time_days``)."""

DAYS_PER_MONTH: float = 365.25 / 12.0
"""Days in an average month (30.4375): converts survival months (cBioPortal, published tables) to days."""

GRADE_CLASSES: tuple[str, ...] = ("G2", "G3", "G4")
"""``grade`` class indices 0/1/2 = WHO CNS grade 2/3/4."""

DIAGNOSIS_CLASSES: tuple[str, ...] = ("astrocytoma_idhmut", "oligodendroglioma_idhmut_codel", "glioblastoma_idhwt")
"""``diagnosis`` class indices 0/1/2 (WHO CNS5 2021 adult-type diffuse gliomas)."""

DIAGNOSIS4_CLASSES: tuple[str, ...] = (
    "astrocytoma_idhmut_g23", "astrocytoma_idhmut_g4", "oligodendroglioma_idhmut_codel", "glioblastoma_idhwt",
)
"""``diagnosis`` with ``training.diagnosis_classes: 4``: the IDH-mutant astrocytoma split by WHO grade
(grade 4 = CDKN2A/B homozygous deletion or histologic grade 4; label-table column ``who2021_grade``), as
the 4-class WHO-2021 label of the subspace-fusion original (Zhang et al., MICCAI 2024)."""

PREDICTION_ID_COLUMNS: tuple[str, ...] = ("patient_id", "model", "task", "fold", "split")
SURVIVAL_COLUMNS: tuple[str, ...] = ("time_days", "event", "risk")
SPLITS: tuple[str, ...] = ("train", "val", "test")


@dataclass(frozen=True)
class TaskSpec:
    """A prediction task.

    Attributes
    ----------
    name : ``"survival"``, ``"grade"`` or ``"diagnosis"``.
    kind : ``"survival"`` (Cox head, ``risk``) or ``"classification"`` (softmax head, ``prob_<class>``).
    label_column : label-table column with the class index (classification), None for survival.
    class_names : class names in index order (classification).
    """

    name: str
    kind: Literal["survival", "classification"]
    label_column: str | None = None
    class_names: tuple[str, ...] = ()

    @property
    def n_classes(self) -> int:
        return len(self.class_names)

    @property
    def prob_columns(self) -> list[str]:
        """``prob_<class>`` column names in class-index order."""
        return [f"prob_{c}" for c in self.class_names]

    @property
    def prediction_columns(self) -> list[str]:
        """All columns of ``predictions.tsv`` for this task, in order."""
        if self.kind == "survival":
            return [*PREDICTION_ID_COLUMNS, *SURVIVAL_COLUMNS]
        return [*PREDICTION_ID_COLUMNS, "y_true", "y_pred", *self.prob_columns]


TASK_SPECS: dict[str, TaskSpec] = {
    "survival": TaskSpec("survival", "survival"),
    "grade": TaskSpec("grade", "classification", "grade", GRADE_CLASSES),
    "diagnosis": TaskSpec("diagnosis", "classification", "diagnosis", DIAGNOSIS_CLASSES),
}


DIAGNOSIS4 = TaskSpec("diagnosis", "classification", "diagnosis", DIAGNOSIS4_CLASSES)

HISTOLOGIC_GRADE = TaskSpec("grade", "classification", "histologic_grade", GRADE_CLASSES)
"""``grade`` read from the label table's ``histologic_grade`` (2/3/4) instead of the WHO-2021 integrated grade
(``training.grade_label: histologic``, the subspace-fusion original's grade)."""


def get_task(name: str, *, diagnosis_classes: int = 3, grade_label: str = "who2021") -> TaskSpec:
    """The :class:`TaskSpec` of a task name; unknown names raise ``ConfigError``.

    ``diagnosis_classes=4`` gives the 4-class diagnosis (:data:`DIAGNOSIS4_CLASSES`); ``grade_label="histologic"``
    the histologic grade (:data:`HISTOLOGIC_GRADE`).
    """
    try:
        spec = TASK_SPECS[str(name)]
    except KeyError:
        raise ConfigError(f"unknown task {name!r}; training.tasks accepts {sorted(TASK_SPECS)}.") from None
    if spec.name == "diagnosis" and diagnosis_classes == 4:
        return DIAGNOSIS4
    if grade_label not in ("who2021", "histologic"):
        raise ConfigError(f"training.grade_label = {grade_label!r}: expected 'who2021' or 'histologic'.")
    if spec.name == "grade" and grade_label == "histologic":
        return HISTOLOGIC_GRADE
    if diagnosis_classes not in (3, 4):
        raise ConfigError(f"training.diagnosis_classes = {diagnosis_classes!r}: expected 3 or 4.")
    return spec


def diagnosis4_labels(diagnosis: Sequence[float], who2021_grade: Sequence[float]) -> list[int]:
    """4-class diagnosis indices from the 3-class ``diagnosis`` and ``who2021_grade`` columns.

    astrocytoma (0) -> 0 (grade 2/3) or 1 (grade 4; unknown grade -> -1); oligodendroglioma (1) -> 2;
    glioblastoma (2) -> 3; missing (-1 / NaN) -> -1.
    """
    out = []
    for d, g in zip(diagnosis, who2021_grade, strict=True):
        d = -1 if d is None or math.isnan(d) else int(d)
        if d == 0:
            out.append(-1 if g is None or math.isnan(g) else (1 if int(g) == 4 else 0))
        elif d in (1, 2):
            out.append(d + 1)
        else:
            out.append(-1)
    return out


def class_indices(spec: TaskSpec, raw: Sequence[float],
                  who2021_grade: Sequence[float] | None = None) -> tuple[list[int], list[int]]:
    """Class indices of ``spec`` from the label-table column ``spec.label_column``, and the bad positions.

    ``raw``: that column's values (NaN or -1 = missing → -1); ``histologic_grade`` holds WHO grades 2/3/4
    (→ 0/1/2); the 4-class diagnosis also needs ``who2021_grade`` (:func:`diagnosis4_labels`). Positions whose
    value is not a class index of the source column are returned as ``bad`` (callers raise naming them).
    """
    vals = [float("nan") if v is None else float(v) for v in raw]
    if spec.label_column == "histologic_grade":  # WHO grade 2/3/4 -> class index 0/1/2
        vals = [v - 2.0 if v in (2.0, 3.0, 4.0) else float("nan") for v in vals]
    vals = [-1.0 if math.isnan(v) else v for v in vals]
    four_class = spec.name == "diagnosis" and spec.n_classes == 4
    n_source = 3 if four_class else spec.n_classes
    bad = [i for i, v in enumerate(vals) if v != -1 and v not in range(n_source)]
    if bad:
        return [-1] * len(vals), bad
    if four_class:
        grade = [float("nan")] * len(vals) if who2021_grade is None else [float(g) for g in who2021_grade]
        return diagnosis4_labels(vals, grade), []
    return [int(v) for v in vals], []


def task_kind(name: str) -> Literal["survival", "classification"]:
    """``"survival"`` or ``"classification"``; unknown names raise ``ConfigError``."""
    return get_task(name).kind
