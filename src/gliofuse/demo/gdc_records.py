"""GDC API records (``/files`` and ``/cases`` response hits) for the demo cohort.

Field names and value vocabularies follow the GDC data model. The censoring time of a living patient is
spread over ``diagnoses[].days_to_last_follow_up`` and ``follow_ups[].days_to_follow_up`` the way real TCGA
records are (often null in ``diagnoses``); it is always recoverable as the maximum of the two.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from gliofuse.demo.latent import MORPHOLOGY
from gliofuse.demo.plan import PRIMARY_TUMOR, PatientPlan, RnaFilePlan, random_uuid4


def envelope(hits: list[dict[str, Any]]) -> dict[str, Any]:
    """Wrap ``hits`` in the GDC API response envelope (one page holding every hit)."""
    n = len(hits)
    return {
        "data": {
            "hits": hits,
            "pagination": {"count": n, "total": n, "size": max(n, 10), "from": 0, "sort": "",
                           "page": 1, "pages": 1},
        },
        "warnings": {},
    }


def _case_ref(p: PatientPlan, samples: list[dict[str, str]]) -> dict[str, Any]:
    return {"case_id": p.case_id, "submitter_id": p.patient_id, "project": {"project_id": p.project},
            "samples": samples}


def rna_file_hit(p: PatientPlan, f: RnaFilePlan, *, md5sum: str, file_size: int) -> dict[str, Any]:
    """``/files`` hit of one STAR - Counts file."""
    return {
        "id": f.file_id, "file_id": f.file_id, "file_name": f.file_name, "md5sum": md5sum,
        "file_size": int(file_size), "data_format": "TSV", "data_type": "Gene Expression Quantification",
        "data_category": "Transcriptome Profiling", "experimental_strategy": "RNA-Seq", "access": "open",
        "state": "released", "analysis": {"workflow_type": "STAR - Counts"},
        "cases": [_case_ref(p, [{"sample_type": f.sample_type, "submitter_id": f.sample_submitter_id}])],
    }


def slide_file_hit(p: PatientPlan, k: int, *, md5sum: str, file_size: int) -> dict[str, Any]:
    """``/files`` hit of diagnostic slide ``k`` of patient ``p``."""
    return {
        "id": p.slide_file_ids[k], "file_id": p.slide_file_ids[k], "file_name": f"{p.slide_ids[k]}.svs",
        "md5sum": md5sum, "file_size": int(file_size), "data_format": "SVS", "data_type": "Slide Image",
        "data_category": "Biospecimen", "experimental_strategy": "Diagnostic Slide", "access": "open",
        "state": "released",
        "cases": [_case_ref(p, [{"sample_type": PRIMARY_TUMOR, "submitter_id": f"{p.patient_id}-01Z"}])],
    }


def case_hit(p: PatientPlan, rng: np.random.Generator) -> dict[str, Any]:
    """``/cases`` hit of patient ``p``; ``rng`` (the patient's own) only shapes how follow-up is recorded."""
    t = int(p.time_days)
    dead = bool(p.event)
    age_days = int(p.age_years * 365.25)

    def earlier() -> int:
        return max(1, int(t * rng.uniform(0.2, 0.9)))

    if dead:
        dtlf: int | None = None if rng.random() < 0.5 else earlier()
        fu_days: list[int | None] = [earlier() for _ in range(int(rng.integers(0, 3)))]
    else:
        pattern = int(rng.integers(0, 3))
        if pattern == 0:  # last contact recorded on the diagnosis
            dtlf = t
            fu_days = [earlier() for _ in range(int(rng.integers(0, 2)))]
        elif pattern == 1:  # diagnosis field empty (frequent in TCGA), follow-ups carry it
            dtlf = None
            fu_days = [earlier(), t]
        else:  # stale value on the diagnosis, newer follow-up, plus an empty follow-up record
            dtlf = earlier()
            fu_days = [t, None]
        order = rng.permutation(len(fu_days))
        fu_days = [fu_days[i] for i in order]
    follow_ups = [
        {"follow_up_id": random_uuid4(rng), "submitter_id": f"{p.patient_id}_follow_up{j + 1}",
         "days_to_follow_up": d}
        for j, d in enumerate(fu_days)
    ]
    return {
        "id": p.case_id, "case_id": p.case_id, "submitter_id": p.patient_id,
        "project": {"project_id": p.project}, "disease_type": "Gliomas", "primary_site": "Brain",
        "demographic": {
            "demographic_id": random_uuid4(rng), "submitter_id": f"{p.patient_id}_demographic",
            "sex_at_birth": p.sex, "vital_status": "Dead" if dead else "Alive",
            "days_to_death": t if dead else None, "age_at_index": int(age_days / 365.25),
            "days_to_birth": -age_days, "race": "not reported", "ethnicity": "not reported",
        },
        "diagnoses": [{
            "diagnosis_id": random_uuid4(rng), "submitter_id": f"{p.patient_id}_diagnosis",
            "age_at_diagnosis": age_days, "days_to_last_follow_up": dtlf,
            "primary_diagnosis": p.primary_diagnosis, "tumor_grade": "Not Reported",
            "morphology": MORPHOLOGY[p.primary_diagnosis], "classification_of_tumor": "primary",
            "tissue_or_organ_of_origin": "Brain, NOS", "site_of_resection_or_biopsy": "Brain, NOS",
        }],
        "follow_ups": follow_ups,
    }
