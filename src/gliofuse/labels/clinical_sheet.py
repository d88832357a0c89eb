"""A cohort's own clinical table (``sheet.clinical``, column names mapped by ``sheet.columns``) → label rows.

Survival time in days or months (declared per table or per row), event, and either the diagnosis + grade
or the molecular markers from which the WHO-2021 class and grade are derived by
:func:`gliofuse.labels.who2021.classify`, the same derivation as for TCGA. Values are matched
case-insensitively against the vocabularies below; anything else fails naming the row and the column.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from gliofuse.cohorts.sheet import check_safe_id, read_sheet_frame_, row_ref
from gliofuse.config import ClinicalColumns, CohortSheetConfig
from gliofuse.errors import InputDataError
from gliofuse.labels.who2021 import ASTRO, GBM, OLIGO, classify
from gliofuse.tasks import DAYS_PER_MONTH, DIAGNOSIS_CLASSES

MISSING = frozenset({"", "na", "nan", "n/a", "none", "null", "unknown", "not available", "-"})
"""Cell values read as "not known" (the patient is left out of the tasks that need the field)."""

EVENT = {"1": 1, "dead": 1, "deceased": 1, "true": 1, "yes": 1, "1:deceased": 1,
         "0": 0, "alive": 0, "living": 0, "censored": 0, "false": 0, "no": 0, "0:living": 0}
TIME_UNIT_DAYS = {"days": 1.0, "day": 1.0, "d": 1.0, "months": DAYS_PER_MONTH, "month": DAYS_PER_MONTH,
                  "mo": DAYS_PER_MONTH}
IDH = {"mutant": "mutant", "mut": "mutant", "mutated": "mutant", "idhmut": "mutant", "idh-mutant": "mutant",
       "wildtype": "wildtype", "wild-type": "wildtype", "wt": "wildtype", "idhwt": "wildtype",
       "idh-wildtype": "wildtype"}
CODEL = {"codel": "codel", "codeleted": "codel", "co-deleted": "codel", "yes": "codel", "true": "codel",
         "non-codel": "non-codel", "noncodel": "non-codel", "non-codeleted": "non-codel", "not codeleted": "non-codel",
         "intact": "non-codel", "no": "non-codel", "false": "non-codel"}
CDKN2A_DELETED = {"deleted": True, "homdel": True, "homozygous deletion": True, "yes": True, "true": True,
                  "not deleted": False, "no deletion": False, "intact": False, "wildtype": False, "wt": False,
                  "no": False, "false": False}
TERT_MUTANT = {"mutant": True, "mut": True, "mutated": True, "yes": True, "true": True,
               "wildtype": False, "wild-type": False, "wt": False, "no": False, "false": False}
GAIN7_LOSS10 = {"yes": True, "true": True, "gain chr 7 & loss chr 10": True,
                "no": False, "false": False, "no combined cna": False}
GRADE = {"2": 2, "3": 3, "4": 4, "g2": 2, "g3": 3, "g4": 4, "ii": 2, "iii": 3, "iv": 4,
         "grade 2": 2, "grade 3": 3, "grade 4": 4}
DIAGNOSIS = {"astrocytoma": ASTRO, "oligodendroglioma": OLIGO, "glioblastoma": GBM, "gbm": GBM,
             "astrocytoma, idh-mutant": ASTRO, "glioblastoma, idh-wildtype": GBM,
             "oligodendroglioma, idh-mutant and 1p/19q-codeleted": OLIGO, **{c: c for c in DIAGNOSIS_CLASSES}}
SEX = {"female": "female", "f": "female", "male": "male", "m": "male"}
#: WHO CNS5 grades each diagnosis can have; (idh, codel) each diagnosis implies
DIAGNOSIS_GRADES = {ASTRO: (2, 3, 4), OLIGO: (2, 3), GBM: (4,)}
DIAGNOSIS_MARKERS = {ASTRO: ("mutant", "non-codel"), OLIGO: ("mutant", "codel"), GBM: ("wildtype", "non-codel")}


_FIELD_OF = {"time_days": "survival_time"}  # label column -> sheet.columns field it is read from


class _Row:
    """One row of the clinical table: mapped cells, parsed with errors naming the row and the column."""

    def __init__(self, rec: Mapping[str, str], i: int, path: Path, columns: ClinicalColumns, key: str = "sheet"):
        self.rec, self.i, self.path, self.columns, self.key = rec, i, path, columns, key

    def where(self, field: str) -> str:
        return (f"clinical table {row_ref(self.path, self.i, str(getattr(self.columns, field)))} "
                f"({self.key}.columns.{field})")

    def raw(self, field: str) -> str | None:
        col = getattr(self.columns, field)
        value = None if col is None else self.rec[col]
        return None if value is None or value.lower() in MISSING else value

    def pick(self, field: str, vocab: Mapping[str, Any]) -> Any:
        value = self.raw(field)
        if value is None:
            return None
        key = value.lower()
        if key not in vocab:
            raise InputDataError(f"{self.where(field)}: unknown value {value!r}; expected one of "
                                 f"{sorted(set(vocab))} or empty / NA for unknown.")
        return vocab[key]

    def number(self, field: str) -> float | None:
        value = self.raw(field)
        if value is None:
            return None
        try:
            x = float(value)
        except ValueError:
            x = math.nan
        if not math.isfinite(x) or x < 0:
            raise InputDataError(f"{self.where(field)}: {value!r} is not a non-negative number.")
        return x


def _time_days(row: _Row, time_unit: str) -> float | None:
    time = row.number("survival_time")
    if time is None:
        return None
    per_day = TIME_UNIT_DAYS[time_unit] if row.columns.time_unit is None else row.pick("time_unit", TIME_UNIT_DAYS)
    if per_day is None:
        raise InputDataError(f"{row.where('time_unit')}: empty, but survival time {time:g} needs a unit "
                             "(days or months).")
    return time * per_day


def _who_from_diagnosis(row: _Row) -> dict[str, Any]:
    cls, grade = row.pick("diagnosis", DIAGNOSIS), row.pick("grade", GRADE)
    if cls is not None and grade is not None and grade not in DIAGNOSIS_GRADES[cls]:
        raise InputDataError(f"{row.where('grade')}: grade {grade} is not a WHO-2021 grade of {cls} "
                             f"({DIAGNOSIS_GRADES[cls]}).")
    idh, codel = DIAGNOSIS_MARKERS.get(cls, (None, None))
    return {"idh": idh, "codel": codel, "histologic_grade": None, "who2021_class": cls, "who2021_grade": grade}


def _who_from_markers(row: _Row, strict: bool) -> dict[str, Any]:
    idh, codel, hist = row.pick("idh", IDH), row.pick("codel", CODEL), row.pick("histologic_grade", GRADE)
    cls, grade = classify(idh=idh, codel=codel, histologic_grade=hist, cdkn2a_deleted=row.pick("cdkn2a", CDKN2A_DELETED),
                          tert_mutant=row.pick("tert", TERT_MUTANT), gain7_loss10=row.pick("gain7_loss10", GAIN7_LOSS10),
                          strict=strict)
    return {"idh": idh, "codel": codel, "histologic_grade": hist, "who2021_class": cls, "who2021_grade": grade}


def _parse_row(row: _Row, *, sheet: CohortSheetConfig, strict: bool) -> dict[str, Any]:
    patient = row.raw("patient_id")
    if patient is None:
        raise InputDataError(f"{row.where('patient_id')}: empty; every row needs a patient id.")
    check_safe_id(patient, where=row.where("patient_id"))
    who = _who_from_diagnosis(row) if sheet.columns.diagnosis else _who_from_markers(row, strict)
    return {"patient_id": patient, "project": sheet.name, "time_days": _time_days(row, sheet.time_unit),
            "event": row.pick("event", EVENT), "age_years": row.number("age_years"), "sex": row.pick("sex", SEX),
            **who}


def _check_columns(df: pd.DataFrame, path: Path, columns: ClinicalColumns, key: str) -> None:
    for field, col in columns.model_dump().items():
        if col is not None and col not in df.columns:
            raise InputDataError(f"clinical table {path}, row 0 (header line 1), column {col!r} "
                                 f"({key}.columns.{field}): missing; the table has {list(df.columns)}. Fix "
                                 f"{key}.columns.{field} or set it to null if the table has no such column.")


def read_clinical_table_(path: str | os.PathLike[str], *, sheet: CohortSheetConfig, strict: bool,
                         key: str = "sheet") -> pd.DataFrame:
    """Read, check and parse a clinical table into one row per patient (before the task columns).

    ``key``: the config key of ``sheet`` named in errors (``sheet``, or ``external.<cohort>``).

    Several rows of one patient (e.g. one per slide) must agree on every field; otherwise ``InputDataError``
    names both rows and the column. Returns patient_id, project, time_days, event, age_years, sex, idh, codel,
    histologic_grade, who2021_class, who2021_grade (None = unknown), sorted by patient_id.
    """
    p = Path(path)
    df = read_sheet_frame_(p, what="clinical table")
    _check_columns(df, p, sheet.columns, key)
    if df.empty:
        raise InputDataError(f"clinical table {p} has no rows; give one row per patient.")
    first: dict[str, tuple[int, dict[str, Any]]] = {}
    for i, rec in enumerate(df.to_dict("records")):
        row = _Row(rec, i, p, sheet.columns, key)
        parsed = _parse_row(row, sheet=sheet, strict=strict)
        pid = parsed["patient_id"]
        if pid not in first:
            first[pid] = (i, parsed)
            continue
        j, seen = first[pid]
        for field, value in parsed.items():
            if value != seen[field]:
                col = getattr(sheet.columns, _FIELD_OF.get(field, field), None) or f"{field} (derived from the markers)"
                raise InputDataError(
                    f"clinical table {row_ref(p, i, col)}: patient {pid} has {field} {value!r} here but {seen[field]!r}"
                    f" in row {j + 1}. Rows of one patient must agree; fix or drop one of them.")
    out = pd.DataFrame([v for _, v in first.values()])
    out[["time_days", "age_years"]] = out[["time_days", "age_years"]].astype(float)
    return out.sort_values("patient_id").reset_index(drop=True)
