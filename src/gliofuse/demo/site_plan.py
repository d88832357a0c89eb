"""Plan of the demo's external site: patients of the development demo's generative model at another hospital.

Numpy + stdlib only, no pixel work (like :mod:`gliofuse.demo.plan`). Same biology and survival model
(:mod:`gliofuse.demo.latent`), so a model trained on the development demo should transfer; different patients
(site seed = ``seed + external.seed_offset``), non-TCGA ids (``SITEB-0001``), one slide per patient written as
DICOM WSI or generic tiled TIFF at the site scanner's resolutions (``external.mpp``). ``with_demo_site`` declares
the site as an external cohort of the workflow (paths and column mapping from here, the one owner).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from gliofuse.demo.latent import Biology, sample_biology, sample_survival
from gliofuse.demo.plan import rng_for

if TYPE_CHECKING:
    from gliofuse.config import CohortSheetConfig, DemoConfig, GliofuseConfig

DICOM, TIFF = "dicom", "tiff"
"""Slide formats of the site (OpenSlide vendors ``dicom`` and ``generic-tiff``)."""

SLIDES_CSV = "slides.csv"
CLINICAL_CSV = "clinical.csv"
EXPRESSION_TSV = "expression_tpm.tsv"
COHORT_YAML = "cohort.yaml"
GROUND_TRUTH_TSV = "truth/ground_truth.tsv"
SITE_FILES: tuple[str, ...] = (SLIDES_CSV, CLINICAL_CSV, EXPRESSION_TSV, COHORT_YAML, GROUND_TRUTH_TSV)
"""Files written once per site, relative to its folder."""

CLINICAL_COLUMNS: dict[str, str] = {
    "patient_id": "PatID", "survival_time": "OS_months", "event": "Status", "idh": "IDH_status",
    "codel": "1p19q", "cdkn2a": "CDKN2A_homdel", "histologic_grade": "Grade_histo", "tert": "TERT_promoter",
    "gain7_loss10": "Chr7gain_Chr10loss", "age_years": "Age", "sex": "Sex",
}
"""gliofuse clinical field (``sheet.columns``, docs/data-contracts.md §0) -> the site's column name."""
CLINICAL_TIME_UNIT = "months"
EXPRESSION_GENE_COLUMN = "gene_symbol"
EXPRESSION_UNIT, EXPRESSION_GENE_ID = "tpm", "symbol"
"""``expression_tpm.tsv``: TPM with gene symbols in rows (``gliofuse omics import --unit tpm --gene-id symbol``)."""


@dataclass(frozen=True)
class SitePatient(Biology):
    """One patient of the external site: its :class:`~gliofuse.demo.latent.Biology`, ids, slide and outcome."""

    index: int
    patient_id: str       # <site>-0001
    slide_id: str         # <site>-0001-HE1
    slide_format: str     # DICOM | TIFF
    mpp: float            # µm/px of level 0
    time_days: int        # observed time (death or censoring), days since diagnosis, >= 1
    event: int            # 1 = death observed

    @property
    def true_risk(self) -> float:
        """True log hazard (the oracle risk of ``truth/ground_truth.tsv``)."""
        return self.log_hazard

    @property
    def slide_relpath(self) -> str:
        """Slide file relative to the site folder (DICOM: the level-0 file of the slide's folder)."""
        if self.slide_format == DICOM:
            return f"slides/{self.slide_id}/level_0.dcm"
        return f"slides/{self.slide_id}.tiff"


@dataclass(frozen=True)
class SitePlan:
    """The external site: name, its seed and its patients (ordered by index)."""

    name: str
    seed: int
    patients: tuple[SitePatient, ...]

    def expected_outputs(self, site_dir: str | Path) -> list[Path]:
        """Every file ``generate_external_site_`` writes that a workflow may depend on (slides and tables)."""
        root = Path(site_dir)
        return [root / p.slide_relpath for p in self.patients] + [root / f for f in SITE_FILES]


def site_seed(seed: int, cfg: DemoConfig) -> int:
    """Seed of the external site: the config seed plus ``demo.external.seed_offset``."""
    return int(seed) + int(cfg.external.seed_offset)


def site_rng(seed: int, name: str, *keys: int | str) -> np.random.Generator:
    """Generator of site ``name`` (site seed ``seed``) for ``keys``, e.g. ``"patient", 3, "slide"``."""
    return rng_for(seed, "site", name, *keys)


def plan_external_site(*, seed: int, cfg: DemoConfig) -> SitePlan:
    """Plan the external site of ``cfg.external``: deterministic in ``(seed, cfg)``.

    Slide formats: ``round(frac_dicom * n)`` randomly chosen patients get DICOM WSI, the rest generic TIFF;
    scanner resolutions ``external.mpp`` are dealt out in turn over a random order of the patients.
    Survival is censored like the development demo (``demo.censoring_fraction``).
    """
    ext = cfg.external
    s = site_seed(seed, cfg)
    n = int(ext.n_patients)
    crng = site_rng(s, ext.name, "assignments")
    dicom = set(crng.permutation(n)[: round(ext.frac_dicom * n)].tolist())
    mpp_of = {int(i): ext.mpp[k % len(ext.mpp)] for k, i in enumerate(crng.permutation(n))}
    patients = []
    for i in range(n):
        bio = sample_biology(site_rng(s, ext.name, "patient", i, "biology"))
        time_days, event = sample_survival(site_rng(s, ext.name, "patient", i, "survival"), bio.log_hazard,
                                           cfg.censoring_fraction)
        pid = f"{ext.name}-{i + 1:04d}"
        patients.append(SitePatient(**asdict(bio), index=i, patient_id=pid, slide_id=f"{pid}-HE1",
                                    slide_format=DICOM if i in dicom else TIFF, mpp=float(mpp_of[i]),
                                    time_days=time_days, event=event))
    return SitePlan(name=ext.name, seed=s, patients=tuple(patients))


def site_cohort_sheet(site_dir: str | Path, cfg: DemoConfig) -> CohortSheetConfig:
    """The ``external`` entry of the site that ``generate_external_site_`` writes to ``site_dir``: its slide
    sheet, clinical table (columns :data:`CLINICAL_COLUMNS`, unit :data:`CLINICAL_TIME_UNIT`) and TPM matrix."""
    from gliofuse.config import ClinicalColumns, CohortSheetConfig, ExpressionMatrixConfig

    root = Path(site_dir)
    return CohortSheetConfig(
        slides=str(root / SLIDES_CSV), clinical=str(root / CLINICAL_CSV), name=cfg.external.name,
        time_unit=CLINICAL_TIME_UNIT, columns=ClinicalColumns(**CLINICAL_COLUMNS),
        expression=ExpressionMatrixConfig(path=str(root / EXPRESSION_TSV), unit=EXPRESSION_UNIT,
                                          gene_id=EXPRESSION_GENE_ID))


def with_demo_site(config: GliofuseConfig, site_dir: str | Path) -> GliofuseConfig:
    """``config`` with the demo's external site added to section ``external`` (named ``demo.external.name``)
    when ``cohort: demo`` and ``demo.external.enabled``; otherwise ``config`` unchanged.

    Raises ``ConfigError`` if section ``external`` already has a cohort of that name.
    """
    from gliofuse.errors import ConfigError

    ext = config.demo.external
    if config.cohort.value != "demo" or not ext.enabled:
        return config
    if ext.name in config.external:
        raise ConfigError(f"external.{ext.name}: the demo's external site has this name (demo.external.name) and "
                          "is added by the workflow; rename your cohort, set demo.external.name, or set "
                          "demo.external.enabled: false.")
    return config.model_copy(update={"external": {**config.external, ext.name: site_cohort_sheet(site_dir, config.demo)}})
