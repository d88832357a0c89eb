"""Registered ablations and the model each ablates: the torch-free name -> parent table.

An ablation trains with every training setting (``training.model_training.<parent>``) and model override
(``training.model_overrides.<parent>``) of its parent, except the ablated switch, unless the config names the
ablation itself (its own keys win, key by key): see :meth:`gliofuse.config.TrainingConfig.for_model`.
The model registry checks at registration that every card's ``ablation_of`` agrees with this table, so
config code can resolve parents without importing models (and torch).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Ablation:
    """One ablation.

    Attributes
    ----------
    parent : registered name of the full model it ablates.
    training : training settings the ablation itself switches (applied over the parent's); model-level switches
        are fixed by the ablation's registry function, and the parent's model overrides the ablation's card does
        not accept (the ablated component's parameters) are dropped.
    """

    parent: str
    training: dict[str, Any] = field(default_factory=dict)


ABLATIONS: dict[str, Ablation] = {
    "subspace_fusion_no_split": Ablation("subspace_fusion"),
    "subspace_fusion_no_deform": Ablation("subspace_fusion"),
    "subspace_fusion_no_cons": Ablation("subspace_fusion"),
    "subspace_fusion_no_gc": Ablation("subspace_fusion"),
    "path_gptomic_no_gm": Ablation("path_gptomic"),
    "path_gptomic_no_fm": Ablation("path_gptomic"),
    "m2f_uncertainty": Ablation("m2f"),
    "m2f_single_task": Ablation("m2f", training={"multitask": False}),
}
"""``{ablation name: Ablation}`` of every registered ablation (``ModelCard.ablation_of``)."""


def parent_of(name: str) -> str | None:
    """The model ``name`` ablates, or None."""
    entry = ABLATIONS.get(name)
    return entry.parent if entry else None
