"""Tab-separated tables of the demo cohort: cBioPortal-style molecular labels and the ground truth.

``labels/molecular.tsv`` uses the column names and value codings of the cBioPortal ``lgggbm_tcga_pub``
clinical-data export (Ceccarelli et al., Cell 2016); missing values are ``NA``.
``truth/ground_truth.tsv`` holds the latent factors and the true labels (demo only; for tests).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from gliofuse.demo.plan import CohortPlan, PatientPlan, rng_for
from gliofuse.tasks import DAYS_PER_MONTH

MOLECULAR_COLUMNS: tuple[str, ...] = (
    "Study ID", "Patient ID", "Sample ID", "Neoplasm Histologic Grade", "Neoplasm Histologic Type Name",
    "IDH status", "IDH-1P10Q Subtype", "IDH/codel subtype", "TERT promoter status",
    "Chr 7 gain/Chr 10 loss", "Overall Survival (Months)", "Overall Survival Status", "CDKN2A status",
)
GROUND_TRUTH_COLUMNS: tuple[str, ...] = (
    "patient_id", "z_tumour", "z_micro", "true_risk", "true_diagnosis", "true_grade", "time_days", "event",
)
NA = "NA"


class TruthRecord(Protocol):
    """What a ground-truth row needs of a patient (``PatientPlan`` and ``SitePatient`` have it)."""

    patient_id: str
    z_tumour: float
    z_micro: float
    true_diagnosis: int
    true_grade: int
    time_days: int
    event: int

    @property
    def true_risk(self) -> float: ...


def molecular_row(p: PatientPlan, seed: int) -> dict[str, str]:
    """One row of ``labels/molecular.tsv`` for patient ``p`` (TERT status is unreported for about half)."""
    rng = rng_for(seed, "patient", p.index, "molecular")
    tert_reported = bool(rng.random() < 0.5) or (not p.idh_mutant and p.project == "TCGA-LGG")
    row = {
        "Study ID": "lgggbm_tcga_pub",
        "Patient ID": p.patient_id,
        "Sample ID": f"{p.patient_id}-01",
        "Neoplasm Histologic Grade": f"G{p.histologic_grade}",
        "Neoplasm Histologic Type Name": p.histologic_type,
        "IDH status": "Mutant" if p.idh_mutant else "WT",
        "IDH-1P10Q Subtype": "Codel" if p.codel else "Non-codel",
        "IDH/codel subtype": ("IDHwt" if not p.idh_mutant else
                              "IDHmut-codel" if p.codel else "IDHmut-non-codel"),
        "TERT promoter status": ("Mutant" if p.tert_mutant else "WT") if tert_reported else NA,
        "Chr 7 gain/Chr 10 loss": "Gain chr 7 & loss chr 10" if p.chr7_gain_chr10_loss else "No combined CNA",
        "Overall Survival (Months)": f"{p.time_days / DAYS_PER_MONTH:.2f}",
        "Overall Survival Status": "1:DECEASED" if p.event else "0:LIVING",
        "CDKN2A status": "Deleted" if p.cdkn2a_deleted else "WT",
    }
    if p.molecular_missing:
        for col in ("IDH status", "IDH-1P10Q Subtype", "IDH/codel subtype", "TERT promoter status",
                    "Chr 7 gain/Chr 10 loss", "CDKN2A status"):
            row[col] = NA
    return row


def molecular_table_text(plan: CohortPlan) -> str:
    """``labels/molecular.tsv`` content, one row per patient sorted by patient id."""
    lines = ["\t".join(MOLECULAR_COLUMNS)]
    for p in sorted(plan.patients, key=lambda q: q.patient_id):
        row = molecular_row(p, plan.seed)
        lines.append("\t".join(row[c] for c in MOLECULAR_COLUMNS))
    return "\n".join(lines) + "\n"


def ground_truth_text(patients: Iterable[TruthRecord]) -> str:
    """``truth/ground_truth.tsv`` content: latent factors, true risk, true labels and observed survival, one row
    per patient sorted by patient id (the development demo's ``plan.patients`` or an external site's)."""
    lines = ["\t".join(GROUND_TRUTH_COLUMNS)]
    for p in sorted(patients, key=lambda q: q.patient_id):
        lines.append(f"{p.patient_id}\t{p.z_tumour:.6f}\t{p.z_micro:.6f}\t{p.true_risk:.6f}\t"
                     f"{p.true_diagnosis}\t{p.true_grade}\t{p.time_days}\t{p.event}")
    return "\n".join(lines) + "\n"
