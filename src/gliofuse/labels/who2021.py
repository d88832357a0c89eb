"""WHO CNS5 (2021) adult-type diffuse glioma classes and grades from IDH, 1p/19q and histology.

Louis et al., Neuro-Oncology 2021. IDH-mutant + 1p/19q-codeleted → oligodendroglioma (grade 2–3);
IDH-mutant non-codeleted → astrocytoma (grade 2–4; 4 with CDKN2A/B homozygous deletion or histologic G4);
IDH-wildtype → glioblastoma (grade 4). Strict mode additionally requires, for histologically lower-grade
IDH-wildtype tumours, TERT promoter mutation or +7/−10; otherwise the tumour is ``nec`` (not elsewhere classified).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from gliofuse.tasks import DAYS_PER_MONTH, DIAGNOSIS_CLASSES

ASTRO, OLIGO, GBM = DIAGNOSIS_CLASSES


def _idh(status: str | None, subtype: str | None) -> str | None:
    if subtype in ("IDHwt",):
        return "wildtype"
    if subtype in ("IDHmut-codel", "IDHmut-non-codel"):
        return "mutant"
    return {"WT": "wildtype", "Mutant": "mutant"}.get(status or "")


def _codel(codel_col: str | None, subtype: str | None) -> str | None:
    if subtype == "IDHmut-codel":
        return "codel"
    if subtype in ("IDHmut-non-codel", "IDHwt"):
        return "non-codel"
    return {"Codel": "codel", "Non-codel": "non-codel"}.get(codel_col or "")


def classify(*, idh: str | None, codel: str | None, histologic_grade: int | None, cdkn2a_deleted: bool | None,
             tert_mutant: bool | None, gain7_loss10: bool | None, strict: bool) -> tuple[str | None, int | None]:
    """(who2021_class, who2021_grade) of one tumour; ``(None, None)`` when IDH is unknown."""
    if idh == "wildtype":
        if strict and histologic_grade in (2, 3) and not (tert_mutant or gain7_loss10):
            return "nec", None
        return GBM, 4
    if idh == "mutant":
        if codel is None:
            return None, None
        if codel == "codel":
            grade = None if histologic_grade is None else min(histologic_grade, 3)
            return OLIGO, grade
        if cdkn2a_deleted:
            return ASTRO, 4
        return ASTRO, histologic_grade
    return None, None


def who2021_from_molecular(df: pd.DataFrame, *, strict: bool) -> pd.DataFrame:
    """Map a cBioPortal ``lgggbm_tcga_pub``-schema table to WHO-2021 labels.

    Returns one row per ``Patient ID``: patient_id, idh, codel, histologic_grade, who2021_class, who2021_grade,
    os_days, os_event (OS from the table, months × 30.4375; event 1 = ``1:DECEASED``).
    """
    def col(name: str) -> pd.Series:
        return df[name] if name in df.columns else pd.Series([None] * len(df), index=df.index)

    def clean(v: object) -> str | None:
        return None if v is None or (isinstance(v, float) and np.isnan(v)) or v in ("NA", "") else str(v)

    rows = []
    for pid, status, codel_col, subtype, grade_s, tert, cna, cdkn2a, os_m, os_s in zip(
        df["Patient ID"], col("IDH status"), col("IDH-1P10Q Subtype"), col("IDH/codel subtype"),
        col("Neoplasm Histologic Grade"), col("TERT promoter status"), col("Chr 7 gain/Chr 10 loss"),
        col("CDKN2A status"), col("Overall Survival (Months)"), col("Overall Survival Status"), strict=True,
    ):
        status, codel_col, subtype = clean(status), clean(codel_col), clean(subtype)
        grade_s, tert, cna, cdkn2a = clean(grade_s), clean(tert), clean(cna), clean(cdkn2a)
        idh, codel = _idh(status, subtype), _codel(codel_col, subtype)
        hist = {"G2": 2, "G3": 3, "G4": 4}.get(grade_s or "")
        cls, who_grade = classify(
            idh=idh, codel=codel, histologic_grade=hist,
            cdkn2a_deleted=None if cdkn2a is None else cdkn2a == "Deleted",
            tert_mutant=None if tert is None else tert == "Mutant",
            gain7_loss10=None if cna is None else cna.startswith("Gain chr 7"),
            strict=strict,
        )
        os_m = clean(os_m)
        os_s = clean(os_s)
        rows.append({
            "patient_id": pid, "idh": idh, "codel": codel, "histologic_grade": hist,
            "who2021_class": cls, "who2021_grade": who_grade,
            "os_days": None if os_m is None else float(os_m) * DAYS_PER_MONTH,
            "os_event": None if os_s is None else int(os_s.startswith("1")),
        })
    return pd.DataFrame(rows).drop_duplicates("patient_id")
