"""Late fusion of a WSI branch (ABMIL) and an omics branch (SNN)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch

from gliofuse.models.base import FusionModel, ModelOutput, require_input
from gliofuse.models.layers import mlp
from gliofuse.models.mil import ABMILEncoder
from gliofuse.models.registry import register_model
from gliofuse.models.snn import SNNEncoder
from gliofuse.tasks import TASK_NAMES

if TYPE_CHECKING:
    from torch import nn

    from gliofuse.data.batch import Batch


class ConcatFusion(FusionModel):
    """``MLP([ABMIL(wsi) ; SNN(omics)])``: embeddings concatenated, then Linear+ReLU+Dropout.

    ``ModelOutput.attention`` holds the WSI branch's gated-attention pooling weights (B, N).
    """

    def __init__(self, *, wsi_dim: int, omics_dim: int, wsi_embed_dim: int, attn_dim: int,
                 omics_hidden_dims: Sequence[int], fusion_dim: int, dropout: float) -> None:
        super().__init__()
        self.wsi = ABMILEncoder(wsi_dim, wsi_embed_dim, attn_dim, dropout)
        self.omics = SNNEncoder(omics_dim, omics_hidden_dims, dropout)
        self.fuse = mlp(self.wsi.embed_dim + self.omics.embed_dim, [fusion_dim], dropout)
        self.embed_dim = int(fusion_dim)

    def forward(self, batch: Batch) -> ModelOutput:
        z_wsi, attn = self.wsi(require_input(batch.wsi, "wsi", "abmil_snn_concat").float(), batch.wsi_mask)
        z_omics = self.omics(require_input(batch.omics, "omics", "abmil_snn_concat").float())
        z = self.fuse(torch.cat([z_wsi, z_omics], dim=1))
        return ModelOutput(embedding=z, modality_embeddings={"wsi": z_wsi, "omics": z_omics}, attention=attn)

    def gradient_groups(self) -> dict[str, list[nn.Parameter]]:
        return {"wsi": list(self.wsi.parameters()), "omics": list(self.omics.parameters()),
                "fusion": list(self.fuse.parameters())}


def _create_concat(*, input_dims: dict[str, int], wsi_embed_dim: int, attn_dim: int,
                   omics_hidden_dims: Sequence[int], fusion_dim: int, dropout: float) -> ConcatFusion:
    return ConcatFusion(wsi_dim=input_dims["wsi"], omics_dim=input_dims["omics"], wsi_embed_dim=int(wsi_embed_dim),
                        attn_dim=int(attn_dim), omics_hidden_dims=list(omics_hidden_dims),
                        fusion_dim=int(fusion_dim), dropout=float(dropout))


@register_model(family="concat_fusion", modalities=("wsi", "omics"), tasks=TASK_NAMES,
                reference="gliofuse late-fusion baseline: ABMIL (arXiv:1802.04712) + SNN (arXiv:1706.02515)",
                defaults={"wsi_embed_dim": 128, "attn_dim": 64, "omics_hidden_dims": [256, 128],
                          "fusion_dim": 128, "dropout": 0.25},
                notes="Unimodal ablations are the registered 'abmil' and 'snn'.")
def abmil_snn_concat(*, input_dims: dict[str, int], **kwargs: object) -> FusionModel:
    return _create_concat(input_dims=input_dims, **kwargs)  # type: ignore[arg-type]
