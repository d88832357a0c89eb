"""Where the cohort comes from and how its labels and expression are read: sections ``demo`` (with the
external demo site), ``gdc``, ``sheet`` (and each ``external`` cohort), ``labels`` and ``omics``."""

from __future__ import annotations

import shlex
from typing import Literal

from pydantic import Field, field_validator, model_validator

from gliofuse.config.base import _Section


class ExternalSiteConfig(_Section):
    """The demo's external site (``gliofuse demo external``): patients of the same generative model from another
    hospital, with domain shift (stain, scanner, slide formats, expression as a TPM matrix, own clinical columns)."""

    enabled: bool = Field(True, description="cohort: demo: the workflow generates the site (rule demo_external, "
                          "under results/demo_external) and validates the models on it as the external cohort "
                          "<name>, with the generator's paths and column mapping; false: no external site.")
    name: str = Field("SITEB", pattern=r"^[A-Z][A-Z0-9]{1,15}$", description="Site name: patient ids are "
                      "<name>-0001, ...; the cohort name of the written cohort.yaml.")
    n_patients: int = Field(12, ge=4, le=500, description="Patients of the external site (one slide each).")
    seed_offset: int = Field(1000, ge=1, description="Site seed = config seed + seed_offset (patients differ "
                             "from the development demo's).")
    frac_dicom: float = Field(0.5, ge=0, le=1, description="Fraction of slides written as DICOM WSI; the others "
                              "are generic tiled TIFF.")
    mpp: list[float] = Field([0.2428, 0.4856], min_length=1, description="Scanner resolutions (um/px), assigned "
                             "to the slides in turn (another scanner than the demo's 0.25/0.5).")
    haematoxylin_scale: float = Field(1.3, gt=0, le=3, description="Stain shift: haematoxylin optical density "
                                      "factor (gliofuse.demo.stain).")
    eosin_scale: float = Field(0.75, gt=0, le=3, description="Stain shift: eosin optical density factor.")
    hue_deg: float = Field(-15.0, ge=-90, le=90, description="Stain shift: scanner hue rotation about the grey "
                           "axis in OD space, degrees.")

    expression_batch_sd: float = Field(0.25, ge=0, le=2, description="Site platform batch effect: sd of a "
                                       "per-gene offset of log expression (natural log).")

    @field_validator("mpp")
    @classmethod
    def _mpp_range(cls, v: list[float]) -> list[float]:
        bad = [m for m in v if not 0.1 <= m <= 2.0]
        if bad:
            raise ValueError(f"mpp values must be 0.1-2.0 um/px, got {bad}")
        return v


class DemoConfig(_Section):
    """The embedded synthetic TCGA-like cohort (used when ``cohort: demo``)."""

    n_patients: int = Field(48, ge=6, le=2000, description="Number of synthetic patients.")
    frac_two_slides: float = Field(0.25, ge=0, le=1, description="Fraction of patients with two diagnostic slides.")
    frac_40x: float = Field(0.5, ge=0, le=1, description="Fraction of slides scanned at 40x (0.25 um/px); others 20x (0.5 um/px).")
    slide_width_um: float = Field(1100.0, gt=100, le=20000, description="Physical slide width in micrometres.")
    slide_height_um: float = Field(800.0, gt=100, le=20000, description="Physical slide height in micrometres.")
    n_genes: int = Field(600, ge=50, le=70000, description="Genes per STAR counts file (plus the four N_* rows).")
    censoring_fraction: float = Field(0.35, ge=0, lt=1, description="Approximate fraction of censored patients.")
    external: ExternalSiteConfig = ExternalSiteConfig()


class GdcConfig(_Section):
    """TCGA acquisition from the NCI GDC (used when ``cohort: tcga``)."""

    download: bool = Field(
        False, description="true: query the GDC (checkpoint gdc_query) and download slides + STAR counts into data_root; "
        "false: the data are already on disk under data_root (slides/, rnaseq/, metadata/).")
    api_url: str = Field("https://api.gdc.cancer.gov", pattern="^https?://",
                         description="GDC API base URL (a local test double: http://127.0.0.1:<port>).")
    projects: list[str] = Field(["TCGA-GBM", "TCGA-LGG"], min_length=1, description="GDC project ids to query.")
    manifest: str | None = Field(
        None, description="User-supplied manifest TSV (id, filename, md5, size[, state, kind, patient_id]); it fixes "
        "the file list and skips the cohort query. Metadata JSONs beside it (written by `gliofuse gdc query`) are reused.")
    max_patients: int | None = Field(
        None, ge=1, description="Keep only the first N patients with a diagnostic slide (sorted barcodes); None: all.")
    token_env: str | None = Field(
        "GDC_TOKEN", description="Environment variable holding a GDC token (controlled data only; never logged or written).")
    token_file: str | None = Field(None, description="File holding a GDC token, used when token_env is unset or empty.")
    page_size: int = Field(500, ge=1, le=10000, description="Hits per page of /files and /cases queries.")
    max_retries: int = Field(5, ge=0, le=50, description="Retries on 429 (honouring Retry-After), 5xx and connection errors.")
    backoff_s: float = Field(1.0, ge=0, description="First retry delay in seconds; doubled per retry.")
    max_backoff_s: float = Field(60.0, ge=0, description="Upper bound of one retry delay in seconds.")
    timeout_s: float = Field(120.0, gt=0, description="Connect/read timeout of one HTTP request in seconds.")
    refetch_on_mismatch: int = Field(1, ge=0, le=5, description="Downloads of a file again after a size/md5 mismatch before failing.")


class ClinicalColumns(_Section):
    """Your clinical table's column names for each gliofuse field; null: the table has no such column.

    Give either ``diagnosis`` (+ ``grade``) or the molecular markers (``idh``, ``codel``, ``cdkn2a``,
    ``histologic_grade``; optional ``tert``, ``gain7_loss10`` for labels.who2021_strict) from which the
    WHO-2021 class and grade are derived as for TCGA. Values are read case-insensitively (docs/data-contracts.md).
    """

    patient_id: str = Field("patient_id", min_length=1, description="Patient id (as in the slide sheet).")
    survival_time: str | None = Field("survival_time", description="Overall survival or follow-up time (unit: "
                                      "sheet.time_unit or the time_unit column).")
    event: str | None = Field("event", description="1/dead/deceased/true = death observed, 0/alive/censored/false "
                              "= censored.")
    time_unit: str | None = Field(None, description="Column with each row's time unit (days | months); null: "
                                  "sheet.time_unit for every row.")
    diagnosis: str | None = Field(None, description="WHO-2021 diagnosis (astrocytoma, oligodendroglioma, "
                                  "glioblastoma or the class names of docs/data-contracts.md §3).")
    grade: str | None = Field(None, description="WHO CNS grade of the diagnosis (2, 3, 4, G2, II, ...).")
    idh: str | None = Field(None, description="IDH status (mutant | wildtype).")
    codel: str | None = Field(None, description="1p/19q status (codeleted | non-codeleted).")
    cdkn2a: str | None = Field(None, description="CDKN2A/B homozygous deletion (deleted | not deleted).")
    histologic_grade: str | None = Field(None, description="Histologic grade (2, 3, 4, G2, II, ...).")
    tert: str | None = Field(None, description="TERT promoter status (mutant | wildtype).")
    gain7_loss10: str | None = Field(None, description="Chr 7 gain / chr 10 loss (yes | no).")
    age_years: str | None = Field(None, description="Age at diagnosis in years.")
    sex: str | None = Field(None, description="Sex (female | male).")

    @model_validator(mode="after")
    def _one_label_route(self) -> ClinicalColumns:
        markers = [k for k in ("idh", "codel", "cdkn2a", "histologic_grade") if getattr(self, k)]
        if self.diagnosis and markers:
            raise ValueError(f"give either diagnosis (+ grade) or the markers, not both (markers set: {markers})")
        if self.grade and not self.diagnosis:
            raise ValueError("grade needs diagnosis; with markers, the grade is histologic_grade")
        return self


class ExpressionMatrixConfig(_Section):
    """A gene x sample expression matrix with a declared unit (``gliofuse omics import``; contract §6).

    Sample ids are patient ids (the slide sheet's ``patient_id``). Development cohort: the matrix's genes
    are the gene space; external cohort: imported onto the development ``expression.h5``'s genes and unit.
    """

    path: str = Field(..., min_length=1, description="Matrix file: TSV/CSV (genes x samples unless orientation) or "
                      "h5ad (obs = samples, var = genes); relative to the working directory.")
    unit: str = Field(..., min_length=1, description="counts, tpm, fpkm, fpkm_uq, or log2_<one of these> "
                      "(log2(x + pseudocount)).")
    gene_id: Literal["symbol", "ensembl"] = Field(..., description="Gene id type of the matrix (Ensembl versions "
                                                   "are stripped).")
    pseudocount: float | None = Field(None, gt=0, description="p of a log2_<unit> matrix (log2(x + p)).")
    orientation: Literal["genes-in-rows", "genes-in-columns"] = Field("genes-in-rows",
                                                                       description="TSV/CSV layout.")
    gene_column: str | None = Field(None, description="h5ad var column with the gene ids (default var_names).")
    layer: str | None = Field(None, description="h5ad layer with the values (default X).")
    gene_table: str | None = Field(None, description="symbol <-> Ensembl table (a GDC STAR - Counts file or a TSV "
                                   "with gene_id, gene_name[, gene_type]); needed for symbols without a reference.")
    max_missing_fraction: float = Field(0.1, ge=0, le=1, description="External cohorts: fraction of the "
                                        "development genes the matrix may lack (filled with the development mean); "
                                        "more: refused.")

    def import_flags(self) -> str:
        """The ``gliofuse omics import`` options of this matrix (besides --matrix, --reference, --out)."""
        flags = [f"--unit {shlex.quote(self.unit)}", f"--gene-id {self.gene_id}", f"--orientation {self.orientation}",
                 f"--max-missing-fraction {self.max_missing_fraction:g}"]
        for key in ("pseudocount", "gene_column", "layer", "gene_table"):
            value = getattr(self, key)
            if value is not None:
                flags.append(f"--{key.replace('_', '-')} {shlex.quote(str(value))}")
        return " ".join(flags)


class CohortSheetConfig(_Section):
    """An own cohort (``cohort: sheet`` or an entry of ``external``): a slide sheet and a per-patient clinical
    table, and optionally an expression matrix.

    Relative paths are read from the working directory. Expression: ``expression`` (a matrix with a declared
    unit), else (development cohort only) STAR - Counts files in GDC layout under data_root (rnaseq/ +
    metadata/files_rnaseq.json; data_root defaults to the slide sheet's folder).
    """

    slides: str | None = Field(None, description="Slide sheet (CSV/TSV): patient_id, slide_id, slide_path "
                               "(any OpenSlide format; relative to the sheet's folder).")
    clinical: str | None = Field(None, description="Clinical table (CSV/TSV), one row per patient (or per "
                                 "slide with equal values); may be the slide sheet itself.")
    name: str = Field("sheet", pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$",
                      description="Cohort name (label-table column project).")
    time_unit: Literal["days", "months"] = Field("days", description="Unit of the survival time column (months "
                                                 "x 30.4375 = days).")
    columns: ClinicalColumns = ClinicalColumns()
    expression: ExpressionMatrixConfig | None = Field(
        None, description="Expression matrix of the cohort (sample ids = patient ids); None: the STAR route "
        "(development cohort) or no RNA (external cohort: only models reading slides are applied).")


class LabelsConfig(_Section):
    """Label table: WHO-2021 diagnosis, grade and survival per patient."""

    molecular_table: str | None = Field(
        None, description="TSV with molecular labels in the cBioPortal lgggbm_tcga_pub schema. "
        "None: the demo cohort's table, or the shipped Ceccarelli-2016 table for TCGA.")
    who2021_strict: bool = Field(
        False, description="Strict WHO-2021: IDH-wt lower-grade tumours without TERT/+7-10 become 'NEC' and are excluded.")
    survival_source: str = Field(
        "clinical", pattern="^(clinical|molecular_table)$",
        description="'clinical': GDC /cases records; 'molecular_table': OS months/status of the molecular table.")


class OmicsConfig(_Section):
    """Expression matrix built from GDC STAR - Counts files."""

    value_column: str = Field(
        "tpm_unstranded", pattern="^(unstranded|tpm_unstranded|fpkm_unstranded|fpkm_uq_unstranded)$",
        description="Which STAR counts column to use.")
    gene_types: list[str] = Field(["protein_coding"], min_length=1, description="Keep genes of these gene_type values.")
    log_transform: bool = Field(True, description="Apply log2(x + 1).")
