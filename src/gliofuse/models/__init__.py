"""Fusion models: a timm-style registry of WSI, omics and multi-modal encoders.

Importing this package imports every family module, so that ``@register_model`` runs and
:func:`gliofuse.models.registry.list_models` sees every name (importing
``gliofuse.models.registry`` imports this package first).
"""

from __future__ import annotations

from gliofuse.models.registry import ModelCard, create_model, get_model_card, list_models, register_model

# Family modules: imported for their registration side effect. Add new families here.
from gliofuse.models import mil, snn, fusion, subspace, transmil, pathomic, mcat, m2f, path_gptomic  # noqa: F401  isort: skip

__all__ = ["ModelCard", "create_model", "get_model_card", "list_models", "register_model"]
