"""Path-GPTOmic: frozen RNA foundation embedding + SNN genomics, a patch transformer, gradient modulation.

Layout: blocks (the frozen RNA encoder, the smoothing stage), the model class, ``_create_path_gptomic``,
then the registered variants (the full model and two ablations).

Genomics ``G = MLP_B([SNN(x) ; MLP_A(F(x))])`` with ``F`` the frozen foundation encoder
(:mod:`gliofuse.omics.foundation`); pathology ``P`` = patch transformer + gated attention pooling;
the task head is one linear layer on ``[G ; P]`` (``theta = W_G G + W_P P + b``). The model declares
the ``gradient_modulation`` policy (:class:`gliofuse.training.policies.GradientModulation`), which scales
each branch's update by ``c_m = min(1 - tanh(rho_m - 1), 1)`` and logs rho and c per step.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gliofuse.errors import ConfigError
from gliofuse.models.attention import SELF_ATTENTION_MAX_PATCHES, TokenEncoder
from gliofuse.models.base import FusionModel, ModelOutput, require_input
from gliofuse.models.layers import GatedAttentionPooling, mlp
from gliofuse.models.registry import register_model
from gliofuse.models.snn import SNNEncoder
from gliofuse.omics import foundation
from gliofuse.tasks import TASK_NAMES

if TYPE_CHECKING:
    from gliofuse.data.batch import Batch

logger = logging.getLogger(__name__)

PATH_GPTOMIC_REFERENCE = (
    "Wang, Yang, Zhao, Gu, Sapkota, Chen, Path-GPTOmic: a balanced multi-modal learning framework for survival "
    "outcome prediction, ISBI 2024, doi:10.1109/ISBI56570.2024.10635171, arXiv:2403.11375; scGPT: Cui et al., "
    "Nature Methods 2024, doi:10.1038/s41592-024-02201-0; OGM-GE: Peng et al., CVPR 2022, arXiv:2203.15332")
GM_SCORES: tuple[str, ...] = ("sum_prob", "mean_logprob")
GM_MODES: tuple[str, ...] = ("auto", "grad", "lr", "off")
FALLBACK = "fallback"


# ----------------------------------------------------------------------------- blocks
class FrozenRNAEncoder(nn.Module):
    """Frozen foundation encoder of the omics columns: expression (B, G) -> (B, E) = ``x @ T / sqrt(n)``.

    ``T`` (G, E) is a non-persistent buffer (rebuilt from the weights file or the seed, never stored
    in checkpoints): rows of a gene-embedding table aligned to the omics columns, or the fallback
    random projection. With a table, the column genes must be bound (:meth:`bind`) before use.
    """

    def __init__(self, n_genes: int, table: foundation.GeneEmbeddingTable | None, *, dim: int, seed: int) -> None:
        super().__init__()
        self.table = table
        self.dim = table.dim if table is not None else int(dim)
        init = foundation.fallback_projection(n_genes, self.dim, seed=seed) if table is None else \
            np.zeros((n_genes, self.dim), dtype=np.float32)
        self.register_buffer("rows", torch.from_numpy(init), persistent=False)
        self.n_matched = n_genes if table is None else 0
        self.bound = table is None

    def bind(self, genes: Sequence[str]) -> None:
        """Align the table to the omics columns (symbols or Ensembl ids, in column order)."""
        if self.table is None:
            return
        if len(genes) != self.rows.shape[0]:
            raise ConfigError(f"path_gptomic: {len(genes)} gene ids given for {self.rows.shape[0]} omics columns.")
        rows, matched = self.table.lookup(genes)
        if not matched.any():
            raise ConfigError(f"path_gptomic: none of the {len(genes)} omics genes (e.g. {list(genes[:3])}) is in the "
                              f"gene-embedding table {self.table.source}; check that both use symbols or Ensembl ids.")
        self.rows.copy_(torch.from_numpy(rows))
        self.n_matched, self.bound = int(matched.sum()), True
        logger.info("path_gptomic: %d of %d omics genes found in %s", self.n_matched, len(genes), self.table.source)

    def forward(self, x: Tensor) -> Tensor:
        if not self.bound:
            raise ConfigError(
                "path_gptomic: the gene-embedding table needs the gene ids of the omics columns, but none were bound "
                "(FusionModel.bind_omics_genes). Use rna_encoder: fallback, or bind the genes after create_model.")
        return x @ self.rows / max(self.n_matched, 1) ** 0.5


def smooth_mlp_a_(mlp_a: nn.Module, *, table: foundation.GeneEmbeddingTable, reference: foundation.SingleCellReference,
                  steps: int, batch_size: int, lr: float, seed: int) -> dict[str, Any]:
    """Stage 1 of Path-GPTOmic: mixup regression of cell-type targets on frozen foundation embeddings.

    Pairs of random cells ``(x_i, t_i), (x_j, t_j)`` with one-hot cell types are mixed with
    ``lambda ~ U[0, 1]``: input ``lambda x_i + (1 - lambda) x_j``, target ``lambda t_i + (1 - lambda) t_j``;
    ``MLP_A`` + a linear classifier are trained with MSE between the softmax and the mixed target
    (Adam, ``lr``). ``mlp_a`` is trained in place; the classifier is discarded.

    Returns
    -------
    Provenance: cells, genes matched, cell types, steps, first and last loss.
    """
    rows, matched = table.lookup(reference.genes)
    if not matched.any():
        raise ConfigError(f"path_gptomic: none of the single-cell genes of {reference.source} is in {table.source}.")
    emb = torch.from_numpy(foundation.encode_expression(reference.expression, rows, matched))
    targets = F.one_hot(torch.from_numpy(reference.cell_types), len(reference.type_names)).float()
    out_dim = [m for m in mlp_a.modules() if isinstance(m, nn.Linear)][-1].out_features
    classifier = nn.Linear(out_dim, len(reference.type_names))
    gen = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        nn.init.xavier_uniform_(classifier.weight)
        nn.init.zeros_(classifier.bias)
        opt = torch.optim.Adam([*mlp_a.parameters(), *classifier.parameters()], lr=lr)
        mlp_a.train()
        losses = []
        n = emb.shape[0]
        for _ in range(steps):
            i = torch.randint(n, (batch_size,), generator=gen)
            j = torch.randint(n, (batch_size,), generator=gen)
            lam = torch.rand(batch_size, 1, generator=gen)
            x = lam * emb[i] + (1 - lam) * emb[j]
            t = lam * targets[i] + (1 - lam) * targets[j]
            loss = F.mse_loss(torch.softmax(classifier(mlp_a(x)), dim=1), t)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(float(loss.detach()))
    return {"ran": True, "sc_reference": reference.source, "sc_sha256": reference.sha256,
            "n_cells": int(emb.shape[0]), "n_genes_matched": int(matched.sum()),
            "cell_types": list(reference.type_names), "steps": steps,
            "loss_first": losses[0] if losses else float("nan"), "loss_last": losses[-1] if losses else float("nan")}


# ----------------------------------------------------------------------------- model
class PathGPTOmic(FusionModel):
    """``[G ; P]`` -> embedding (B, omics_dim + path_dim); ``embedding_parts`` = ``{"omics", "wsi"}``.

    ``attention`` (B, N): the pathology branch's pooling weights over the patches.
    """

    def __init__(self, *, wsi_dim: int, omics_dim: int, rna: FrozenRNAEncoder | None, snn_hidden_dims: Sequence[int],
                 mlp_hidden: int, out_omics: int, path_dim: int, path_layers: int, path_heads: int, dropout: float,
                 freeze_mlp_a: bool, gm: dict[str, Any], provenance: dict[str, Any]) -> None:
        super().__init__()
        self.snn = SNNEncoder(omics_dim, snn_hidden_dims, dropout)
        self.rna = rna
        self.mlp_a = mlp(rna.dim, [mlp_hidden] * 3, dropout) if rna is not None else None
        if self.mlp_a is not None and freeze_mlp_a:
            self.mlp_a.requires_grad_(False)
        in_b = self.snn.embed_dim + (mlp_hidden if rna is not None else 0)
        self.mlp_b = mlp(in_b, [mlp_hidden, mlp_hidden, out_omics], dropout)
        self.freeze_mlp_a = freeze_mlp_a
        self.path_proj = nn.Sequential(nn.Linear(wsi_dim, path_dim), nn.ReLU(), nn.Dropout(dropout))
        self.path_encoder = TokenEncoder(path_dim, layers=path_layers, heads=path_heads, ff_dim=2 * path_dim,
                                         dropout=dropout)
        self.path_pool = GatedAttentionPooling(path_dim, path_dim, dropout=dropout)
        self.out_omics, self.path_dim = out_omics, path_dim
        self.embed_dim = out_omics + path_dim
        self.gm = dict(gm)
        self.rna_provenance = provenance

    def forward(self, batch: Batch) -> ModelOutput:
        x = require_input(batch.omics, "omics", "path_gptomic").float()
        parts = [self.snn(x)]
        if self.rna is not None and self.mlp_a is not None:
            with torch.no_grad():
                f = self.rna(x)
            parts.append(self.mlp_a(f))
        g = self.mlp_b(torch.cat(parts, dim=1))
        h = self.path_encoder(self.path_proj(require_input(batch.wsi, "wsi", "path_gptomic").float()), batch.wsi_mask)
        p, attn = self.path_pool(h, batch.wsi_mask)
        return ModelOutput(embedding=torch.cat([g, p], dim=1), modality_embeddings={"omics": g, "wsi": p},
                           attention=attn)

    def train(self, mode: bool = True) -> PathGPTOmic:
        """As ``nn.Module.train``; a frozen (smoothed) MLP_A stays in eval mode (no dropout)."""
        super().train(mode)
        if self.mlp_a is not None and self.freeze_mlp_a:
            self.mlp_a.eval()
        return self

    def embedding_parts(self) -> dict[str, slice]:
        return {"omics": slice(0, self.out_omics), "wsi": slice(self.out_omics, self.embed_dim)}

    def gradient_groups(self) -> dict[str, list[nn.Parameter]]:
        omics = [*self.snn.parameters(), *self.mlp_b.parameters(),
                 *(self.mlp_a.parameters() if self.mlp_a is not None else [])]
        wsi = [*self.path_proj.parameters(), *self.path_encoder.parameters(), *self.path_pool.parameters()]
        return {"omics": [p for p in omics if p.requires_grad], "wsi": [p for p in wsi if p.requires_grad]}

    def gradient_policies(self) -> list[tuple[str, dict[str, Any]]]:
        return [("gradient_modulation", {"parts": ("omics", "wsi"), **self.gm})]

    def bind_omics_genes(self, genes: Mapping[str, Sequence[str]]) -> None:
        if self.rna is not None and "omics" in genes:
            self.rna.bind(list(genes["omics"]))
            self.rna_provenance["n_genes_matched"] = self.rna.n_matched


def _create_path_gptomic(*, input_dims: dict[str, int], rna_encoder: str | None, rna_dim: int, rna_seed: int,
                         sc_reference: str | None, smoothing_steps: int, smoothing_lr: float,
                         snn_hidden_dims: Sequence[int], mlp_hidden: int, omics_dim: int, path_dim: int,
                         path_layers: int, path_heads: int, dropout: float, gm_score: str, gm_mode: str,
                         gm_alpha: float, gm_start_epoch: int = 1, gm_end_epoch: int | None = None) -> PathGPTOmic:
    if gm_score not in GM_SCORES:
        raise ConfigError(f"path_gptomic: gm_score must be one of {GM_SCORES}, got {gm_score!r}.")
    if gm_mode not in GM_MODES:
        raise ConfigError(f"path_gptomic: gm_mode must be one of {GM_MODES}, got {gm_mode!r}.")
    n_genes = int(input_dims["omics"])
    rna: FrozenRNAEncoder | None = None
    provenance: dict[str, Any] = {"encoder": "none", "smoothing": {"ran": False}}
    freeze_mlp_a = False
    if rna_encoder is not None:
        table = None if str(rna_encoder) == FALLBACK else foundation.load_gene_embeddings_(rna_encoder)
        rna = FrozenRNAEncoder(n_genes, table, dim=int(rna_dim), seed=int(rna_seed))
        provenance = {"encoder": "fallback_random_projection" if table is None else "gene_embedding_table",
                      "source": None if table is None else table.source,
                      "sha256": None if table is None else table.sha256, "dim": rna.dim,
                      "seed": int(rna_seed) if table is None else None, "smoothing": {"ran": False}}
    model = PathGPTOmic(wsi_dim=int(input_dims["wsi"]), omics_dim=n_genes, rna=rna,
                        snn_hidden_dims=[int(h) for h in snn_hidden_dims], mlp_hidden=int(mlp_hidden),
                        out_omics=int(omics_dim), path_dim=int(path_dim), path_layers=int(path_layers),
                        path_heads=int(path_heads), dropout=float(dropout), freeze_mlp_a=False,
                        gm={"score": gm_score, "mode": gm_mode, "alpha": float(gm_alpha),
                            "start_epoch": int(gm_start_epoch),
                            "end_epoch": None if gm_end_epoch is None else int(gm_end_epoch)},
                        provenance=provenance)
    if rna is not None and rna.table is not None and sc_reference is not None:
        assert model.mlp_a is not None
        reference = foundation.load_single_cell_(sc_reference)
        provenance["smoothing"] = smooth_mlp_a_(model.mlp_a, table=rna.table, reference=reference,
                                                steps=int(smoothing_steps), batch_size=32, lr=float(smoothing_lr),
                                                seed=int(rna_seed))
        freeze_mlp_a = True
        model.mlp_a.requires_grad_(False)
        model.freeze_mlp_a = True
        model.train(model.training)
    elif sc_reference is not None:
        logger.warning("path_gptomic: sc_reference is set but rna_encoder is %r; the smoothing stage needs foundation "
                       "weights and is skipped (MLP-A is trained with the survival model)", rna_encoder)
    provenance["mlp_a"] = "frozen (smoothed)" if freeze_mlp_a else ("trained in stage 2" if rna is not None else "none")
    logger.info("path_gptomic RNA branch: %s", provenance)
    return model


_DEFAULTS: dict[str, Any] = {
    "rna_encoder": FALLBACK, "rna_dim": 64, "rna_seed": 0, "sc_reference": None, "smoothing_steps": 500,
    "smoothing_lr": 1e-3, "snn_hidden_dims": [64, 48, 32, 32], "mlp_hidden": 128, "omics_dim": 32, "path_dim": 64,
    "path_layers": 1, "path_heads": 4, "dropout": 0.25, "gm_score": "sum_prob", "gm_mode": "auto", "gm_alpha": 1.0,
    "gm_start_epoch": 1, "gm_end_epoch": None,
}
_NOTES = (
    "Genomics: G = MLP_B([SNN(x) ; MLP_A(F(x))]) (SNN = PF MaxNet 64-48-32-32 on the train-fold z-scored RNA, as no "
    "CNV/mutation table is available; MLP_A, MLP_B: 3 layers, hidden 128); F = the frozen RNA foundation encoder "
    "(gliofuse.omics.foundation): rna_encoder = a local gene-embedding table/scGPT checkpoint (.pt/.safetensors/.npy/"
    ".npz; the scGPT transformer is not re-run, its gene embeddings are pooled by expression), or 'fallback' "
    "(default): a frozen seeded Gaussian random projection, i.e. no foundation knowledge. Stage 1 (mixup smoothing "
    "of MLP_A on cell-type targets, MSE, Adam) runs only when rna_encoder is a file AND sc_reference is given; then "
    "MLP_A is frozen, else it is trained with the survival model. Which encoder and stage ran is in the model "
    "params of the checkpoint/provenance and in the log. Pathology: a patch transformer (T2T-ViT replaced by "
    "pre-extracted patch features + transformer layers) with gated attention pooling. Head: one linear layer on "
    "[G ; P] (CoxHead has no bias, so b/2 = 0). Gradient modulation (training.policies.GradientModulation): Eq. 5 "
    "read as the batch partial-likelihood probability of the observed failures (gm_score 'sum_prob') or "
    "exp(mean log partial likelihood) ('mean_logprob'); c_m = min(1 - tanh(alpha (rho_m - 1)), 1); gm_mode 'auto' "
    "scales gradients under SGD and the branch's step (per-branch learning rate) under Adam/AdamW; no GE noise. "
    "The genomics branch is SNN + MLP_B (+ MLP_A when trainable); the fusion head is not modulated. Cox loss "
    "averaged over events (PF averages over the batch).")


@register_model(family="path_gptomic", modalities=("wsi", "omics"), tasks=TASK_NAMES,
                reference=PATH_GPTOMIC_REFERENCE, max_inference_patches=SELF_ATTENTION_MAX_PATCHES,
                defaults=dict(_DEFAULTS), notes=_NOTES)
def path_gptomic(*, input_dims: dict[str, int], **kwargs: Any) -> FusionModel:
    return _create_path_gptomic(input_dims=input_dims, **kwargs)


@register_model(family="path_gptomic", modalities=("wsi", "omics"), tasks=TASK_NAMES,
                reference=PATH_GPTOMIC_REFERENCE, max_inference_patches=SELF_ATTENTION_MAX_PATCHES,
                defaults={k: v for k, v in _DEFAULTS.items() if k != "gm_mode"},
                ablation_of="path_gptomic",
                notes="Concat fusion without gradient modulation (paper Table 3 'Concat'): rho and c are still "
                      "logged (gc_dynamics.tsv, mode 'off') but gradients and steps are untouched. " + _NOTES)
def path_gptomic_no_gm(*, input_dims: dict[str, int], **kwargs: Any) -> FusionModel:
    return _create_path_gptomic(input_dims=input_dims, gm_mode="off", **kwargs)


@register_model(family="path_gptomic", modalities=("wsi", "omics"), tasks=TASK_NAMES,
                reference=PATH_GPTOMIC_REFERENCE, max_inference_patches=SELF_ATTENTION_MAX_PATCHES,
                defaults={k: v for k, v in _DEFAULTS.items()
                          if k not in ("rna_encoder", "rna_dim", "rna_seed", "sc_reference", "smoothing_steps",
                                       "smoothing_lr")},
                ablation_of="path_gptomic",
                notes="No RNA foundation branch (paper Table 3 'SNN'): G = MLP_B(SNN(x)); gradient modulation kept. "
                      + _NOTES)
def path_gptomic_no_fm(*, input_dims: dict[str, int], **kwargs: Any) -> FusionModel:
    return _create_path_gptomic(input_dims=input_dims, rna_encoder=None, rna_dim=0, rna_seed=0, sc_reference=None,
                                smoothing_steps=0, smoothing_lr=0.0, **kwargs)
