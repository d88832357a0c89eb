"""Typed configuration: one pydantic model per stage, composed into ``GliofuseConfig``.

The root ``config.yaml`` and every per-stage snapshot (``results/config/<section>.yaml``)
have this shape. ``gliofuse config schema`` exports the JSON schema that the Snakefile
validates against (``workflow/schemas/config.schema.yaml``); a test keeps the two in sync.
"""

from __future__ import annotations

import shlex
from enum import StrEnum
from itertools import pairwise
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from gliofuse.ablations import ABLATIONS
from gliofuse.errors import ConfigError
from gliofuse.presets import PRESET_NAMES, apply_preset
from gliofuse.tasks import TASK_NAMES

SECTIONS: tuple[str, ...] = (
    "demo", "gdc", "sheet", "labels", "omics", "wsi", "features", "data", "training", "evaluation", "report",
    "validation", "predict", "external",
)


SNAPSHOT_INCLUDES: dict[str, tuple[str, ...]] = {"labels": ("sheet",),
                                                  "external": ("labels", "predict", "evaluation")}
"""Sections a stage's snapshot holds besides its own: labels_build reads the clinical columns of ``sheet``;
the external jobs read labels.who2021_strict, the predict settings and the evaluation settings."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)


class Cohort(StrEnum):
    demo = "demo"
    tcga = "tcga"
    sheet = "sheet"


Optimizer = Literal["adam", "adamw", "sgd"]
LrSchedule = Literal["none", "cosine", "linear"]
EpochSelection = Literal["best", "last"]
SurvivalLoss = Literal["cox", "nll"]


Task = StrEnum("Task", {name: name for name in TASK_NAMES})
"""The task names of ``training.tasks`` (:data:`gliofuse.tasks.TASK_NAMES`)."""


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


class WsiConfig(_Section):
    """Tissue segmentation and patching.

    Segmentation parameters left null take the value of ``preset`` (CLAM's presets converted to
    physical units) or, without a preset, the built-in default named in their description.
    """

    #: CLAM's tcga / bwh_biopsy / bwh_resection presets in physical units: CLAM segments at a 64x
    #: downsample of a 40x (0.25 um/px) scan, i.e. 16 um/px, and counts areas in "512 x 512 level-0
    #: patches" (128 um x 128 um = 16384 um^2); its square closing kernel of k px becomes a disk of
    #: radius k/2 px = 8k um.
    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        "tcga": {"seg_mpp": 16.0, "saturation_threshold": 8, "median_blur_px": 7, "close_um": 32.0,
                 "min_tissue_area_um2": 16 * 16384.0, "min_hole_area_um2": 4 * 16384.0, "max_n_holes": 8},
        "biopsy": {"seg_mpp": 16.0, "saturation_threshold": 15, "median_blur_px": 11, "close_um": 16.0,
                   "min_tissue_area_um2": 16384.0, "min_hole_area_um2": 16384.0, "max_n_holes": 2},
        "resection": {"seg_mpp": 16.0, "saturation_threshold": 15, "median_blur_px": 11, "close_um": 32.0,
                      "min_tissue_area_um2": 100 * 16384.0, "min_hole_area_um2": 16 * 16384.0,
                      "max_n_holes": 8},
    }
    #: values of the preset-able parameters when neither the config nor a preset sets them
    BUILTIN: ClassVar[dict[str, Any]] = {
        "seg_mpp": 8.0, "saturation_threshold": "otsu", "median_blur_px": 7, "close_um": 32.0,
        "min_tissue_area_um2": 20000.0, "min_hole_area_um2": 20000.0, "max_n_holes": 8,
    }

    preset: Literal["tcga", "biopsy", "resection"] | None = Field(
        None, description="Named segmentation preset (CLAM's tcga / bwh_biopsy / bwh_resection in physical "
        "units); fills the segmentation parameters left null.")
    overrides_csv: str | None = Field(
        None, description="CSV with a slide_id column plus any wsi parameter (and 'mpp', um per level-0 px) "
        "as columns; a non-empty cell overrides that parameter for that slide.")
    target_mpp: float = Field(0.5, gt=0, le=16, description="Microns per pixel to tile at (0.5 ~ 20x).")
    patch_px: int = Field(256, ge=32, le=4096, description="Patch side in pixels at target_mpp.")
    seg_mpp: float | None = Field(
        None, gt=0, description="Resolution (um/px) at which the tissue mask is computed; null: preset or 8.0.")
    saturation_threshold: Annotated[int, Field(ge=0, le=255)] | Literal["otsu"] | None = Field(
        None, description="HSV saturation threshold (0-255) or 'otsu' (per slide); null: preset or 'otsu'.")
    median_blur_px: int | None = Field(
        None, ge=1, description="Median filter size in mask pixels (made odd); null: preset or 7.")
    close_um: float | None = Field(
        None, ge=0, description="Morphological closing radius in micrometres; null: preset or 32.")
    min_tissue_area_um2: float | None = Field(
        None, ge=0, description="Drop tissue regions whose net area is below this (um^2); null: preset or 20000.")
    min_hole_area_um2: float | None = Field(
        None, ge=0, description="Fill holes smaller than this (um^2); null: preset or 20000.")
    max_n_holes: int | None = Field(
        None, ge=0, description="Keep at most this many (largest) holes per tissue region, fill the rest "
        "(0: holes are tissue); null: preset or 8.")
    min_tissue_fraction: float = Field(0.5, ge=0, le=1, description="Keep patches whose tissue fraction is at least this.")
    default_mpp: float | None = Field(
        None, gt=0, description="mpp for slides with no mpp metadata; None: such slides are skipped with a reason.")

    @model_validator(mode="after")
    def _fill_preset(self) -> WsiConfig:
        source = self.PRESETS[self.preset] if self.preset else self.BUILTIN
        for name, value in source.items():
            if getattr(self, name) is None:
                object.__setattr__(self, name, value)
        return self


class FeaturesConfig(_Section):
    """Patch feature extraction."""

    encoder: str = Field("test_resnet", description="Encoder name (gliofuse encoder registry or timm:<model name>).")
    weights: str | None = Field(None, description="Local weights file (safetensors/pth); None: random init (tests only).")
    encoder_kwargs: dict[str, Any] = Field(
        {}, description="Architecture overrides passed to timm.create_model (e.g. {depth: 2}); weights must match.")
    batch_size: int = Field(32, ge=1, description="Patches per forward pass.")
    device: str = Field("auto", pattern="^(auto|cpu|cuda(:\\d+)?)$", description="Torch device.")
    precision: str = Field("bf16", pattern="^(fp32|bf16|fp16)$", description="Autocast precision on CUDA.")
    cpu_bf16: bool = Field(
        False, description="On CPU, run bf16 autocast too (several times faster on CPUs with AMX/AVX512-BF16; "
        "features then differ from fp32 by bf16 rounding). false: CPU runs fp32.")
    compile: bool = Field(False, description="torch.compile the encoder (GPU; the last batch is padded to batch_size).")
    num_workers: int | None = Field(
        None, ge=0, description="DataLoader worker processes reading the slide (one slide handle each); "
        "null: 0 on CPU, min(16, cores - 1) on CUDA.")
    prefetch_factor: int = Field(4, ge=1, description="Batches each worker reads ahead.")
    read_strategy: Literal["region", "patch"] = Field(
        "region", description="'region': one read_region per block of contiguous patches, split in memory; "
        "'patch': one read per patch.")
    region_px: int = Field(2048, ge=64, le=16384, description="Largest side (px of the read level) of one region read.")
    read_retries: int = Field(1, ge=0, description="Retries (with a re-opened slide) of a failed read before "
                              "its patches are filled white and counted as failed.")
    max_failed_fraction: float = Field(
        0.1, ge=0, le=1, description="Slide status 'failed' when more than this fraction of patches is unreadable.")
    checkpoint_s: float | None = Field(
        60.0, ge=0, description="Save finished batches every this many seconds under <out>.partial/, so a killed "
        "job resumes (0: after every batch; null: never).")
    max_patches_per_slide: int | None = Field(None, ge=1, description="Random subsample of patches per slide (seeded).")
    shard_size: int = Field(
        16, ge=1, description="Slides per features_extract job (one encoder build per shard; the next slide is "
        "prepared while the current one encodes). Per-slide outputs and resume are unchanged; changing it "
        "reruns the shard jobs, which reuse finished slides.")
    decoder: Literal["auto", "openslide", "raw"] = Field(
        "auto", description="Patch reader: 'raw' decodes the slide's JPEG tiles with torchvision on features.device "
        "(nvJPEG on CUDA); 'openslide' uses OpenSlide; 'auto' uses raw tiles where the level is tiled JPEG and "
        "falls back to OpenSlide for other slides and after any raw-tile error (recorded in the status JSON).")


class DataConfig(_Section):
    """Patient-level cross-validation splits."""

    n_folds: int = Field(5, ge=2, le=20, description="Number of cross-validation folds.")
    n_repeats: int = Field(
        1, ge=1, le=20, description="Repeats of the k-fold cross-validation, each with its own patient partition "
        "(repeat 0 uses `seed`, repeat j a seed derived from it, saved in the split files). r > 1 trains r x the "
        "fold jobs (fold ids 0 .. n_folds * n_repeats - 1); metrics are pooled within each repeat and reported as "
        "mean +/- sd over the repeats. 1: the plain k-fold cross-validation.")
    val_fraction: float = Field(0.15, ge=0, lt=0.5, description="Fraction of each training fold held out for early stopping.")
    stratify_by: str = Field("diagnosis", pattern="^(diagnosis|grade|event|none)$", description="Label to stratify folds by.")
    max_failed_slide_fraction: float = Field(
        0.2, ge=0, le=1, description="Stop at data_splits (naming the slides) when more than this fraction of the "
        "slides failed: unreadable in wsi_patch or too many unreadable patches in features_extract. Fewer are "
        "left out of the cohort and listed in results/qc/slides.tsv.")

    @property
    def n_fold_ids(self) -> int:
        """Number of split files and fold jobs per model and task: ``n_folds * n_repeats``."""
        return self.n_folds * self.n_repeats


class OptimConfig(_Section):
    """The epoch loop's settings: optimiser, schedule, precision, sampling, early stopping, epoch selection, resume.

    Declared once: ``training`` extends it (:class:`TrainingConfig`) and a validation protocol derives one from
    its own keys (:meth:`ValidationProtocolConfig.optim`).
    """

    epochs: int = Field(30, ge=1, description="Maximum epochs.")
    batch_size: int = Field(16, ge=1, description="Patients per optimisation step.")
    lr: float = Field(5e-4, gt=0, description="Peak learning rate.")
    weight_decay: float = Field(1e-4, ge=0, description="Weight decay (decoupled for adamw, L2 for adam/sgd).")
    patience: int = Field(8, ge=1, description="Early stopping patience in epochs (on the validation `monitor`).")
    device: str = Field("auto", pattern="^(auto|cpu|cuda(:\\d+)?)$", description="Torch device.")
    optimizer: Optimizer = Field(
        "adamw", description="'adamw' (decoupled weight decay), 'adam' (coupled L2, as the subspace-fusion "
        "original) or 'sgd' (with `momentum`).")
    momentum: float = Field(0.9, ge=0, lt=1, description="SGD momentum (optimizer: sgd only).")
    scheduler: LrSchedule = Field(
        "cosine", description="Learning-rate schedule, stepped once per epoch: 'cosine' anneals lr to `min_lr` "
        "over `epochs` (after `warmup_epochs` of linear warm-up); 'linear' decays it linearly (Pathomic Fusion: "
        "factor 1 - (e + 1) / (epochs + 1) in 0-based epoch e); 'none' keeps lr constant.")
    min_lr: float = Field(0.0, ge=0, description="Final learning rate of the cosine / linear schedule.")
    warmup_epochs: int = Field(0, ge=0, description="Epochs of linear learning-rate warm-up (from lr/10).")
    grad_clip: float | None = Field(None, gt=0, description="Clip the global gradient norm to this value; null: no clipping.")
    amp: bool = Field(True, description="Mixed precision (autocast) on CUDA; ignored on CPU (always fp32).")
    amp_dtype: Literal["bf16", "fp16"] = Field(
        "bf16", description="Autocast dtype on CUDA; fp16 adds a gradient scaler (unscaled before gradient hooks).")
    monitor: Literal["loss", "metric"] = Field(
        "loss", description="Model selection / early stopping on the validation 'loss' or 'metric' (C-index for "
        "survival, accuracy for classification).")
    resume: bool = Field(True, description="Resume an interrupted fold from its last epoch checkpoint (last.pt) "
                         "when its provenance matches; false: start over.")
    keep_epoch_checkpoints: bool = Field(
        False, description="Also keep one checkpoint per epoch (epoch_<k>.pt) beside last.pt.")
    l1: float = Field(0.0, ge=0, description="L1 penalty: l1 * sum |w| over all trainable model and head "
                      "parameters (biases included) added to every step's loss (Pathomic Fusion: 3e-4); 0: none. "
                      "Logged as history column train_l1_loss.")
    select_epoch: EpochSelection = Field(
        "best", description="Weights kept for the predictions and checkpoint: 'best' = the epoch with the best "
        "`monitor` value (the lowest training task loss without a validation set); 'last' = the final epoch's "
        "(as Pathomic Fusion and MCAT report). Early stopping (`patience`) applies either way.")
    weighted_sampler: bool = Field(
        False, description="Draw each epoch's training patients with replacement, weighted by 1 / size of their "
        "stratum (class label; survival: event x time bin of the 'nll' loss, event only for 'cox'), as MCAT's "
        "weighted sampling; false: a plain shuffle.")


class TrainingConfig(OptimConfig):
    """Model training (one job per model x task x fold, or per model x task: ``folds_per_job``)."""

    # the loop settings are inherited from OptimConfig; below: models, tasks, inputs and objectives

    preset: Literal[PRESET_NAMES] | None = Field(  # type: ignore[valid-type]
        None, description="A paper's protocol (docs/fidelity.md): zhang2024 (subspace fusion and its ablations), "
        "wang2024 (Path-GPTOmic), lu2022 (M2F), chen2020 (Pathomic Fusion), chen2021 (MCAT), and the originals' "
        "leaky survival bins zhang2024_global_bins / chen2021_cohort_bins. It sets every training key (models "
        "included) except device, amp, amp_dtype, resume, keep_epoch_checkpoints, n_top_genes and folds_per_job: "
        "the other training keys of the config are ignored. null: the keys as given.")

    models: list[str] = Field(["abmil_snn_concat"], min_length=1, description="Registered model names (gliofuse models list).")
    tasks: list[Task] = Field([Task.survival, Task.grade, Task.diagnosis], min_length=1, description="Tasks to train.")
    max_patches: int = Field(512, ge=1, description="Patches sampled per bag in each training epoch (seeded by seed, "
                             "epoch and item); a bag is a patient's slides together (bag_level patient) or one "
                             "slide (bag_level slide). Only the sampled rows are read from disk. Inference batches "
                             "hold at most batch_size x max_patches padded patches (a larger bag goes alone).")
    inference_max_patches: int | None = Field(
        None, ge=1, description="Patches per bag at validation and prediction: null = every patch (default), except "
        "models with self-attention over every patch (transmil, path_gptomic*: 4,096, their card's "
        "max_inference_patches); an integer = a fixed seeded subsample (the same in every epoch and call) for every "
        "model. The subspace-fusion original uses "
        "the same 2,500 tokens in training and inference (preset zhang2024: max_patches = inference_max_patches = "
        "2500).")
    n_top_genes: int = Field(256, ge=1, description="Most variable genes (on the training fold) fed to omics branches.")
    model_overrides: dict[str, dict[str, Any]] = Field(
        {}, description="Per-model hyper-parameter overrides: {model_name: {param: value}} (e.g. "
        "subspace_fusion: {token_map: raster, grid_size: 50, gc_mode: reflect}; keys: `gliofuse models list`).")
    survival_loss: SurvivalLoss = Field(
        "cox", description="Survival objective: 'cox' (Cox partial likelihood, `risk` = log hazard) or 'nll' "
        "(discrete-time hazard NLL on `n_bins` time bins, `risk` = -sum of the bin survival probabilities).")
    n_bins: int = Field(4, ge=2, le=20, description="Survival time bins of the 'nll' loss (edges: `bin_edges`).")
    bin_edges: Literal["train", "cohort"] | list[float] = Field(
        "train", description="Inner edges of the 'nll' loss's time bins: 'train' = quantiles of the training "
        "patients' survival times (fold-specific, stored in the checkpoint; default, leakage-free); 'cohort' = "
        "quantiles over every patient of the split, test patients included (MCAT's bins; leaks test times); a list "
        "of n_bins - 1 increasing times in days = fixed edges (the subspace-fusion original: TCGA quartiles "
        "[233.5, 511, 929], computed on its whole table).")
    bin_closed: Literal["right", "left"] = Field(
        "right", description="Bin convention of the 'nll' loss: 'right' = (q_{k-1}, q_k] (default); 'left' = "
        "[q_{k-1}, q_k) (the subspace-fusion original: a time equal to an edge falls in the later bin).")
    nll_alpha: float = Field(0.0, ge=0, le=1, description="Extra weight on the uncensored term of the 'nll' loss "
                             "(MCAT's alpha; 0 as in the subspace-fusion original).")
    diagnosis_classes: Literal[3, 4] = Field(
        3, description="WHO-2021 diagnosis classes: 3 (astrocytoma IDH-mut, oligodendroglioma, glioblastoma IDH-wt) "
        "or 4 (the astrocytoma split into grade 2/3 and grade 4, i.e. CDKN2A/B homozygous deletion or "
        "histologic grade 4: column who2021_grade of the label table).")
    grade_label: Literal["who2021", "histologic"] = Field(
        "who2021", description="Label of the grade task: 'who2021' = the WHO-2021 integrated grade (label-table "
        "column grade; IDH-wt -> 4, CDKN2A/B-deleted astrocytoma -> 4, oligodendroglioma capped at 3); "
        "'histologic' = the histologic grade G2/G3/G4 (column histologic_grade; the subspace-fusion original).")
    class_weights: Literal["none", "balanced"] | dict[Task, list[Annotated[float, Field(gt=0)]]] = Field(
        "none", description="Cross-entropy class weights: 'none'; 'balanced' = n / (K n_k) on the training patients "
        "of the fold; or fixed weights per task in class-index order ({grade: [1.47, 1.51, 1.0]}; classes: "
        "gliofuse.tasks; a task not listed is unweighted).")
    weight_decay_by_task: dict[Task, Annotated[float, Field(ge=0)]] = Field(
        {}, description="Weight decay of the jobs of a task, replacing `weight_decay` for them (the subspace-fusion "
        "original: 0.1, 0.01 for diagnosis).")
    multitask: bool = Field(
        False, description="Train one head per task of `tasks` jointly (summed losses, `loss_weights`); each "
        "job (model x task x fold) still writes the predictions of its own task and selects its epoch on it.")
    loss_weights: dict[str, float] = Field(
        {}, description="Per-task loss weights in multitask mode ({survival: 1.0, grade: 0.5}); missing: 1.0.")
    gene_sets: list[str] = Field(
        ["tumour", "microenvironment"], min_length=1, description="Gene sets (gliofuse.omics.genesets names, "
        "matched by symbol) fed as separate omics vectors to gene-subspace models (subspace_fusion: the first "
        "two are its tumour and microenvironment subspaces); each z-scored on the training patients.")
    bag_level: Literal["patient", "slide"] = Field(
        "patient", description="'patient': one bag of all of a patient's slides (slides laid out side by side on "
        "the 2-D token map); 'slide': one sample per slide, predictions averaged per patient (head outputs).")
    folds_per_job: Literal["one", "all"] = Field(
        "one", description="Workflow jobs of training (the results are the same either way): 'one' = one job per "
        "model x task x fold (rule train_fold; SLURM job arrays, one GPU per fold); 'all' = one job per model x "
        "task that trains its folds one after another in one process (rule train_folds; saves the ~4 s Python/"
        "torch start-up per fold: the local demo). Not a per-model setting, not part of the fold's provenance.")
    model_training: dict[str, dict[str, Any]] = Field(
        {}, description="Per-model overrides of the training settings above: {model_name: {setting: value}} "
        "(e.g. subspace_fusion: {lr: 2.0e-4, optimizer: adam, survival_loss: nll}; m2f: {tasks: [survival, grade], "
        "multitask: true}); not models, model_overrides or model_training. A per-model `tasks` list (a subset of "
        "`tasks`) selects the model's jobs and, with `multitask`, its jointly trained heads.")

    #: settings that cannot be overridden per model
    NOT_PER_MODEL: ClassVar[frozenset[str]] = frozenset({"models", "model_overrides", "model_training",
                                                         "folds_per_job"})

    @model_validator(mode="before")
    @classmethod
    def _apply_preset(cls, data: Any) -> Any:
        return apply_preset(data) if isinstance(data, dict) else data

    @model_validator(mode="after")
    def _check_bin_edges(self) -> TrainingConfig:
        if not isinstance(self.bin_edges, str):
            e = self.bin_edges
            if len(e) != self.n_bins - 1 or any(b <= a for a, b in pairwise(e)) or min(e) <= 0:
                raise ValueError(f"bin_edges {e} must be n_bins - 1 = {self.n_bins - 1} increasing positive "
                                 "times in days (or 'train' / 'cohort')")
        return self

    @model_validator(mode="after")
    def _check_model_training(self) -> TrainingConfig:
        for name, overrides in self.model_training.items():
            bad = sorted(k for k in overrides if k in self.NOT_PER_MODEL or k not in type(self).model_fields)
            if bad:
                raise ValueError(f"model_training.{name}: {bad} cannot be set per model; allowed keys are the "
                                 "training settings except models, model_overrides, model_training and "
                                 "folds_per_job")
            extra = sorted({str(getattr(t, "value", t)) for t in overrides.get("tasks", [])}
                           - {t.value for t in self.tasks})
            if extra:
                raise ValueError(f"model_training.{name}.tasks: {extra} are not in training.tasks "
                                 f"{[t.value for t in self.tasks]}; a model trains a subset of the tasks")
            try:
                self.for_model(name)
            except ValidationError as exc:
                err = exc.errors()[0]
                key = ".".join(str(p) for p in err["loc"])
                raise ValueError(f"model_training.{name}.{key} = {str(err.get('input'))[:40]!r}: {err['msg']}") from None
        return self

    def model_training_for(self, name: str) -> dict[str, Any]:
        """The per-model training settings of ``name``: for a registered ablation (:data:`gliofuse.ablations.
        ABLATIONS`) its parent's ``model_training``, then the ablated switch, then its own keys; else its own."""
        merged: dict[str, Any] = {}
        ablation = ABLATIONS.get(name)
        if ablation is not None:
            merged.update(self.model_training.get(ablation.parent, {}))
            merged.update(ablation.training)
        merged.update(self.model_training.get(name, {}))
        return merged

    def model_overrides_for(self, name: str) -> tuple[dict[str, Any], dict[str, Any]]:
        """``(inherited, own)`` model overrides of ``name``: a registered ablation inherits its parent's
        ``model_overrides`` (the registry drops the keys its card lacks: the ablated parts); ``own`` are
        ``model_overrides[name]`` and win key by key."""
        ablation = ABLATIONS.get(name)
        inherited = dict(self.model_overrides.get(ablation.parent, {})) if ablation is not None else {}
        return inherited, dict(self.model_overrides.get(name, {}))

    def for_model(self, name: str) -> TrainingConfig:
        """These settings with the model's per-model settings applied (:meth:`model_training_for`; validated)."""
        overrides = self.model_training_for(name)
        if not overrides:
            return self
        data = self.model_dump()
        data.update(overrides)
        data["model_training"] = {}
        data["preset"] = None  # already applied: validate the per-model keys without re-applying it
        return type(self).model_validate(data).model_copy(update={"preset": self.preset})

    def for_task(self, task: str) -> TrainingConfig:
        """These settings for a job of ``task``: ``weight_decay_by_task[task]`` replaces ``weight_decay``."""
        wd = {str(getattr(k, "value", k)): v for k, v in self.weight_decay_by_task.items()}.get(str(task))
        return self if wd is None else self.model_copy(update={"weight_decay": wd})

    def jobs(self) -> list[tuple[str, str]]:
        """``(model, task)`` pairs to train, in ``models`` order: each model's tasks (``model_training.<m>.tasks``
        where set, else ``tasks``), one job per pair and fold."""
        return [(m, t.value) for m in self.models for t in self.for_model(m).tasks]


class EvaluationConfig(_Section):
    """Metrics and statistics from prediction files."""

    #: the main model when ``reference_model`` is unset and it is among ``training.models``
    DEFAULT_REFERENCE: ClassVar[str] = "subspace_fusion"

    n_bootstrap: int = Field(
        200, ge=0, description="Patient-level bootstrap resamples for confidence intervals and paired model "
        "comparisons (0: none).")
    reference_model: str | None = Field(
        None, description="Main model every other model is compared with (paired bootstrap on the same "
        "patients); must be one of training.models. None: 'subspace_fusion' if configured, else the first model.")
    time_quantiles: tuple[float, float] = Field(
        (0.05, 0.8), description="Survival time grid of the time-dependent AUC, the integrated Brier score and "
        "the truncation time of Uno's C-index: from this lower to this upper quantile of the observed times.")
    n_times: int = Field(15, ge=2, le=200, description="Number of time points of that grid.")

    @field_validator("time_quantiles")
    @classmethod
    def _ordered_quantiles(cls, v: tuple[float, float]) -> tuple[float, float]:
        lo, hi = v
        if not 0.0 <= lo < hi <= 1.0:
            raise ValueError(f"needs 0 <= lower < upper <= 1, got [{lo}, {hi}]")
        return v


def resolve_reference_model(evaluation: EvaluationConfig, models: list[str]) -> str:
    """The main model of the comparisons: ``evaluation.reference_model``, else ``subspace_fusion`` if it is
    among ``models``, else ``models[0]``.

    Raises
    ------
    ConfigError
        ``evaluation.reference_model`` is set but not one of ``models`` (``training.models``).
    """
    if not models:
        raise ConfigError("training.models is empty: there is no model to evaluate.")
    ref = evaluation.reference_model
    if ref is not None:
        if ref not in models:
            raise ConfigError(f"evaluation.reference_model = {ref!r} is not one of training.models {models}. "
                              "Add it to training.models or pick one of them.")
        return ref
    return evaluation.DEFAULT_REFERENCE if evaluation.DEFAULT_REFERENCE in models else models[0]


class ReportConfig(_Section):
    """HTML report and figures."""

    title: str = Field("gliofuse report", description="Report title.")
    attention_patients: int = Field(
        3, ge=0, le=50, description="Test patients per model and task whose patch attention is drawn over the slide "
        "thumbnail (models that write attention scores only; 0: none).")
    dpi: int = Field(110, ge=50, le=600, description="Resolution of the PNG figures (the SVG twins are vector).")


class ValidationProtocolConfig(_Section):
    """Optimisation settings and inputs of one published protocol (``validation.pf`` / ``validation.mcat``)."""

    enabled: bool = Field(True, description="Run this protocol in `validation_all` / `gliofuse validate run`.")
    tasks: list[Literal["survival", "grade"]] = Field(["survival"], min_length=1, description="Tasks to run.")
    splits: list[int] | None = Field(None, description="Split indices to run (PF 1..15, MCAT 0..4); null: all.")
    models: list[str] = Field(["snn"], min_length=1, description="Omics-only registered models (`gliofuse models "
                              "list`; modality omics only).")
    model_overrides: dict[str, dict[str, Any]] = Field({}, description="{model: {param: value}} hyper-parameters.")
    epochs: int = Field(50, ge=1, description="Epochs (no early stopping; the protocols have no validation set).")
    batch_size: int = Field(64, ge=2, description="Rows per optimisation step.")
    lr: float = Field(2e-3, gt=0, description="Peak learning rate.")
    weight_decay: float = Field(5e-4, ge=0, description="Weight decay (L2 for adam).")
    optimizer: Optimizer = Field("adam", description="Optimizer.")
    scheduler: LrSchedule = Field("linear", description="Per-epoch learning-rate "
                                                            "schedule (training.scheduler).")
    survival_loss: SurvivalLoss = Field("cox", description="Survival objective of the protocol.")
    l1: float = Field(0.0, ge=0, description="L1 penalty on all model and head parameters (training.l1).")
    select_epoch: EpochSelection = Field(
        "last", description="'last': the final epoch's weights (both papers report them); 'best': the epoch with "
        "the lowest training loss (training.select_epoch).")
    weighted_sampler: bool = Field(False, description="Balanced sampling of the training rows "
                                   "(training.weighted_sampler).")

    def optim(self) -> OptimConfig:
        """The loop settings of this protocol: its own keys shared with :class:`OptimConfig`, and what every
        protocol fixes: no early stopping (``patience`` = ``epochs``; there is no validation set), CPU, fp32,
        the training loss monitored, no resume; the other settings at their defaults."""
        own = self.model_dump(include=set(OptimConfig.model_fields))
        return OptimConfig(**own, patience=self.epochs, device="cpu", amp=False, monitor="loss", resume=False)


class PFValidationConfig(ValidationProtocolConfig):
    """Pathomic Fusion protocol: 15 pnas_splits train/test splits, Cox loss (survival) and 3-class grade."""

    tasks: list[Literal["survival", "grade"]] = Field(["survival", "grade"], min_length=1, description="Tasks.")
    model_overrides: dict[str, dict[str, Any]] = Field(
        {"snn": {"hidden_dims": [64, 48, 32, 32], "dropout": 0.25, "activation": "elu"}},
        description="{model: {param: value}}; default: PF's genomic SNN (MaxNet 80-64-48-32-32, ELU, AlphaDropout "
        "0.25).")
    l1: float = Field(3e-4, ge=0, description="PF: lambda_reg 3e-4 on all parameters (reg_type all).")
    roi_weighting: bool = Field(True, description="Repeat each patient once per ROI ('Region count') in training, "
                                "scaling and the grade metrics, as PF trains and tests on ROI rows.")
    survival_cohorts: list[Literal["rnaseq", "all"]] = Field(
        ["rnaseq", "all"], min_length=1, description="Patient sets of the survival task: 'rnaseq' = those with "
        "RNA-seq (listed in the MCAT table; needs mcat_dir), as PF's published survival SNN was trained on its "
        "RNA-seq inner join; 'all' = every patient with a molecular subtype.")


class MCATValidationConfig(ValidationProtocolConfig):
    """MCAT protocol: 5-fold patient-level CV (val folds), 4-bin discrete-time NLL, SNN on signature genes."""

    model_overrides: dict[str, dict[str, Any]] = Field(
        {"snn": {"hidden_dims": [256, 256, 256, 256], "dropout": 0.25, "activation": "elu"}},
        description="{model: {param: value}}; default: MCAT's SNN ('small': 4 x 256, ELU, AlphaDropout 0.25).")
    epochs: int = Field(20, ge=1, description="Epochs (MCAT: 20, last epoch reported).")
    batch_size: int = Field(32, ge=2, description="Patients per step (MCAT: batch 1 with 32-step accumulation).")
    lr: float = Field(2e-4, gt=0, description="Learning rate (MCAT: 2e-4).")
    weight_decay: float = Field(1e-5, ge=0, description="Weight decay (MCAT: 1e-5).")
    scheduler: LrSchedule = Field("none", description="MCAT: constant learning rate.")
    l1: float = Field(3.2e-3, ge=0, description="MCAT's SNN run: lambda_reg 1e-4 on all parameters, added to each "
                      "of the 32 accumulated batch-1 losses (loss / gc + reg), i.e. 32 x 1e-4 per batch-32 step.")
    weighted_sampler: bool = Field(True, description="MCAT: weighted_sample (classes = survival bin x censorship).")
    survival_loss: SurvivalLoss = Field("nll", description="MCAT: 4-bin discrete-time NLL (alpha 0).")
    signature_genes: bool = Field(True, description="Features: *_rnaseq/_cnv/_mut columns of signature-family "
                                  "genes (MCAT's SNN baseline); false: all genomic columns.")
    exclude_genes: list[str] = Field(
        ["IDH1"], description="Gene symbols dropped from the features. IDH1 is in this signatures.csv (Oncogenes) "
        "but was in none of the families MCAT's published SNN used.")
    feature_types: list[Literal["rnaseq", "cnv", "mut"]] = Field(
        ["rnaseq", "cnv", "mut"], min_length=1, description="Genomic column kinds fed to the model.")
    bins_from: Literal["cohort", "train"] = Field(
        "cohort", description="Survival bin edges from the uncensored patients of the whole table (MCAT) or of "
        "the training fold only.")


class ValidationConfig(_Section):
    """Validation of the omics models on published TCGA-GBMLGG tables under their original protocols."""

    pf_dir: str | None = Field(None, description="Folder with Pathomic Fusion's all_dataset.csv, grade_data.csv "
                               "and pnas_splits.csv; null: the PF protocol is not run.")
    mcat_dir: str | None = Field(None, description="Folder with MCAT's tcga_gbmlgg_all_clean.csv.zip, "
                                 "signatures.csv and splits/5foldcv/tcga_gbmlgg/; null: the MCAT protocol is not run.")
    tolerance: float = Field(0.015, ge=0, description="A result matches when it is within this of the published "
                             "value (or better).")
    pf: PFValidationConfig = PFValidationConfig()
    mcat: MCATValidationConfig = MCATValidationConfig()


class PredictConfig(_Section):
    """Applying an exported model bundle to new patients (``gliofuse predict``, the ``predict`` target)."""

    max_missing_gene_fraction: float = Field(
        0.1, ge=0.0, le=1.0, description="Largest fraction of a bundle's model genes that may be absent from the new "
        "expression matrix; they are filled with the training mean (z = 0) and listed in predict_info.json. More "
        "missing genes: refused, naming the count and some of the genes.")
    features_dir: str | None = Field(
        None, description="Folder of the new cohort's slide feature files (<slide>.h5, contract §5, the bundle's "
        "encoder) for the `predict` target; None: the target only serves omics-only models.")
    slides: str | None = Field(
        None, description="The new cohort's slide sheet (patient_id, slide_id, slide_path): the patient of each "
        "feature file <slide_id>.h5 for the `predict` target (e.g. results/cohort/slides.tsv to predict the "
        "development cohort); None: the first 12 characters of the file name (TCGA barcodes).")
    omics: str | None = Field(
        None, description="The new cohort's expression matrix (contract §6) for the `predict` target; None: the "
        "target only serves WSI-only models.")
    wsi_dir: str | None = Field(
        None, description="The new cohort's wsi_patch outputs (thumbnails/<slide>.jpg, coords/<slide>.h5): the "
        "`predict` target then draws attention heatmaps per patient (attention models); None: scores only.")
    drop_incomplete: bool = Field(
        False, description="Leave out (and list) patients missing a modality the model reads; False: refuse, naming "
        "the patient and the modality.")


class GliofuseConfig(_Section):
    """Root configuration (config.yaml)."""

    cohort: Cohort = Field(Cohort.demo, description="'demo': embedded synthetic cohort; 'tcga': GDC downloads under "
                           "data_root; 'sheet': your own slides and clinical table (section sheet).")
    data_root: str | None = Field(
        None, description="Folder with slides/, rnaseq/, metadata/ in GDC layout. None: results/demo (demo), "
        "results/gdc (tcga) or the slide sheet's folder (sheet).")
    seed: int = Field(1337, ge=0, description="Global random seed.")
    demo: DemoConfig = DemoConfig()
    gdc: GdcConfig = GdcConfig()
    sheet: CohortSheetConfig = CohortSheetConfig()
    labels: LabelsConfig = LabelsConfig()
    omics: OmicsConfig = OmicsConfig()
    wsi: WsiConfig = WsiConfig()
    features: FeaturesConfig = FeaturesConfig()
    data: DataConfig = DataConfig()
    training: TrainingConfig = TrainingConfig()
    evaluation: EvaluationConfig = EvaluationConfig()
    report: ReportConfig = ReportConfig()
    validation: ValidationConfig = ValidationConfig()
    predict: PredictConfig = PredictConfig()
    external: dict[Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]*$")], CohortSheetConfig] = Field(
        {}, description="External validation cohorts by name (a letter or digit, then letters, digits, '_' or "
        "'-'): each a slide sheet, clinical table and expression matrix like section sheet. The development "
        "models are applied to them frozen; their outputs go under results/external/<name>/.")

    @field_validator("external")
    @classmethod
    def _external_complete(cls, value: dict[str, CohortSheetConfig]) -> dict[str, CohortSheetConfig]:
        for name, ext in value.items():
            unset = [k for k in ("slides", "clinical") if not getattr(ext, k)]
            if unset:
                raise ValueError(f"external cohort {name!r} needs {' and '.join(unset)} (its slide sheet and "
                                 "clinical table)")
        return value

    def sheet_files(self) -> tuple[str, str]:
        """(sheet.slides, sheet.clinical) of ``cohort: sheet``; ConfigError naming the unset key. Checked by the
        Snakefile, not at validation, since stage snapshots other than labels' do not hold the sheet section."""
        unset = [f"sheet.{k}" for k in ("slides", "clinical") if not getattr(self.sheet, k)]
        if self.cohort != Cohort.sheet or unset:
            raise ConfigError(f"cohort: sheet needs {' and '.join(unset) or 'cohort: sheet'} (the paths of your "
                              "slide sheet and clinical table; see README 'Your own cohort').")
        if self.labels.molecular_table or self.labels.survival_source != "clinical":
            raise ConfigError("labels.molecular_table and labels.survival_source: molecular_table belong to the "
                              "TCGA route; with cohort: sheet, survival and markers come from sheet.clinical "
                              "(map them in sheet.columns) - remove these labels keys.")
        return str(self.sheet.slides), str(self.sheet.clinical)

    def resolved_data_root(self) -> Path:
        if self.data_root is not None:
            return Path(self.data_root)
        if self.cohort == Cohort.sheet and self.sheet.slides:
            return Path(self.sheet.slides).parent
        return Path("results/demo" if self.cohort == Cohort.demo else "results/gdc")


def _format_validation_error(exc: ValidationError, source: str) -> str:
    lines = [f"invalid configuration in {source}:"]
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"])
        if err["type"] == "extra_forbidden":
            lines.append(f"  {loc}: unknown key. Remove it or fix its spelling (see workflow/schemas/config.schema.yaml).")
        else:
            lines.append(f"  {loc} = {str(err.get('input'))[:60]!r}: {err['msg']}.")
    return "\n".join(lines)


def parse_config(data: dict[str, Any] | None, *, source: str = "<dict>") -> GliofuseConfig:
    """Validate a config mapping; errors name the dotted key and the fix."""
    try:
        return GliofuseConfig.model_validate(data or {})
    except ValidationError as exc:
        raise ConfigError(_format_validation_error(exc, source)) from None


def load_config(path: str | Path) -> GliofuseConfig:
    """Load ``config.yaml`` or a stage snapshot into a validated ``GliofuseConfig``."""
    p = Path(path)
    if not p.exists():
        raise ConfigError(f"config file not found: {p}. Pass the root config.yaml or results/config/<section>.yaml.")
    try:
        data = yaml.safe_load(p.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {p} is not valid YAML: {exc}") from None
    if data is not None and not isinstance(data, dict):
        raise ConfigError(f"config file {p} must hold a mapping at the top level, got {type(data).__name__}.")
    return parse_config(data, source=str(p))


def section_snapshot(config: dict[str, Any], section: str) -> dict[str, Any]:
    """The part of a (validated) config dict a stage depends on: top-level scalars plus one section."""
    if section not in SECTIONS:
        raise ConfigError(f"unknown config section {section!r}; expected one of {SECTIONS}.")
    snap = {k: v for k, v in config.items() if k not in SECTIONS}
    for name in (section, *SNAPSHOT_INCLUDES.get(section, ())):
        snap[name] = config.get(name, {})
    return snap
