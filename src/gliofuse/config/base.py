"""The base model of every config section: unknown keys are refused, attribute docstrings become descriptions."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)
