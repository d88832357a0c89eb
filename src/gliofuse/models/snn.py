"""Self-normalising network over an expression profile (omics branch)."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import TYPE_CHECKING

from torch import Tensor, nn

from gliofuse.models.base import FusionModel, ModelOutput, require_input
from gliofuse.models.layers import SNNBlock
from gliofuse.models.registry import register_model
from gliofuse.tasks import TASK_NAMES

if TYPE_CHECKING:
    from gliofuse.data.batch import Batch

SNN_REFERENCE = "Klambauer et al., Self-normalizing neural networks, NeurIPS 2017, arXiv:1706.02515"
ACTIVATIONS: dict[str, type[nn.Module]] = {"selu": nn.SELU, "elu": nn.ELU}
"""Block activations: ``selu`` (Klambauer et al.) or ``elu`` (Pathomic Fusion's MaxNet and MCAT's SNN_Block:
Linear -> ELU -> AlphaDropout)."""


class SNNEncoder(nn.Sequential):
    """Expression (B, G) -> embedding (B, hidden_dims[-1]) through stacked :class:`SNNBlock`.

    ``activation``: a key of :data:`ACTIVATIONS`; ``elu`` swaps each block's SELU for ELU (same
    LeCun-normal init and AlphaDropout, as PF's ``init_max_weights`` + ``nn.AlphaDropout``).
    """

    def __init__(self, in_dim: int, hidden_dims: Sequence[int], dropout: float, activation: str = "selu") -> None:
        dims = [in_dim, *[int(h) for h in hidden_dims]]
        if len(dims) < 2:
            raise ValueError("SNNEncoder needs at least one hidden layer (hidden_dims).")
        if activation not in ACTIVATIONS:
            raise ValueError(f"SNN activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}.")
        blocks = [SNNBlock(a, b, dropout) for a, b in itertools.pairwise(dims)]
        if activation != "selu":
            for block in blocks:
                block[1] = ACTIVATIONS[activation]()  # Linear, activation, AlphaDropout
        super().__init__(*blocks)
        self.embed_dim = dims[-1]

    def forward(self, x: Tensor) -> Tensor:
        return super().forward(x)


class SNN(FusionModel):
    """Omics-only self-normalising network."""

    def __init__(self, *, omics_dim: int, hidden_dims: Sequence[int], dropout: float, activation: str = "selu") -> None:
        super().__init__()
        self.encoder = SNNEncoder(omics_dim, hidden_dims, dropout, activation)
        self.embed_dim = self.encoder.embed_dim

    def forward(self, batch: Batch) -> ModelOutput:
        z = self.encoder(require_input(batch.omics, "omics", "snn").float())
        return ModelOutput(embedding=z, modality_embeddings={"omics": z})


def _create_snn(*, input_dims: dict[str, int], hidden_dims: Sequence[int], dropout: float,
                activation: str = "selu") -> SNN:
    return SNN(omics_dim=input_dims["omics"], hidden_dims=list(hidden_dims), dropout=float(dropout),
               activation=str(activation))


@register_model(family="snn", modalities=("omics",), tasks=TASK_NAMES, reference=SNN_REFERENCE,
                defaults={"hidden_dims": [256, 256], "dropout": 0.25, "activation": "selu"},
                notes="Linear+SELU+AlphaDropout blocks with LeCun-normal init (activation: elu gives PF's "
                      "MaxNet / MCAT's SNN_Block); input is the train-fold z-scored top-variance genes.")
def snn(*, input_dims: dict[str, int], **kwargs: object) -> FusionModel:
    return _create_snn(input_dims=input_dims, **kwargs)  # type: ignore[arg-type]
