"""The one interface every fusion model implements."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from torch import Tensor, nn

if TYPE_CHECKING:
    from gliofuse.data.batch import Batch
    from gliofuse.models.registry import ModelCard


@dataclass
class ModelOutput:
    """What a model returns; task heads and losses live elsewhere.

    Attributes
    ----------
    embedding : Tensor, shape = (B, embed_dim)
        Patient embedding fed to the task head.
    modality_embeddings : dict[str, Tensor]
        Per-modality embeddings, each shape = (B, D_m), keyed ``"wsi"`` / ``"omics"``
        (read by gradient policies and analyses).
    aux_losses : dict[str, Tensor]
        Architecture-specific scalar losses, added to the task loss by the harness.
    attention : Tensor or None, shape = (B, N)
        Optional per-instance (patch) weights over ``batch.wsi``'s N instances (padding: 0), e.g.
        the attention-pooling weights of MIL models; written per patient by prediction for the
        attention heatmaps (docs/data-contracts.md §10). ``None`` when the model has none.
    """

    embedding: Tensor
    modality_embeddings: dict[str, Tensor] = field(default_factory=dict)
    aux_losses: dict[str, Tensor] = field(default_factory=dict)
    attention: Tensor | None = None


class FusionModel(nn.Module):
    """Base class: maps a :class:`~gliofuse.data.batch.Batch` to a :class:`ModelOutput`.

    Subclasses set ``embed_dim`` and implement ``forward``. They never compute task losses,
    hold an optimiser, or know about labels, devices or files. ``card`` is attached by
    :func:`gliofuse.models.registry.create_model`.
    """

    card: ModelCard | None
    embed_dim: int

    def __init__(self) -> None:
        super().__init__()
        self.card = None
        self.embed_dim = 0

    def forward(self, batch: Batch) -> ModelOutput:  # pragma: no cover - abstract
        raise NotImplementedError

    def gradient_groups(self) -> dict[str, list[nn.Parameter]]:
        """Named parameter groups (per modality branch) for gradient policies; default: one group."""
        return {"all": [p for p in self.parameters() if p.requires_grad]}

    def embedding_parts(self) -> dict[str, slice]:
        """Column slices of ``ModelOutput.embedding`` that are the named ``modality_embeddings``.

        A model whose embedding is a plain concatenation ``[z_a ; z_b]`` declares
        ``{"a": slice(0, d_a), "b": slice(d_a, d_a + d_b)}`` so that gradient policies can split the
        head's weight into per-part blocks. Default: ``{}`` (not a concatenation).
        """
        return {}

    def gradient_policies(self) -> list[tuple[str, dict[str, Any]]]:
        """Gradient policies the architecture asks for: ``[(policy name, options), ...]``.

        A declaration only; :func:`gliofuse.training.policies.build_policies` builds the objects, so
        the model never touches optimisers or gradients. Default: none.
        """
        return []

    def loss_weighting(self) -> str:
        """How the harness combines multi-task losses: ``"fixed"`` (``training.loss_weights``, default) or
        ``"uncertainty"`` (learned log-variances, :mod:`gliofuse.training.weighting`). A declaration only."""
        return "fixed"

    def bind_omics_genes(self, genes: Mapping[str, Sequence[str]]) -> None:
        """Receive the gene identifiers of the omics inputs: ``{"omics": [...], "omics:<set>": [...]}``.

        Symbols or Ensembl ids of the columns of ``batch.omics`` / ``batch.omics_sets[set]``, in column
        order. Only models that look genes up (e.g. in a foundation gene-embedding table) use it;
        default: ignored.
        """
        del genes


def require_input(x: Tensor | None, name: str, model: str) -> Tensor:
    """Return ``x`` or raise a ValueError saying which batch field the model needs."""
    if x is None:
        raise ValueError(f"model {model!r} needs batch.{name}, but the batch has none. "
                         f"Build the dataset with the {name.split('_')[0]} modality.")
    return x
