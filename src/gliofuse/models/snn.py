"""Self-normalising network over an expression profile (omics branch)."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import TYPE_CHECKING

from torch import Tensor, nn

from gliofuse.models.base import FusionModel, ModelOutput, require_input
from gliofuse.models.layers import SNNBlock
from gliofuse.models.registry import KNOWN_TASKS, register_model

if TYPE_CHECKING:
    from gliofuse.data.datasets import Batch

SNN_REFERENCE = "Klambauer et al., Self-normalizing neural networks, NeurIPS 2017, arXiv:1706.02515"


class SNNEncoder(nn.Sequential):
    """Expression (B, G) -> embedding (B, hidden_dims[-1]) through stacked :class:`SNNBlock`."""

    def __init__(self, in_dim: int, hidden_dims: Sequence[int], dropout: float) -> None:
        dims = [in_dim, *[int(h) for h in hidden_dims]]
        if len(dims) < 2:
            raise ValueError("SNNEncoder needs at least one hidden layer (hidden_dims).")
        super().__init__(*[SNNBlock(a, b, dropout) for a, b in itertools.pairwise(dims)])
        self.embed_dim = dims[-1]

    def forward(self, x: Tensor) -> Tensor:
        return super().forward(x)


class SNN(FusionModel):
    """Omics-only self-normalising network."""

    def __init__(self, *, omics_dim: int, hidden_dims: Sequence[int], dropout: float) -> None:
        super().__init__()
        self.encoder = SNNEncoder(omics_dim, hidden_dims, dropout)
        self.embed_dim = self.encoder.embed_dim

    def forward(self, batch: Batch) -> ModelOutput:
        z = self.encoder(require_input(batch.omics, "omics", "snn").float())
        return ModelOutput(embedding=z, modality_embeddings={"omics": z})


def _create_snn(*, input_dims: dict[str, int], hidden_dims: Sequence[int], dropout: float) -> SNN:
    return SNN(omics_dim=input_dims["omics"], hidden_dims=list(hidden_dims), dropout=float(dropout))


@register_model(family="snn", modalities=("omics",), tasks=KNOWN_TASKS, reference=SNN_REFERENCE,
                defaults={"hidden_dims": [256, 256], "dropout": 0.25},
                notes="Linear+SELU+AlphaDropout blocks with LeCun-normal init; input is the train-fold "
                      "z-scored top-variance genes.")
def snn(*, input_dims: dict[str, int], **kwargs: object) -> FusionModel:
    return _create_snn(input_dims=input_dims, **kwargs)  # type: ignore[arg-type]
