"""Typed configuration: one pydantic model per stage, composed into ``GliofuseConfig``.

The root ``config.yaml`` and every per-stage snapshot (``results/config/<section>.yaml``)
have this shape. ``gliofuse config schema`` exports the JSON schema that the Snakefile
validates against (``workflow/schemas/config.schema.yaml``); a test keeps the two in sync.

Modules: ``base`` (the section base model), ``cohort`` (demo, gdc, sheet, labels, omics), ``slides``
(wsi, features), ``training`` (data, the epoch loop, training), ``evaluation`` (evaluation, report),
``validation`` (the published-table protocols), ``predict``, and ``root`` (``GliofuseConfig``, parsing,
loading, per-stage snapshots). Import every name from ``gliofuse.config``.
"""

from gliofuse.config.cohort import (
    ClinicalColumns,
    CohortSheetConfig,
    DemoConfig,
    ExpressionMatrixConfig,
    ExternalSiteConfig,
    GdcConfig,
    LabelsConfig,
    OmicsConfig,
)
from gliofuse.config.evaluation import EvaluationConfig, ReportConfig, resolve_reference_model
from gliofuse.config.predict import PredictConfig
from gliofuse.config.root import (
    SECTIONS,
    SNAPSHOT_INCLUDES,
    Cohort,
    GliofuseConfig,
    load_config,
    parse_config,
    section_snapshot,
)
from gliofuse.config.slides import FeaturesConfig, WsiConfig
from gliofuse.config.training import (
    DataConfig,
    EpochSelection,
    LrSchedule,
    OptimConfig,
    Optimizer,
    SurvivalLoss,
    Task,
    TrainingConfig,
)
from gliofuse.config.validation import (
    MCATValidationConfig,
    PFValidationConfig,
    ValidationConfig,
    ValidationProtocolConfig,
)

__all__ = [
    "SECTIONS", "SNAPSHOT_INCLUDES", "ClinicalColumns", "Cohort", "CohortSheetConfig", "DataConfig", "DemoConfig",
    "EpochSelection", "EvaluationConfig", "ExpressionMatrixConfig", "ExternalSiteConfig", "FeaturesConfig",
    "GdcConfig", "GliofuseConfig", "LabelsConfig", "LrSchedule", "MCATValidationConfig", "OmicsConfig",
    "OptimConfig", "Optimizer", "PFValidationConfig", "PredictConfig", "ReportConfig", "SurvivalLoss", "Task",
    "TrainingConfig", "ValidationConfig", "ValidationProtocolConfig", "WsiConfig",
    "load_config", "parse_config", "resolve_reference_model", "section_snapshot",
]
