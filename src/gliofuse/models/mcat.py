"""MCAT: genomic-guided co-attention between gene-family tokens and WSI patches.

Layout: blocks (genomic tokens, the co-attention extractor shared with :mod:`gliofuse.models.m2f`),
the model class, ``_create_mcat``, then the registered variant.

Genomic tokens: one SNN per gene set of ``gene_sets`` (default: the six MCAT signature families,
``training.gene_sets: [mcat.tumor_suppressor_genes, ...]``), fed by the per-set omics vectors
``batch.omics_sets`` (``input_dims["omics:<set>"]``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

from gliofuse.errors import ConfigError
from gliofuse.models.attention import CoAttention, TokenEncoder
from gliofuse.models.base import FusionModel, ModelOutput, require_input
from gliofuse.models.layers import GatedAttentionPooling, mlp
from gliofuse.models.registry import register_model
from gliofuse.models.snn import ACTIVATIONS, SNNEncoder
from gliofuse.omics.genesets import GROUPS
from gliofuse.tasks import TASK_NAMES

if TYPE_CHECKING:
    from gliofuse.data.batch import Batch

MCAT_REFERENCE = ("Chen et al., Multimodal co-attention transformer for survival prediction in gigapixel whole "
                  "slide images, ICCV 2021, doi:10.1109/ICCV48922.2021.00398")
MCAT_GENE_SETS: list[str] = list(GROUPS["mcat"])
"""The six MCAT signature families as gene-set names (``mcat.<family>``)."""


# ----------------------------------------------------------------------------- blocks
class GenomicTokens(nn.Module):
    """One 2-block SNN per gene set: ``{set: (B, G_s)}`` -> tokens (B, M, dim) in ``gene_sets`` order.

    ``activation``: the blocks' activation, ``"selu"`` or ``"elu"`` (MCAT's ``SNN_Block``).
    """

    def __init__(self, gene_dims: dict[str, int], gene_sets: Sequence[str], dim: int, dropout: float,
                 activation: str = "selu") -> None:
        super().__init__()
        self.gene_sets = tuple(gene_sets)
        self.encoders = nn.ModuleList(SNNEncoder(gene_dims[s], [dim, dim], dropout, activation)
                                      for s in self.gene_sets)

    def forward(self, omics_sets: dict[str, Tensor], model: str) -> Tensor:
        missing = [s for s in self.gene_sets if s not in omics_sets]
        if missing:
            raise ValueError(f"model {model!r} needs batch.omics_sets {list(self.gene_sets)} but the batch has "
                             f"{sorted(omics_sets)}. Add {missing} to training.gene_sets.")
        return torch.stack([enc(omics_sets[s].float()) for s, enc in zip(self.gene_sets, self.encoders, strict=True)],
                           dim=1)


def gene_set_dims(model: str, input_dims: dict[str, int], gene_sets: Sequence[str]) -> dict[str, int]:
    """``{set: G_s}`` from ``input_dims["omics:<set>"]``; a set that was not built raises ``ConfigError``."""
    sets = [str(s) for s in gene_sets]
    if not sets:
        raise ConfigError(f"{model}: gene_sets must name at least one gene set.")
    dims = {s: int(input_dims.get(f"omics:{s}", 0)) for s in sets}
    absent = [s for s, d in dims.items() if d <= 0]
    if absent:
        have = sorted(k.split(":", 1)[1] for k in input_dims if k.startswith("omics:"))
        raise ConfigError(f"{model} needs omics vectors for gene sets {sets}, but {absent} were not built "
                          f"(built: {have}). Add them to training.gene_sets (e.g. the six mcat.* families).")
    return dims


class CoAttentionExtractor(nn.Module):
    """Genomic tokens + WSI patches -> ``(z_wsi (B, dim), z_omics (B, dim), attention (B, N))``.

    1. patches ``Linear(D, dim) + ReLU``; genomic tokens from :class:`GenomicTokens`;
    2. co-attention: genomic queries over the patches -> M genomics-guided histology tokens;
    3. one transformer encoder per modality (over M tokens each), gated attention pooling;
    4. with ``post_pool_fc``, ``Linear(dim, dim) + ReLU + Dropout`` on each pooled embedding (MCAT's
       ``path_rho`` / ``omic_rho``).

    ``snn_activation`` is the genomic SNN blocks' activation (:class:`GenomicTokens`).
    ``attention`` is each patch's share of the pooled histology embedding: the pooling weights
    over the M guided tokens times their co-attention over the patches (rows sum to 1).
    """

    def __init__(self, *, wsi_dim: int, gene_dims: dict[str, int], gene_sets: Sequence[str], dim: int, heads: int,
                 coattn_heads: int, layers: int, ff_dim: int, dropout: float, snn_activation: str = "selu",
                 post_pool_fc: bool = False) -> None:
        super().__init__()
        self.wsi_proj = nn.Sequential(nn.Linear(wsi_dim, dim), nn.ReLU(), nn.Dropout(dropout))
        self.genomic = GenomicTokens(gene_dims, gene_sets, dim, dropout, snn_activation)
        self.coattn = CoAttention(dim, coattn_heads)
        self.path_encoder = TokenEncoder(dim, layers=layers, heads=heads, ff_dim=ff_dim, dropout=dropout)
        self.omics_encoder = TokenEncoder(dim, layers=layers, heads=heads, ff_dim=ff_dim, dropout=dropout)
        self.path_pool = GatedAttentionPooling(dim, dim, dropout=dropout)
        self.omics_pool = GatedAttentionPooling(dim, dim, dropout=dropout)
        self.path_rho: nn.Module = nn.Identity()
        self.omics_rho: nn.Module = nn.Identity()
        if post_pool_fc:
            self.path_rho = nn.Sequential(nn.Linear(dim, dim), nn.ReLU(), nn.Dropout(dropout))
            self.omics_rho = nn.Sequential(nn.Linear(dim, dim), nn.ReLU(), nn.Dropout(dropout))

    def forward(self, batch: Batch, model: str) -> tuple[Tensor, Tensor, Tensor]:
        wsi = self.wsi_proj(require_input(batch.wsi, "wsi", model).float())
        tokens = self.genomic(batch.omics_sets, model)
        guided, coattn = self.coattn(tokens, wsi, batch.wsi_mask)
        z_wsi, pool = self.path_pool(self.path_encoder(guided))
        z_omics, _ = self.omics_pool(self.omics_encoder(tokens))
        attention = torch.bmm(pool.unsqueeze(1), coattn).squeeze(1)
        return self.path_rho(z_wsi), self.omics_rho(z_omics), attention


# ----------------------------------------------------------------------------- model
class MCAT(FusionModel):
    """``MLP([z_wsi ; z_omics])`` of the co-attention extractor -> embedding (B, dim).

    ``snn_activation`` and ``post_pool_fc`` go to :class:`CoAttentionExtractor`.
    """

    def __init__(self, *, wsi_dim: int, gene_dims: dict[str, int], gene_sets: Sequence[str], dim: int, heads: int,
                 layers: int, ff_dim: int, dropout: float, snn_activation: str = "selu",
                 post_pool_fc: bool = False) -> None:
        super().__init__()
        self.extractor = CoAttentionExtractor(wsi_dim=wsi_dim, gene_dims=gene_dims, gene_sets=gene_sets, dim=dim,
                                              heads=heads, coattn_heads=1, layers=layers, ff_dim=ff_dim,
                                              dropout=dropout, snn_activation=snn_activation,
                                              post_pool_fc=post_pool_fc)
        self.fuse = mlp(2 * dim, [dim, dim], dropout)
        self.embed_dim = dim

    def forward(self, batch: Batch) -> ModelOutput:
        z_wsi, z_omics, attn = self.extractor(batch, "mcat")
        z = self.fuse(torch.cat([z_wsi, z_omics], dim=1))
        return ModelOutput(embedding=z, modality_embeddings={"wsi": z_wsi, "omics": z_omics}, attention=attn)


def _create_mcat(*, input_dims: dict[str, int], gene_sets: Sequence[str], dim: int, heads: int, layers: int,
                 ff_dim: int, dropout: float, snn_activation: str = "selu", post_pool_fc: bool = False) -> MCAT:
    if snn_activation not in ACTIVATIONS:
        raise ConfigError(f"mcat: snn_activation must be one of {sorted(ACTIVATIONS)}, got {snn_activation!r}. "
                          "Fix training.model_overrides.mcat.snn_activation.")
    if not isinstance(post_pool_fc, bool):
        raise ConfigError(f"mcat: post_pool_fc must be true or false, got {post_pool_fc!r}.")
    dims = gene_set_dims("mcat", input_dims, gene_sets)
    return MCAT(wsi_dim=int(input_dims["wsi"]), gene_dims=dims, gene_sets=list(dims), dim=int(dim), heads=int(heads),
                layers=int(layers), ff_dim=int(ff_dim), dropout=float(dropout), snn_activation=str(snn_activation),
                post_pool_fc=post_pool_fc)


@register_model(family="mcat", modalities=("wsi", "omics"), tasks=TASK_NAMES, reference=MCAT_REFERENCE,
                defaults={"gene_sets": MCAT_GENE_SETS, "dim": 256, "heads": 8, "layers": 2, "ff_dim": 512,
                          "dropout": 0.25, "snn_activation": "selu", "post_pool_fc": False},
                notes="Genomic-guided co-attention (1 head, genomic queries over the patches), a 2-layer transformer "
                      "per modality (d 256, 8 heads, ff 512), gated attention pooling, concat fusion "
                      "(Linear-ReLU x 2). Genomic tokens: one 2-block SNN per gene set of `gene_sets` (default the "
                      "six MCAT signature families; training.gene_sets must build them) on train-fold z-scored RNA "
                      "(the original also uses CNV/mutation columns). snn_activation: selu (default) or elu (the "
                      "original SNN_Block: Linear-ELU-AlphaDropout); post_pool_fc: false (default) or true (the "
                      "original's path_rho/omic_rho Linear-ReLU-Dropout on each pooled embedding, +2(d^2+d) "
                      "parameters). Deviations: pre-norm transformer layers with a final LayerNorm (+2d parameters "
                      "per encoder); the gated-attention score layer has no bias (softmax is shift-invariant); "
                      "the concat MLP has dropout; survival loss per training.survival_loss (the original uses the "
                      "4-bin NLL: set survival_loss: nll).")
def mcat(*, input_dims: dict[str, int], **kwargs: object) -> FusionModel:
    return _create_mcat(input_dims=input_dims, **kwargs)  # type: ignore[arg-type]
