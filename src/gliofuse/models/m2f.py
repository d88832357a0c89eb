"""M2F: multi-modal, multi-task fusion of histology and genomics for joint grading and survival.

Layout: the model class, ``_create_m2f``, then the registered variants (the full model, the
uncertainty-weighted loss and the single-task ablation).

Only the abstract of M2F (Lu, Lu and Xia, MMMI @ MICCAI 2022) is available; this is the design of
``specs/pathgptomic_m2f_baselines.md`` §3.2: a co-attention multi-modal transformer extractor
(MCAT-style genomic tokens attending to the patches, a transformer encoder per modality, gated
attention pooling), concat (or Kronecker) fusion, and the grade and survival heads on the shared
embedding. The heads are the harness's task heads: joint training is ``training.multitask: true``
with ``tasks: [survival, grade]`` for this model (``training.model_training.m2f``), and
``L = L_surv + lambda * L_grade`` with ``training.loss_weights: {grade: lambda}`` or, for
``m2f_uncertainty``, learned homoscedastic-uncertainty weights (:mod:`gliofuse.training.weighting`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch

from gliofuse.errors import ConfigError
from gliofuse.models.attention import GatedKroneckerFusion
from gliofuse.models.base import FusionModel, ModelOutput
from gliofuse.models.layers import mlp
from gliofuse.models.mcat import MCAT_GENE_SETS, CoAttentionExtractor, gene_set_dims
from gliofuse.models.registry import register_model
from gliofuse.tasks import TASK_NAMES

if TYPE_CHECKING:
    from gliofuse.data.batch import Batch

M2F_REFERENCE = ("Lu, Lu and Xia, M2F: a multi-modal and multi-task fusion network for glioma diagnosis and "
                 "prognosis, MMMI workshop @ MICCAI 2022, LNCS 13594, doi:10.1007/978-3-031-18814-5_1; "
                 "uncertainty weighting: Kendall, Gal and Cipolla, CVPR 2018, arXiv:1705.07115")
FUSIONS: tuple[str, ...] = ("concat", "kronecker")
WEIGHTINGS: tuple[str, ...] = ("fixed", "uncertainty")


class M2F(FusionModel):
    """Co-attention extractor + fusion -> shared embedding (B, dim) for the grade and survival heads.

    ``fusion="concat"``: ``MLP([z_wsi ; z_omics])``; ``"kronecker"``: gated Kronecker fusion.
    ``attention`` (B, N): each patch's share of the pooled histology embedding.
    """

    def __init__(self, *, wsi_dim: int, gene_dims: dict[str, int], gene_sets: Sequence[str], dim: int, heads: int,
                 coattn_heads: int, layers: int, ff_dim: int, dropout: float, fusion: str,
                 loss_weighting: str) -> None:
        super().__init__()
        if fusion not in FUSIONS:
            raise ConfigError(f"m2f: fusion must be one of {FUSIONS}, got {fusion!r}.")
        if loss_weighting not in WEIGHTINGS:
            raise ConfigError(f"m2f: loss_weighting must be one of {WEIGHTINGS}, got {loss_weighting!r}.")
        self.extractor = CoAttentionExtractor(wsi_dim=wsi_dim, gene_dims=gene_dims, gene_sets=gene_sets, dim=dim,
                                              heads=heads, coattn_heads=coattn_heads, layers=layers, ff_dim=ff_dim,
                                              dropout=dropout)
        self.fusion = fusion
        if fusion == "concat":
            self.fuse: torch.nn.Module = mlp(2 * dim, [dim], dropout)
        else:
            self.fuse = GatedKroneckerFusion(dim, dim, scale_dim=min(dim, 32), out_dim=dim, dropout=dropout)
        self._loss_weighting = loss_weighting
        self.embed_dim = dim

    def forward(self, batch: Batch) -> ModelOutput:
        z_wsi, z_omics, attn = self.extractor(batch, "m2f")
        z = self.fuse(torch.cat([z_wsi, z_omics], dim=1)) if self.fusion == "concat" else self.fuse(z_wsi, z_omics)
        return ModelOutput(embedding=z, modality_embeddings={"wsi": z_wsi, "omics": z_omics}, attention=attn)

    def loss_weighting(self) -> str:
        return self._loss_weighting


def _create_m2f(*, input_dims: dict[str, int], gene_sets: Sequence[str], dim: int, heads: int, coattn_heads: int,
                layers: int, ff_dim: int, dropout: float, fusion: str, loss_weighting: str = "fixed") -> M2F:
    dims = gene_set_dims("m2f", input_dims, gene_sets)
    return M2F(wsi_dim=int(input_dims["wsi"]), gene_dims=dims, gene_sets=list(dims), dim=int(dim), heads=int(heads),
               coattn_heads=int(coattn_heads), layers=int(layers), ff_dim=int(ff_dim), dropout=float(dropout),
               fusion=str(fusion), loss_weighting=str(loss_weighting))


_DEFAULTS = {"gene_sets": MCAT_GENE_SETS, "dim": 256, "heads": 8, "coattn_heads": 1, "layers": 1, "ff_dim": 512,
             "dropout": 0.25, "fusion": "concat"}
_NOTES = ("Design from the abstract only (spec §3.2, an [I] design; no code, no published numbers): genomic tokens = "
          "one SNN per gene set (default the six MCAT families) -> co-attention (genomic queries over the patches) -> "
          "one transformer layer per modality (d 256, 8 heads, ff 512, dropout 0.25) -> gated attention pooling -> "
          "fusion ('concat' MLP or 'kronecker') -> shared embedding for the grade (CE) and survival (Cox or NLL per "
          "training.survival_loss) heads. Joint training needs training.model_training.<name>: {multitask: true, "
          "tasks: [survival, grade]}; lambda = training.loss_weights.grade (default 1). Patients without a grade "
          "are masked out of L_grade.")


@register_model(family="m2f", modalities=("wsi", "omics"), tasks=TASK_NAMES, reference=M2F_REFERENCE,
                defaults={**_DEFAULTS, "loss_weighting": "fixed"}, notes=_NOTES + " Fixed lambda.")
def m2f(*, input_dims: dict[str, int], **kwargs: object) -> FusionModel:
    return _create_m2f(input_dims=input_dims, **kwargs)  # type: ignore[arg-type]


@register_model(family="m2f", modalities=("wsi", "omics"), tasks=TASK_NAMES, reference=M2F_REFERENCE,
                defaults=dict(_DEFAULTS), ablation_of="m2f",
                notes=_NOTES + " Loss weights learned by homoscedastic uncertainty (Kendall et al. 2018): "
                "L = sum_t exp(-s_t) L_t + s_t with one learnable log-variance s_t per task (history.tsv: "
                "log_var_<task>); training.loss_weights are ignored.")
def m2f_uncertainty(*, input_dims: dict[str, int], **kwargs: object) -> FusionModel:
    return _create_m2f(input_dims=input_dims, loss_weighting="uncertainty", **kwargs)  # type: ignore[arg-type]


@register_model(family="m2f", modalities=("wsi", "omics"), tasks=TASK_NAMES, reference=M2F_REFERENCE,
                defaults=dict(_DEFAULTS), ablation_of="m2f",
                notes=_NOTES + " Single-task ablation: the same network trained for the job's task only (leave "
                "training.multitask off for this name), i.e. lambda = 0 for survival jobs and no survival loss for "
                "grade jobs.")
def m2f_single_task(*, input_dims: dict[str, int], **kwargs: object) -> FusionModel:
    return _create_m2f(input_dims=input_dims, **kwargs)  # type: ignore[arg-type]
