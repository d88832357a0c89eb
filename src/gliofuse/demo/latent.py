"""Latent factors -> molecular labels, histology and survival of one synthetic patient.

Numpy + stdlib only (imported at Snakefile parse time through ``plan``).

Generative model (per patient, all draws from the patient's own generator):

* ``z_tumour, z_micro ~ N(0, 1)`` independent.
* IDH wild-type with probability ``sigmoid(2 z_tumour)``; among IDH-mutant tumours 1p/19q codeletion with
  probability ``sigmoid(-1.5 z_micro - 0.4)``.
* IDH-wt: glioblastoma (TCGA-GBM, histologic G4); 15 % are filed in TCGA-LGG as grade 2/3 astrocytomas with
  TERT promoter mutation and +7/-10 (WHO 2021: glioblastoma, IDH-wt, grade 4).
  IDH-mut codeleted: oligodendroglioma G2/G3 (TCGA-LGG). IDH-mut non-codeleted: astrocytoma G2/G3/G4 by
  ``z_tumour + 0.5 noise`` (G4 filed as glioblastoma in TCGA-GBM); CDKN2A homozygous deletion more likely
  with high ``z_tumour`` (WHO 2021 grade 4).
* Log hazard ``eta = 1.0 z_tumour + 0.5 z_micro + 1.0 IDHwt - 0.5 codel``; event time Weibull
  ``S(t) = exp(-(t / 1936 d) ** 1.3 * exp(eta))`` (median ~14 months for a typical glioblastoma, ~6 years for
  a typical lower-grade glioma); independent exponential censoring tuned to a target censored fraction.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

BETA_TUMOUR = 1.0
BETA_MICRO = 0.5
BETA_IDH_WT = 1.0
BETA_CODEL = -0.5
WEIBULL_SHAPE = 1.3
WEIBULL_SCALE_DAYS = 1936.0

DIAGNOSIS_ASTRO, DIAGNOSIS_OLIGO, DIAGNOSIS_GBM = 0, 1, 2

# GDC primary_diagnosis -> ICD-O-3 morphology
MORPHOLOGY: dict[str, str] = {
    "Glioblastoma": "9440/3",
    "Astrocytoma, NOS": "9400/3",
    "Astrocytoma, anaplastic": "9401/3",
    "Oligodendroglioma, NOS": "9450/3",
    "Oligodendroglioma, anaplastic": "9451/3",
}


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


@dataclass(frozen=True)
class Biology:
    """Latent factors and the labels they imply for one patient (see module docstring)."""

    z_tumour: float
    z_micro: float
    idh_mutant: bool
    codel: bool
    cdkn2a_deleted: bool
    tert_mutant: bool
    chr7_gain_chr10_loss: bool
    project: str               # TCGA-GBM / TCGA-LGG
    histologic_grade: int      # 2/3/4 (cBioPortal G2/G3/G4)
    histologic_type: str       # cBioPortal "Neoplasm Histologic Type Name"
    primary_diagnosis: str     # GDC diagnoses[].primary_diagnosis
    true_diagnosis: int        # 0 astro IDHmut, 1 oligo IDHmut-codel, 2 GBM IDHwt
    true_grade: int            # WHO CNS5 grade 2/3/4
    log_hazard: float
    age_years: float
    sex: str                   # female / male


def log_hazard(z_tumour: float, z_micro: float, idh_wt: bool, codel: bool) -> float:
    """True log hazard (risk) of the proportional-hazards survival model."""
    return (BETA_TUMOUR * z_tumour + BETA_MICRO * z_micro + BETA_IDH_WT * float(idh_wt)
            + BETA_CODEL * float(codel))


def sample_biology(rng: np.random.Generator) -> Biology:
    """Draw latent factors, molecular status, histology, age and sex of one patient."""
    z_t = float(rng.standard_normal())
    z_m = float(rng.standard_normal())
    u = rng.random(8)
    severity = z_t + 0.5 * float(rng.standard_normal())
    idh_wt = bool(u[0] < _sigmoid(2.0 * z_t))
    codel = (not idh_wt) and bool(u[1] < _sigmoid(-1.5 * z_m - 0.4))
    tert = False
    chr7_10 = False
    cdkn2a = False
    if idh_wt:
        diagnosis, true_grade = DIAGNOSIS_GBM, 4
        cdkn2a = bool(u[2] < 0.55)
        if u[3] < 0.15:  # histologically lower grade, molecularly glioblastoma
            project, grade = "TCGA-LGG", (3 if severity > -0.5 else 2)
            htype = "astrocytoma"
            pdx = "Astrocytoma, anaplastic" if grade == 3 else "Astrocytoma, NOS"
            tert, chr7_10 = True, True
        else:
            project, grade, htype, pdx = "TCGA-GBM", 4, "glioblastoma", "Glioblastoma"
            tert = bool(u[4] < 0.8)
            chr7_10 = bool(u[5] < 0.7)
    elif codel:
        diagnosis = DIAGNOSIS_OLIGO
        grade = 3 if severity > 0.0 else 2
        true_grade = grade
        project, htype = "TCGA-LGG", "oligodendroglioma"
        pdx = "Oligodendroglioma, anaplastic" if grade == 3 else "Oligodendroglioma, NOS"
        tert = bool(u[4] < 0.95)
    else:
        diagnosis = DIAGNOSIS_ASTRO
        grade = 2 if severity < -0.6 else (3 if severity < 0.9 else 4)
        if grade == 4:
            project, htype, pdx = "TCGA-GBM", "glioblastoma", "Glioblastoma"
        else:
            project, htype = "TCGA-LGG", "astrocytoma"
            pdx = "Astrocytoma, anaplastic" if grade == 3 else "Astrocytoma, NOS"
        cdkn2a = bool(u[2] < (_sigmoid(3.0 * (z_t - 0.6)) if grade >= 3 else 0.02))
        true_grade = 4 if (grade == 4 or cdkn2a) else grade
        tert = bool(u[4] < 0.05)
    if project == "TCGA-GBM":
        age = float(np.clip(rng.normal(59.0, 11.0), 21.0, 89.0))
    else:
        age = float(np.clip(rng.normal(42.0, 12.0), 18.0, 85.0))
    sex = "male" if u[6] < 0.58 else "female"
    return Biology(
        z_tumour=z_t, z_micro=z_m, idh_mutant=not idh_wt, codel=codel, cdkn2a_deleted=cdkn2a,
        tert_mutant=tert, chr7_gain_chr10_loss=chr7_10, project=project, histologic_grade=grade,
        histologic_type=htype, primary_diagnosis=pdx, true_diagnosis=diagnosis, true_grade=true_grade,
        log_hazard=log_hazard(z_t, z_m, idh_wt, codel), age_years=age, sex=sex,
    )


def sample_event_time_days(rng: np.random.Generator, log_hazard_: float | np.ndarray,
                           size: int | None = None) -> float | np.ndarray:
    """Weibull proportional-hazards event time(s) in days for log hazard ``log_hazard_``."""
    e = rng.exponential(1.0, size=size)
    return WEIBULL_SCALE_DAYS * (e * np.exp(-np.asarray(log_hazard_))) ** (1.0 / WEIBULL_SHAPE)


@lru_cache(maxsize=32)
def censoring_rate_per_day(target_fraction: float) -> float:
    """Rate of the exponential censoring time that censors ``target_fraction`` of patients on average.

    Solved by bisection on a fixed reference sample of 20,000 patients from the generative model, so it
    depends only on ``target_fraction`` (not on the cohort seed or size). 0 means no censoring.
    """
    if target_fraction <= 0:
        return 0.0
    rng = np.random.default_rng(20240601)
    n = 20000
    z_t = rng.standard_normal(n)
    z_m = rng.standard_normal(n)
    idh_wt = rng.random(n) < 1.0 / (1.0 + np.exp(-2.0 * z_t))
    codel = ~idh_wt & (rng.random(n) < 1.0 / (1.0 + np.exp(1.5 * z_m + 0.4)))
    eta = BETA_TUMOUR * z_t + BETA_MICRO * z_m + BETA_IDH_WT * idh_wt + BETA_CODEL * codel
    t = np.asarray(sample_event_time_days(rng, eta, size=n))
    lo, hi = 1e-9, 1.0
    for _ in range(80):
        mid = math.sqrt(lo * hi)
        frac = float(np.mean(1.0 - np.exp(-mid * t)))
        if frac < target_fraction:
            lo = mid
        else:
            hi = mid
    return math.sqrt(lo * hi)


def sample_survival(rng: np.random.Generator, log_hazard_: float, censoring_fraction: float) -> tuple[int, int]:
    """Observed ``(time_days, event)`` (integer days >= 1; event 1 = death) for one patient."""
    t_event = float(sample_event_time_days(rng, log_hazard_))
    rate = censoring_rate_per_day(round(float(censoring_fraction), 6))
    t_cens = float(rng.exponential(1.0 / rate)) if rate > 0 else math.inf
    if t_event <= t_cens:
        return max(1, round(t_event)), 1
    return max(1, round(t_cens)), 0
