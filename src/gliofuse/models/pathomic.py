"""Pathomic Fusion: gated Kronecker fusion of a WSI-bag embedding and an SNN omics embedding.

Layout: the model class, then ``_create_pathomic``, then the registered variant.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from torch import nn

from gliofuse.models.attention import GatedKroneckerFusion
from gliofuse.models.base import FusionModel, ModelOutput, require_input
from gliofuse.models.mil import ABMILEncoder
from gliofuse.models.registry import register_model
from gliofuse.models.snn import SNNEncoder
from gliofuse.tasks import TASK_NAMES

if TYPE_CHECKING:
    from gliofuse.data.batch import Batch

PATHOMIC_REFERENCE = ("Chen et al., Pathomic Fusion: an integrated framework for fusing histopathology and genomic "
                      "features for cancer diagnosis and prognosis, IEEE TMI 2020, doi:10.1109/TMI.2020.3021387")


class PathomicFusion(FusionModel):
    """``GatedKronecker(ABMIL(wsi), SNN(omics))`` -> embedding (B, fusion_dim).

    The WSI branch is gated-attention MIL over patch features (the paper's CNN on ROIs is replaced
    by pre-extracted patch features); the omics branch is a self-normalising network. ``attention``
    (B, N) is the WSI branch's pooling weights.
    """

    def __init__(self, *, wsi_dim: int, omics_dim: int, path_dim: int, attn_dim: int,
                 omics_hidden_dims: Sequence[int], fusion_dim: int, dropout: float) -> None:
        super().__init__()
        self.wsi = ABMILEncoder(wsi_dim, path_dim, attn_dim, dropout)
        self.omics = SNNEncoder(omics_dim, omics_hidden_dims, dropout)
        self.fuse = GatedKroneckerFusion(path_dim, self.omics.embed_dim, scale_dim=min(path_dim, self.omics.embed_dim),
                                         out_dim=fusion_dim, dropout=dropout)
        self.embed_dim = int(fusion_dim)

    def forward(self, batch: Batch) -> ModelOutput:
        z_wsi, attn = self.wsi(require_input(batch.wsi, "wsi", "pathomic_fusion").float(), batch.wsi_mask)
        z_omics = self.omics(require_input(batch.omics, "omics", "pathomic_fusion").float())
        z = self.fuse(z_wsi, z_omics)
        return ModelOutput(embedding=z, modality_embeddings={"wsi": z_wsi, "omics": z_omics}, attention=attn)

    def gradient_groups(self) -> dict[str, list[nn.Parameter]]:
        return {"wsi": list(self.wsi.parameters()), "omics": list(self.omics.parameters()),
                "fusion": list(self.fuse.parameters())}


def _create_pathomic(*, input_dims: dict[str, int], path_dim: int, attn_dim: int, omics_hidden_dims: Sequence[int],
                     fusion_dim: int, dropout: float) -> PathomicFusion:
    return PathomicFusion(wsi_dim=int(input_dims["wsi"]), omics_dim=int(input_dims["omics"]), path_dim=int(path_dim),
                          attn_dim=int(attn_dim), omics_hidden_dims=[int(h) for h in omics_hidden_dims],
                          fusion_dim=int(fusion_dim), dropout=float(dropout))


@register_model(family="pathomic", modalities=("wsi", "omics"), tasks=TASK_NAMES, reference=PATHOMIC_REFERENCE,
                defaults={"path_dim": 32, "attn_dim": 32, "omics_hidden_dims": [64, 48, 32, 32], "fusion_dim": 64,
                          "dropout": 0.25},
                notes="Bimodal (histology + genomics) gated Kronecker fusion: bilinear gates, 1-appended 33 x 33 "
                      "outer product, two Linear+ReLU encoders to mmhid 64 with the gated unimodal vectors "
                      "skip-connected. Deviations: the histology CNN on 512 px ROIs is replaced by gated-attention "
                      "MIL over pre-extracted patch features (32-d); the omics SNN (MaxNet 64-48-32-32) reads the "
                      "train-fold z-scored top-variance genes (no CNV/mutation table); SELU blocks; no L1 penalty.")
def pathomic_fusion(*, input_dims: dict[str, int], **kwargs: object) -> FusionModel:
    return _create_pathomic(input_dims=input_dims, **kwargs)  # type: ignore[arg-type]
