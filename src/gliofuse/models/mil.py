"""Multiple-instance learning over patch features (WSI branch).

Layout: blocks, then the model class, then ``_create_abmil``, then the registered variants.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from torch import Tensor, nn

from gliofuse.models.base import FusionModel, ModelOutput, require_input
from gliofuse.models.layers import GatedAttentionPooling
from gliofuse.models.registry import register_model
from gliofuse.tasks import TASK_NAMES

if TYPE_CHECKING:
    from gliofuse.data.batch import Batch

ABMIL_REFERENCE = "Ilse et al., Attention-based deep multiple instance learning, ICML 2018, arXiv:1802.04712"


class ABMILEncoder(nn.Module):
    """Patch features (B, N, D) + mask (B, N) -> bag embedding (B, embed_dim).

    Instance projection ``Linear(D, embed_dim) -> ReLU -> Dropout``, then gated attention pooling.
    """

    def __init__(self, in_dim: int, embed_dim: int, attn_dim: int, dropout: float) -> None:
        super().__init__()
        self.embed_dim = embed_dim
        self.instance = nn.Sequential(nn.Linear(in_dim, embed_dim), nn.ReLU(), nn.Dropout(dropout))
        self.pool = GatedAttentionPooling(embed_dim, attn_dim, dropout=dropout)

    def forward(self, bags: Tensor, mask: Tensor | None) -> tuple[Tensor, Tensor]:
        """Returns ``(embedding (B, embed_dim), attention (B, N))``."""
        return self.pool(self.instance(bags), mask)


class ABMIL(FusionModel):
    """WSI-only gated-attention MIL model; ``ModelOutput.attention`` holds the pooling weights (B, N)."""

    def __init__(self, *, wsi_dim: int, embed_dim: int, attn_dim: int, dropout: float) -> None:
        super().__init__()
        self.encoder = ABMILEncoder(wsi_dim, embed_dim, attn_dim, dropout)
        self.embed_dim = embed_dim

    def forward(self, batch: Batch) -> ModelOutput:
        bags = require_input(batch.wsi, "wsi", "abmil")
        z, attn = self.encoder(bags.float(), batch.wsi_mask)
        return ModelOutput(embedding=z, modality_embeddings={"wsi": z}, attention=attn)


def _create_abmil(*, input_dims: dict[str, int], embed_dim: int, attn_dim: int, dropout: float) -> ABMIL:
    return ABMIL(wsi_dim=input_dims["wsi"], embed_dim=int(embed_dim), attn_dim=int(attn_dim),
                 dropout=float(dropout))


@register_model(family="mil", modalities=("wsi",), tasks=TASK_NAMES, reference=ABMIL_REFERENCE,
                defaults={"embed_dim": 128, "attn_dim": 64, "dropout": 0.25},
                notes="Gated attention (Eq. 9) over pre-extracted patch embeddings; the instance "
                      "projection replaces the paper's CNN feature extractor.")
def abmil(*, input_dims: dict[str, int], **kwargs: float) -> FusionModel:
    return _create_abmil(input_dims=input_dims, **kwargs)
