"""TransMIL: transformer-based correlated multiple-instance learning over patch features (WSI only).

Layout: the model class, then ``_create_transmil``, then the registered variant.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

from gliofuse.models.attention import PPEG, SELF_ATTENTION_MAX_PATCHES, TransformerBlock
from gliofuse.models.base import FusionModel, ModelOutput, require_input
from gliofuse.models.registry import register_model
from gliofuse.tasks import TASK_NAMES

if TYPE_CHECKING:
    from gliofuse.data.batch import Batch

TRANSMIL_REFERENCE = ("Shao et al., TransMIL: Transformer based correlated multiple instance learning for whole "
                      "slide image classification, NeurIPS 2021, arXiv:2106.00908")


class TransMIL(FusionModel):
    """Patch features (B, N, D) -> class-token embedding (B, dim).

    ``Linear(D, dim) + ReLU`` per patch, a learned class token, transformer layer 1, PPEG on the
    patch tokens laid out on a square grid, transformer layer 2, LayerNorm; the embedding is the
    class token. ``attention`` (B, N): the last layer's class-token attention over the patches
    (mean over heads, renormalised over the real patches).
    """

    def __init__(self, *, wsi_dim: int, dim: int, heads: int, ff_mult: int, dropout: float) -> None:
        super().__init__()
        self.embed = nn.Sequential(nn.Linear(wsi_dim, dim), nn.ReLU(), nn.Dropout(dropout))
        self.cls = nn.Parameter(torch.zeros(1, 1, dim))
        nn.init.normal_(self.cls, std=0.02)
        self.layer1 = TransformerBlock(dim, heads, ff_mult * dim, dropout)
        self.ppeg = PPEG(dim)
        self.layer2 = TransformerBlock(dim, heads, ff_mult * dim, dropout)
        self.norm = nn.LayerNorm(dim)
        self.embed_dim = dim

    def forward(self, batch: Batch) -> ModelOutput:
        bags = require_input(batch.wsi, "wsi", "transmil").float()
        b, n, _ = bags.shape
        mask = batch.wsi_mask if batch.wsi_mask is not None else torch.ones(b, n, dtype=torch.bool, device=bags.device)
        h = torch.cat([self.cls.expand(b, -1, -1), self.embed(bags)], dim=1)
        full = torch.cat([torch.ones_like(mask[:, :1]), mask], dim=1)
        h, _ = self.layer1(h, full)
        h = torch.cat([h[:, :1], self.ppeg(h[:, 1:], mask)], dim=1)
        h, weights = self.layer2(h, full)
        z = self.norm(h[:, 0])
        attn = weights[:, :, 0, 1:].mean(dim=1) * mask
        attn = attn / attn.sum(dim=1, keepdim=True).clamp_min(1e-12)
        return ModelOutput(embedding=z, modality_embeddings={"wsi": z}, attention=attn)


def _create_transmil(*, input_dims: dict[str, int], dim: int, heads: int, ff_mult: int, dropout: float) -> TransMIL:
    return TransMIL(wsi_dim=int(input_dims["wsi"]), dim=int(dim), heads=int(heads), ff_mult=int(ff_mult),
                    dropout=float(dropout))


@register_model(family="mil", modalities=("wsi",), tasks=TASK_NAMES, reference=TRANSMIL_REFERENCE,
                defaults={"dim": 256, "heads": 8, "ff_mult": 2, "dropout": 0.1},
                max_inference_patches=SELF_ATTENTION_MAX_PATCHES,
                notes="Two transformer layers with PPEG between them over pre-extracted patch features. Deviations: "
                      "Nystrom attention is replaced by exact multi-head self-attention (training bags are sampled; "
                      "inference bags are capped at 4,096 patches unless training.inference_max_patches is set); "
                      "each bag is laid out on its own ceil(sqrt(n)) square with empty cells zero (the original "
                      "repeats the first patches to fill the square), so a patient's output is independent of the "
                      "padding and of the batch; pre-norm layers with a GELU feed-forward block (2 x dim).")
def transmil(*, input_dims: dict[str, int], **kwargs: object) -> FusionModel:
    return _create_transmil(input_dims=input_dims, **kwargs)  # type: ignore[arg-type]
