"""Typed configuration: one pydantic model per stage, composed into ``GliofuseConfig``.

The root ``config.yaml`` and every per-stage snapshot (``results/config/<section>.yaml``)
have this shape. ``gliofuse config schema`` exports the JSON schema that the Snakefile
validates against (``workflow/schemas/config.schema.yaml``); a test keeps the two in sync.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from gliofuse.errors import ConfigError

SECTIONS: tuple[str, ...] = (
    "demo", "labels", "omics", "wsi", "features", "data", "training", "evaluation", "report",
)


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)


class Cohort(StrEnum):
    demo = "demo"
    tcga = "tcga"


class Task(StrEnum):
    survival = "survival"
    grade = "grade"
    diagnosis = "diagnosis"


class DemoConfig(_Section):
    """The embedded synthetic TCGA-like cohort (used when ``cohort: demo``)."""

    n_patients: int = Field(48, ge=6, le=2000, description="Number of synthetic patients.")
    frac_two_slides: float = Field(0.25, ge=0, le=1, description="Fraction of patients with two diagnostic slides.")
    frac_40x: float = Field(0.5, ge=0, le=1, description="Fraction of slides scanned at 40x (0.25 um/px); others 20x (0.5 um/px).")
    slide_width_um: float = Field(1100.0, gt=100, le=20000, description="Physical slide width in micrometres.")
    slide_height_um: float = Field(800.0, gt=100, le=20000, description="Physical slide height in micrometres.")
    n_genes: int = Field(600, ge=50, le=70000, description="Genes per STAR counts file (plus the four N_* rows).")
    censoring_fraction: float = Field(0.35, ge=0, lt=1, description="Approximate fraction of censored patients.")


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
    """Tissue segmentation and patching."""

    target_mpp: float = Field(0.5, gt=0, le=16, description="Microns per pixel to tile at (0.5 ~ 20x).")
    patch_px: int = Field(256, ge=32, le=4096, description="Patch side in pixels at target_mpp.")
    seg_mpp: float = Field(8.0, gt=0, description="Resolution (um/px) at which the tissue mask is computed.")
    saturation_threshold: int | None = Field(
        None, ge=0, le=255, description="HSV saturation threshold; None: Otsu's threshold per slide.")
    median_blur_px: int = Field(7, ge=1, description="Median filter size (odd, mask pixels).")
    close_um: float = Field(32.0, ge=0, description="Morphological closing radius in micrometres.")
    min_tissue_area_um2: float = Field(20000.0, ge=0, description="Drop tissue regions smaller than this (um^2).")
    min_tissue_fraction: float = Field(0.5, ge=0, le=1, description="Keep patches whose tissue fraction is at least this.")
    default_mpp: float | None = Field(
        None, gt=0, description="mpp for slides with no mpp metadata; None: such slides are skipped with a reason.")


class FeaturesConfig(_Section):
    """Patch feature extraction."""

    encoder: str = Field("test_resnet", description="Encoder name (gliofuse encoder registry or timm model name).")
    weights: str | None = Field(None, description="Local weights file (safetensors/pth); None: random init (tests only).")
    batch_size: int = Field(32, ge=1, description="Patches per forward pass.")
    device: str = Field("auto", pattern="^(auto|cpu|cuda(:\\d+)?)$", description="Torch device.")
    precision: str = Field("fp32", pattern="^(fp32|bf16|fp16)$", description="Autocast precision on GPU.")
    max_patches_per_slide: int | None = Field(None, ge=1, description="Random subsample of patches per slide (seeded).")


class DataConfig(_Section):
    """Patient-level cross-validation splits."""

    n_folds: int = Field(5, ge=2, le=20, description="Number of cross-validation folds.")
    val_fraction: float = Field(0.15, ge=0, lt=0.5, description="Fraction of each training fold held out for early stopping.")
    stratify_by: str = Field("diagnosis", pattern="^(diagnosis|grade|event|none)$", description="Label to stratify folds by.")


class TrainingConfig(_Section):
    """Model training (one job per model x task x fold)."""

    models: list[str] = Field(["abmil_snn_concat"], min_length=1, description="Registered model names (gliofuse models list).")
    tasks: list[Task] = Field([Task.survival, Task.grade, Task.diagnosis], min_length=1, description="Tasks to train.")
    epochs: int = Field(30, ge=1, description="Maximum epochs.")
    batch_size: int = Field(16, ge=1, description="Patients per optimisation step.")
    lr: float = Field(5e-4, gt=0, description="AdamW learning rate.")
    weight_decay: float = Field(1e-4, ge=0, description="AdamW weight decay.")
    patience: int = Field(8, ge=1, description="Early stopping patience in epochs (on validation loss).")
    max_patches: int = Field(512, ge=1, description="Patches sampled per patient bag in training (all at inference).")
    n_top_genes: int = Field(256, ge=1, description="Most variable genes (on the training fold) fed to omics branches.")
    device: str = Field("auto", pattern="^(auto|cpu|cuda(:\\d+)?)$", description="Torch device.")
    model_overrides: dict[str, dict[str, Any]] = Field(
        {}, description="Per-model hyper-parameter overrides: {model_name: {param: value}}.")


class EvaluationConfig(_Section):
    """Metrics and statistics from prediction files."""

    n_bootstrap: int = Field(200, ge=0, description="Bootstrap resamples for confidence intervals (0: none).")


class ReportConfig(_Section):
    """HTML report."""

    title: str = Field("gliofuse report", description="Report title.")


class GliofuseConfig(_Section):
    """Root configuration (config.yaml)."""

    cohort: Cohort = Field(Cohort.demo, description="'demo': embedded synthetic cohort; 'tcga': GDC downloads under data_root.")
    data_root: str | None = Field(
        None, description="Folder with slides/, rnaseq/, metadata/ in GDC layout. None: results/demo (demo) or results/gdc (tcga).")
    seed: int = Field(1337, ge=0, description="Global random seed.")
    demo: DemoConfig = DemoConfig()
    labels: LabelsConfig = LabelsConfig()
    omics: OmicsConfig = OmicsConfig()
    wsi: WsiConfig = WsiConfig()
    features: FeaturesConfig = FeaturesConfig()
    data: DataConfig = DataConfig()
    training: TrainingConfig = TrainingConfig()
    evaluation: EvaluationConfig = EvaluationConfig()
    report: ReportConfig = ReportConfig()

    def resolved_data_root(self) -> Path:
        if self.data_root is not None:
            return Path(self.data_root)
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
    snap[section] = config.get(section, {})
    return snap


def json_schema() -> dict[str, Any]:
    """JSON schema (draft 2020-12) of the root config, with model names as an enum."""
    schema = GliofuseConfig.model_json_schema(mode="validation")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    from gliofuse.models.registry import list_models  # deferred: imports torch

    names = list_models()
    models_prop = schema["$defs"]["TrainingConfig"]["properties"]["models"]
    models_prop["items"] = {"type": "string", "enum": names}
    return schema


def schema_yaml() -> str:
    """The exported schema as YAML text (what workflow/schemas/config.schema.yaml holds)."""
    header = "# Generated by `gliofuse config schema`; do not edit by hand (tests check it is in sync).\n"
    return header + yaml.safe_dump(json_schema(), sort_keys=False, width=120)
