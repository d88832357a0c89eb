"""Class names of the classification tasks (index = position). Shared by labels, training and reports."""

from __future__ import annotations

DIAGNOSIS_CLASSES: tuple[str, ...] = (
    "astrocytoma_idhmut",
    "oligodendroglioma_idhmut_codel",
    "glioblastoma_idhwt",
)
GRADE_CLASSES: tuple[str, ...] = ("G2", "G3", "G4")
TASK_CLASSES: dict[str, tuple[str, ...]] = {"diagnosis": DIAGNOSIS_CLASSES, "grade": GRADE_CLASSES}
DAYS_PER_MONTH = 30.4375
