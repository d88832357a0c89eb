"""The root configuration (:class:`GliofuseConfig`), parsing and loading it with named errors, and the
per-stage snapshots (:func:`section_snapshot`)."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import Field, ValidationError, field_validator

from gliofuse.config.base import _Section
from gliofuse.config.cohort import CohortSheetConfig, DemoConfig, GdcConfig, LabelsConfig, OmicsConfig
from gliofuse.config.evaluation import EvaluationConfig, ReportConfig
from gliofuse.config.predict import PredictConfig
from gliofuse.config.slides import FeaturesConfig, WsiConfig
from gliofuse.config.training import DataConfig, TrainingConfig
from gliofuse.config.validation import ValidationConfig
from gliofuse.errors import ConfigError

SECTIONS: tuple[str, ...] = (
    "demo", "gdc", "sheet", "labels", "omics", "wsi", "features", "data", "training", "evaluation", "report",
    "validation", "predict", "external",
)


SNAPSHOT_INCLUDES: dict[str, tuple[str, ...]] = {"labels": ("sheet",),
                                                  "external": ("labels", "predict", "evaluation")}
"""Sections a stage's snapshot holds besides its own: labels_build reads the clinical columns of ``sheet``;
the external jobs read labels.who2021_strict, the predict settings and the evaluation settings."""


class Cohort(StrEnum):
    demo = "demo"
    tcga = "tcga"
    sheet = "sheet"


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
