"""Settings of the evaluation (metrics, bootstrap, the reference model) and of the HTML report."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field, field_validator

from gliofuse.config.base import _Section
from gliofuse.errors import ConfigError


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
