"""Task definitions: label column, class names and prediction columns (docs/data-contracts.md §3, §8).

Torch-free, so evaluation and report code may import it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from gliofuse.errors import ConfigError

GRADE_CLASSES: tuple[str, ...] = ("G2", "G3", "G4")
"""``grade`` class indices 0/1/2 = WHO CNS grade 2/3/4."""

DIAGNOSIS_CLASSES: tuple[str, ...] = ("astrocytoma_idhmut", "oligodendroglioma_idhmut_codel", "glioblastoma_idhwt")
"""``diagnosis`` class indices 0/1/2 (WHO CNS5 2021 adult-type diffuse gliomas)."""

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


def get_task(name: str) -> TaskSpec:
    """The :class:`TaskSpec` of a task name; unknown names raise ``ConfigError``."""
    try:
        return TASK_SPECS[str(name)]
    except KeyError:
        raise ConfigError(f"unknown task {name!r}; training.tasks accepts {sorted(TASK_SPECS)}.") from None
