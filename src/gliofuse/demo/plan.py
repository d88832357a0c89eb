"""Cheap, deterministic plan of the demo cohort: ids, latent factors, labels, survival, which files exist.

Numpy + stdlib only and no pixel work: the Snakefile calls :func:`plan_cohort` at parse time to learn the
slide ids. Same ``(seed, cfg)`` -> same plan, ids and all. Every patient draws from its own generators
(:func:`rng_for`), so a patient's content does not depend on the order in which patients are generated.
"""

from __future__ import annotations

import uuid
import zlib
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from gliofuse.demo.latent import Biology, sample_biology, sample_survival

if TYPE_CHECKING:
    from gliofuse.config import DemoConfig

PRIMARY_TUMOR = "Primary Tumor"
RECURRENT_TUMOR = "Recurrent Tumor"
RNA_FILE_SUFFIX = ".rna_seq.augmented_star_gene_counts.tsv"

# Files written once per cohort, relative to the data root (docs/data-contracts.md section 1).
FILES_RNASEQ_JSON = "metadata/files_rnaseq.json"
FILES_SLIDES_JSON = "metadata/files_slides.json"
CASES_JSON = "metadata/cases.json"
MOLECULAR_TSV = "labels/molecular.tsv"
GROUND_TRUTH_TSV = "truth/ground_truth.tsv"
GENE_SETS_TSV = "truth/gene_sets.tsv"
COHORT_FILES: tuple[str, ...] = (FILES_RNASEQ_JSON, FILES_SLIDES_JSON, CASES_JSON, MOLECULAR_TSV,
                                 GROUND_TRUTH_TSV, GENE_SETS_TSV)

# Real TCGA tissue-source-site codes of the two projects (the first barcode field after "TCGA").
_TSS = {
    "TCGA-GBM": ("02", "06", "08", "12", "14", "19", "26", "27", "28", "32", "41", "76", "81", "87"),
    "TCGA-LGG": ("CS", "DB", "DH", "DU", "E1", "FG", "HT", "HW", "P5", "QH", "R8", "S9", "TM", "TQ",
                 "VM", "VV", "WY"),
}
_ALNUM = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_N_CODES = 36 ** 4


def rng_for(seed: int, *keys: int | str) -> np.random.Generator:
    """Independent generator for ``(seed, *keys)``; string keys are hashed with CRC-32.

    E.g. ``rng_for(seed, "patient", 3, "slide", 0)``: same keys -> same stream, whatever else was drawn.
    """
    entropy = [int(seed)] + [zlib.crc32(k.encode()) if isinstance(k, str) else int(k) for k in keys]
    return np.random.default_rng(np.random.SeedSequence(entropy))


def random_uuid4(rng: np.random.Generator) -> str:
    """A version-4 UUID string drawn from ``rng`` (deterministic, unlike ``uuid.uuid4``)."""
    return str(uuid.UUID(bytes=rng.bytes(16), version=4))


@dataclass(frozen=True)
class RnaFilePlan:
    """One GDC STAR - Counts file of a patient."""

    file_id: str            # GDC file uuid (folder name under rnaseq/)
    file_name: str          # "<uuid>.rna_seq.augmented_star_gene_counts.tsv" (its uuid differs from file_id, as on GDC)
    sample_submitter_id: str  # e.g. TCGA-02-0001-01A
    sample_type: str        # "Primary Tumor" / "Recurrent Tumor"

    @property
    def relpath(self) -> str:
        """Path relative to the data root: ``rnaseq/<file_id>/<file_name>``."""
        return f"rnaseq/{self.file_id}/{self.file_name}"


@dataclass(frozen=True)
class PatientPlan(Biology):
    """Everything decided about one synthetic patient before any file is written: its
    :class:`~gliofuse.demo.latent.Biology` (latent factors, molecular status, histology, age, sex), plus
    identifiers, files and the observed outcome."""

    index: int
    patient_id: str                 # TCGA-XX-XXXX
    case_id: str                    # GDC case uuid
    slide_ids: tuple[str, ...]      # TCGA-XX-XXXX-01Z-00-DX<k>.<UUID>
    slide_file_ids: tuple[str, ...]  # GDC file uuid of each slide
    slide_mpp: tuple[float, ...]    # 0.25 (40x) or 0.5 (20x), one per slide
    has_rna: bool
    rna_files: tuple[RnaFilePlan, ...]  # primary first; empty when has_rna is False
    molecular_missing: bool         # IDH / codel / CDKN2A reported as NA in labels/molecular.tsv
    time_days: int                  # observed time (death or censoring), days since diagnosis, >= 1
    event: int                      # 1 = death observed

    @property
    def true_risk(self) -> float:
        """True log hazard (``Biology.log_hazard``), the oracle risk of ``truth/ground_truth.tsv``."""
        return self.log_hazard

    @property
    def slide_magnifications(self) -> tuple[int, ...]:
        """Objective power of each slide (40 or 20)."""
        return tuple(round(10.0 / m) for m in self.slide_mpp)


@dataclass(frozen=True)
class CohortPlan:
    """The whole demo cohort (patients ordered by index)."""

    seed: int
    patients: tuple[PatientPlan, ...]

    @property
    def slide_ids(self) -> list[str]:
        """All slide ids, sorted."""
        return sorted(s for p in self.patients for s in p.slide_ids)

    @property
    def patient_ids(self) -> list[str]:
        """All patient ids, sorted."""
        return sorted(p.patient_id for p in self.patients)

    def rna_files(self) -> list[RnaFilePlan]:
        """All STAR - Counts files (primary and recurrent), in patient order."""
        return [f for p in self.patients for f in p.rna_files]

    def expected_outputs(self, data_root: str | Path) -> list[Path]:
        """Every file ``generate_cohort_`` writes under ``data_root`` (slides, STAR files, tables)."""
        root = Path(data_root)
        out = [root / "slides" / f"{s}.svs" for s in self.slide_ids]
        out += [root / f.relpath for f in self.rna_files()]
        out += [root / rel for rel in COHORT_FILES]
        return out


def _participant_codes(seed: int, n: int) -> list[str]:
    """``n`` distinct 4-character participant codes (an affine permutation of 36**4 codes)."""
    rng = rng_for(seed, "cohort", "participant_codes")
    while True:
        a = int(rng.integers(1, _N_CODES))
        if a % 2 and a % 3:  # coprime with 36**4 -> the map is a bijection
            break
    b = int(rng.integers(0, _N_CODES))
    codes = []
    for i in range(n):
        v = (a * i + b) % _N_CODES
        codes.append("".join(_ALNUM[(v // 36 ** k) % 36] for k in (3, 2, 1, 0)))
    return codes


def plan_cohort(*, seed: int, cfg: DemoConfig) -> CohortPlan:
    """Plan the demo cohort: deterministic in ``(seed, cfg)``.

    Parameters
    ----------
    seed : global seed (``config.seed``).
    cfg : ``DemoConfig`` (number of patients, fractions of two-slide patients and 40x slides, censoring).

    Returns
    -------
    CohortPlan with ``cfg.n_patients`` patients.
    """
    n = int(cfg.n_patients)
    crng = rng_for(seed, "cohort", "assignments")
    order = crng.permutation(n)
    n_no_rna = max(1, round(0.04 * n))
    n_recurrent = 1
    n_mol_na = max(1, round(n / 30))
    no_rna = set(order[:n_no_rna].tolist())
    recurrent = set(order[n_no_rna:n_no_rna + n_recurrent].tolist())
    mol_na = set(order[n_no_rna + n_recurrent:n_no_rna + n_recurrent + n_mol_na].tolist())
    two_slides = set(crng.permutation(n)[: round(cfg.frac_two_slides * n)].tolist())
    n_slides_of = [2 if i in two_slides else 1 for i in range(n)]
    total_slides = sum(n_slides_of)
    is_40x = np.zeros(total_slides, dtype=bool)
    is_40x[crng.permutation(total_slides)[: round(cfg.frac_40x * total_slides)]] = True
    codes = _participant_codes(seed, n)

    patients = []
    k = 0
    for i in range(n):
        bio = sample_biology(rng_for(seed, "patient", i, "biology"))
        time_days, event = sample_survival(rng_for(seed, "patient", i, "survival"), bio.log_hazard,
                                           cfg.censoring_fraction)
        ids = rng_for(seed, "patient", i, "ids")
        tss = _TSS[bio.project][int(ids.integers(len(_TSS[bio.project])))]
        pid = f"TCGA-{tss}-{codes[i]}"
        case_id = random_uuid4(ids)
        slide_ids, slide_file_ids, mpps = [], [], []
        for dx in range(n_slides_of[i]):
            slide_ids.append(f"{pid}-01Z-00-DX{dx + 1}.{random_uuid4(ids).upper()}")
            slide_file_ids.append(random_uuid4(ids))
            mpps.append(0.25 if is_40x[k] else 0.5)
            k += 1
        rna: list[RnaFilePlan] = []
        if i not in no_rna:
            samples = [("01A", PRIMARY_TUMOR)] + ([("02A", RECURRENT_TUMOR)] if i in recurrent else [])
            for code, stype in samples:
                fid, name_uuid = random_uuid4(ids), random_uuid4(ids)
                rna.append(RnaFilePlan(file_id=fid, file_name=f"{name_uuid}{RNA_FILE_SUFFIX}",
                                       sample_submitter_id=f"{pid}-{code}", sample_type=stype))
        patients.append(PatientPlan(
            **asdict(bio), index=i, patient_id=pid, case_id=case_id,
            slide_ids=tuple(slide_ids), slide_file_ids=tuple(slide_file_ids), slide_mpp=tuple(mpps),
            has_rna=bool(rna), rna_files=tuple(rna), molecular_missing=i in mol_na,
            time_days=time_days, event=event,
        ))
    return CohortPlan(seed=int(seed), patients=tuple(patients))
