"""Knowledge-driven subspace fusion with gradient coordination (Zhang et al., MICCAI 2024).

Layout: blocks (gene encoder, consistency loss, subspace branch), the model class,
``_create_subspace``, then the registered variants (the full model and four ablations).

Two gene subspaces (tumour and microenvironment gene sets, ``training.gene_sets``) each get an SNN
gene encoder and a histology branch: the same patch features are projected per subspace, fused
early with the broadcast gene embedding, and refined by cross-modal 2-D deformable attention whose
queries come from the gene-conditioned tokens and whose keys/values are sampled from the histology
tokens (:class:`~gliofuse.models.deformable.DeformableCrossAttention2D`). A gene-guided consistency
loss asks the batch similarity of the sampling positions to match that of the gene embeddings. The
patient embedding is ``[z_tumour ; z_micro]``; the task head (a linear layer) is the concat fusion
head, and :class:`gliofuse.training.policies.SubspaceGradientCoordination` coordinates the gradients
of its two weight blocks (declared through :meth:`SubspaceFusion.gradient_policies`).

Written from the method description in ``specs/subspace_fusion.md``; no code of the original is used.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gliofuse.errors import ConfigError
from gliofuse.models.base import FusionModel, ModelOutput, require_input
from gliofuse.models.deformable import CrossAttention2D, DeformableCrossAttention2D
from gliofuse.models.registry import register_model
from gliofuse.models.tokenmap import TOKEN_MAPS, build_token_map
from gliofuse.tasks import TASK_NAMES

if TYPE_CHECKING:
    from gliofuse.data.batch import Batch

SUBSPACE_REFERENCE = ("Zhang, Wang, Meng, Tang, Li. Knowledge-driven subspace fusion and gradient coordination "
                      "for multi-modal learning. MICCAI 2024. arXiv:2406.13979")
CONSISTENCY_FORMS: tuple[str, ...] = ("sample", "original")
GC_MODES: tuple[str, ...] = ("project", "reflect", "off")


# ----------------------------------------------------------------------------- blocks
class GeneEncoder(nn.Sequential):
    """SNN-style gene-set encoder: expression (B, G_s) -> embedding (B, dim), non-negative.

    ``[Linear -> ELU -> AlphaDropout] x (len(hidden_dims) + 1) -> ReLU`` with weights
    ``N(0, 1/sqrt(fan_in))`` and zero biases (the original's "max" initialisation).
    """

    def __init__(self, in_dim: int, hidden_dims: Sequence[int], dim: int, dropout: float) -> None:
        dims = [in_dim, *[int(h) for h in hidden_dims], dim]
        layers: list[nn.Module] = []
        for a, b in itertools.pairwise(dims):
            lin = nn.Linear(a, b)
            nn.init.normal_(lin.weight, 0.0, 1.0 / math.sqrt(a))
            nn.init.zeros_(lin.bias)
            layers += [lin, nn.ELU(), nn.AlphaDropout(dropout)]
        layers.append(nn.ReLU())
        super().__init__(*layers)


def gene_guided_consistency(gene: Tensor, vgrid: Tensor, *, form: str = "sample") -> Tensor:
    """Gene-guided consistency between gene-embedding and sampling-position similarity structures.

    ``S_g = rownorm(g g^T)``; per offset group k, ``S_k = rownorm(V_k V_k^T)`` with ``V_k`` the
    flattened sampling positions of group k of every sample; ``S_v = mean_k S_k``;
    ``loss = sum_ij (S_g - S_v)_ij^2 / N`` (row normalisation = L2 norm of each row).

    Parameters
    ----------
    gene : Tensor, shape = (N, D), gene embeddings of the batch.
    vgrid : Tensor, shape = (N, G, 2, h, w), sampling positions in coarse cells.
    form : ``"sample"`` (default): ``V_k`` holds group k of each of the N samples (sample x sample
        similarity per group, as the method intends). ``"original"``: the original code's reshape of
        the sample-major ``(N*G, ...)`` positions straight to ``(G, N, ...)``, which mixes samples
        and groups (with N = G each slice is one sample's G groups); kept for fidelity only.

    Returns
    -------
    Scalar tensor; 0 when the two (N, N) similarity matrices are equal.

    References
    ----------
    Zhang et al., MICCAI 2024, arXiv:2406.13979 (the "gene-guided consistency" strategy).
    """
    n, g = vgrid.shape[:2]
    if gene.shape[0] != n:
        raise ValueError(f"gene ({tuple(gene.shape)}) and vgrid ({tuple(vgrid.shape)}) disagree on the batch size.")
    gene = gene.float().reshape(n, -1)
    if form == "sample":
        v = vgrid.float().reshape(n, g, -1).transpose(0, 1)
    elif form == "original":
        v = vgrid.float().reshape(n * g, -1).reshape(g, n, -1)
    else:
        raise ValueError(f"consistency form must be one of {CONSISTENCY_FORMS}, got {form!r}.")
    s_gene = F.normalize(gene @ gene.T, dim=1)
    s_pos = F.normalize(v @ v.transpose(1, 2), dim=2).mean(dim=0)
    return ((s_gene - s_pos) ** 2).sum() / n


class SubspaceBranch(nn.Module):
    """Gene-conditioned histology branch of one subspace: token map + gene embedding -> z (B, dim).

    ``P = ReLU(Linear(X))``; ``H = Linear([g ; P])`` (gene part first); ``A = Attn(LN(H), LN(P))``
    (one LayerNorm for both, empty cells zeroed); ``H <- H + A``; ``z = Linear(tanh(Linear(masked
    mean of LN(H))))``.
    """

    def __init__(self, wsi_dim: int, dim: int, attention: nn.Module) -> None:
        super().__init__()
        self.dim = dim
        self.project = nn.Sequential(nn.Linear(wsi_dim, dim), nn.ReLU())
        self.early = nn.Linear(2 * dim, dim)
        self.norm = nn.LayerNorm(dim)
        self.attention = attention
        self.pool_norm = nn.LayerNorm(dim)
        self.pooler = nn.Sequential(nn.Linear(dim, dim), nn.Tanh())
        self.out = nn.Linear(dim, dim)

    def forward(self, tokens: Tensor, valid: Tensor, gene: Tensor, size: int, *,
                with_mass: bool = False) -> tuple[Tensor, Tensor | None, Tensor | None]:
        """Run the branch.

        Parameters
        ----------
        tokens : Tensor, shape = (B, S*S, D_wsi), the token map.
        valid : bool Tensor, shape = (B, S*S).
        gene : Tensor, shape = (B, dim), this subspace's gene embedding.
        size : S.
        with_mass : also return the deformable attention's mass per histology cell.

        Returns
        -------
        z : Tensor, shape = (B, dim), the subspace embedding.
        vgrid : Tensor, shape = (B, G, 2, h, w), sampling positions, or None (plain attention).
        mass : Tensor, shape = (B, S*S), attention mass per map cell (sums to 1 over the valid cells;
            :meth:`DeformableCrossAttention2D.forward`), or None (not asked for, or plain attention).
        """
        b, t, _ = tokens.shape
        m = valid.unsqueeze(-1).to(tokens.dtype)
        p = self.project(tokens)  # (B, T, dim)
        w_gene, w_hist = self.early.weight[:, : self.dim], self.early.weight[:, self.dim:]
        h = F.linear(p, w_hist) + F.linear(gene, w_gene, self.early.bias).unsqueeze(1)  # == Linear([g ; P])

        def as_map(x: Tensor) -> Tensor:
            return (x * m).transpose(1, 2).reshape(b, self.dim, size, size)

        mass = None
        args = (as_map(self.norm(h)), as_map(self.norm(p)), valid.reshape(b, size, size))
        if with_mass and isinstance(self.attention, DeformableCrossAttention2D):
            attended, vgrid, cell_mass = self.attention(*args, return_mass=True)
            mass = cell_mass.reshape(b, t)
        else:
            attended, vgrid = self.attention(*args)
        h = h + attended.reshape(b, self.dim, t).transpose(1, 2)
        pooled = (self.pool_norm(h) * m).sum(dim=1) / m.sum(dim=1).clamp_min(1.0)
        return self.out(self.pooler(pooled)), vgrid, mass


# ----------------------------------------------------------------------------- model
class SubspaceFusion(FusionModel):
    """Tumour / microenvironment subspace fusion of a WSI token map and two gene-set profiles.

    Inputs: ``batch.wsi`` (B, N, D) + ``wsi_mask`` (+ ``wsi_pos`` for ``token_map="coords"``) and
    ``batch.omics_sets[name]`` (B, G_s) for the two ``gene_sets``. Output embedding (B, 2 * dim) =
    ``[z_tumour ; z_micro]`` (``embedding_parts``); with ``split=False`` one branch over the union of
    the two gene sets, embedding (B, dim). ``aux_losses["consistency"]`` in training mode.
    ``mask_out_of_map_keys`` is passed to the deformable attention (keys sampled outside the map:
    masked, or zero features with unmasked logits as in the original).

    In eval mode with deformable attention, ``ModelOutput.attention`` (B, N) is the deformable
    cross-attention's reading map: per branch, the attention mass landing on each histology cell
    (every valid query and head, spread bilinearly from the sampling points to the cells), carried
    back to the patches of each cell by the transpose of the token-map construction (a pooled cell's
    mass is shared equally by its patches; in raster mode a patch gets the mass of every token that
    repeats it), averaged over the branches. It sums to 1 over a bag's patches, 0 on padding. The
    plain-attention ablation has no such map (``attention`` None).
    """

    def __init__(self, *, wsi_dim: int, gene_dims: dict[str, int], gene_sets: Sequence[str], dim: int,
                 gene_hidden_dims: Sequence[int], gene_dropout: float, grid_size: int, token_map: str,
                 attention: str, heads: int, dim_head: int, attn_dropout: float, offset_groups: int,
                 downsample: int, offset_kernel: int, offset_scale: float, cpb_hidden: int,
                 consistency: str, consistency_weight: float, gc_mode: str, split: bool,
                 mask_out_of_map_keys: bool = True) -> None:
        super().__init__()
        if token_map not in TOKEN_MAPS:
            raise ConfigError(f"subspace_fusion: token_map must be one of {TOKEN_MAPS}, got {token_map!r}.")
        if consistency not in CONSISTENCY_FORMS:
            raise ConfigError(f"subspace_fusion: consistency must be one of {CONSISTENCY_FORMS}, got {consistency!r}.")
        if gc_mode not in GC_MODES:
            raise ConfigError(f"subspace_fusion: gc_mode must be one of {GC_MODES}, got {gc_mode!r}.")
        self.gene_sets = tuple(gene_sets)
        self.parts = ("tumour", "microenvironment") if split else ("fused",)
        self.split = split
        self.dim, self.grid_size, self.token_map = dim, grid_size, token_map
        self.consistency_form, self.consistency_weight = consistency, float(consistency_weight)
        self.gc_mode = gc_mode

        def make_attention() -> nn.Module:
            if attention == "deformable":
                return DeformableCrossAttention2D(
                    dim, heads=heads, dim_head=dim_head, offset_groups=offset_groups, downsample=downsample,
                    offset_kernel=offset_kernel, offset_scale=offset_scale, dropout=attn_dropout,
                    cpb_hidden=cpb_hidden, mask_out_of_map_keys=mask_out_of_map_keys)
            if attention == "plain":
                return CrossAttention2D(dim, heads=heads, dim_head=dim_head, dropout=attn_dropout)
            raise ConfigError(f"subspace_fusion: attention must be 'deformable' or 'plain', got {attention!r}.")

        if split:
            in_dims = [gene_dims[s] for s in self.gene_sets]
        else:
            in_dims = [sum(gene_dims[s] for s in self.gene_sets)]
        self.genes = nn.ModuleList(GeneEncoder(d, gene_hidden_dims, dim, gene_dropout) for d in in_dims)
        self.branches = nn.ModuleList(SubspaceBranch(wsi_dim, dim, make_attention()) for _ in in_dims)
        if attention == "deformable":
            need = self.branches[0].attention.min_map_size()
            if grid_size < need:
                raise ConfigError(f"subspace_fusion: grid_size = {grid_size} is smaller than the offset network "
                                  f"accepts ({need}); raise grid_size or lower offset_kernel.")
        self.embed_dim = dim * len(in_dims)

    def _gene_inputs(self, batch: Batch) -> list[Tensor]:
        missing = [s for s in self.gene_sets if s not in batch.omics_sets]
        if missing:
            raise ValueError(f"model {self.card.name if self.card else 'subspace_fusion'!r} needs batch.omics_sets "
                             f"{list(self.gene_sets)} but the batch has {sorted(batch.omics_sets)}. Add "
                             f"{missing} to training.gene_sets.")
        xs = [batch.omics_sets[s].float() for s in self.gene_sets]
        return xs if self.split else [torch.cat(xs, dim=1)]

    def forward(self, batch: Batch) -> ModelOutput:
        wsi = require_input(batch.wsi, "wsi", "subspace_fusion").float()
        tokens, valid = build_token_map(wsi, batch.wsi_mask, batch.wsi_pos, size=self.grid_size,
                                        mode=self.token_map)
        zs: list[Tensor] = []
        aux: list[Tensor] = []
        masses: list[Tensor | None] = []
        for enc, branch, x in zip(self.genes, self.branches, self._gene_inputs(batch), strict=True):
            gene = enc(x)
            z, vgrid, mass = branch(tokens, valid, gene, self.grid_size, with_mass=not self.training)
            zs.append(z)
            masses.append(mass)
            if self.training and self.consistency_weight > 0 and vgrid is not None and z.shape[0] > 1:
                aux.append(gene_guided_consistency(gene, vgrid, form=self.consistency_form))
        out = ModelOutput(embedding=torch.cat(zs, dim=1) if len(zs) > 1 else zs[0],
                          modality_embeddings=dict(zip(self.parts, zs, strict=True)))
        if aux:
            out.aux_losses["consistency"] = self.consistency_weight * torch.stack(aux).mean()
        if masses and all(m is not None for m in masses):
            cell_mass = torch.stack(masses).mean(dim=0)  # type: ignore[arg-type]
            out.attention = self._patch_attention(cell_mass, wsi.shape[1], batch.wsi_mask, batch.wsi_pos,
                                                  device=wsi.device)
        return out

    def _patch_attention(self, cell_mass: Tensor, n: int, mask: Tensor | None, pos: Tensor | None, *,
                         device: torch.device) -> Tensor:
        """Map a mass per token-map cell (B, S*S) back to the bag's patches: (B, N), summing to 1 per bag.

        Uses the transpose of :func:`build_token_map` (a linear map of the patch features): the
        gradient of ``sum_c mass_c * token_c`` with respect to a scalar feature per patch. A bag whose
        mass is all 0 gets uniform weights over its patches.
        """
        b = cell_mass.shape[0]
        with torch.enable_grad():
            unit = torch.ones(b, n, 1, device=device, dtype=torch.float32, requires_grad=True)
            tokens, _ = build_token_map(unit, mask, pos, size=self.grid_size, mode=self.token_map)
            (grad,) = torch.autograd.grad((tokens.squeeze(-1) * cell_mass.detach().float()).sum(), unit)
        real = (torch.ones(b, n, dtype=torch.bool, device=device) if mask is None else mask).float()
        att = grad.squeeze(-1) * real
        total = att.sum(dim=1, keepdim=True)
        uniform = real / real.sum(dim=1, keepdim=True).clamp_min(1.0)
        return torch.where(total > 0, att / total.clamp_min(1e-30), uniform)

    def embedding_parts(self) -> dict[str, slice]:
        return {name: slice(i * self.dim, (i + 1) * self.dim) for i, name in enumerate(self.parts)}

    def gradient_groups(self) -> dict[str, list[nn.Parameter]]:
        return {name: [*enc.parameters(), *branch.parameters()]
                for name, enc, branch in zip(self.parts, self.genes, self.branches, strict=True)}

    def gradient_policies(self) -> list[tuple[str, dict[str, Any]]]:
        if not self.split:
            return []
        return [("subspace_coordination", {"mode": self.gc_mode, "parts": self.parts})]


def _create_subspace(*, input_dims: dict[str, int], gene_sets: Sequence[str], dim: int,
                     gene_hidden_dims: Sequence[int], gene_dropout: float, grid_size: int, token_map: str,
                     heads: int, dim_head: int, attn_dropout: float, offset_groups: int = 8, downsample: int = 4,
                     offset_kernel: int = 6, offset_scale: float = 4.0, cpb_hidden: int = 32,
                     consistency: str = "sample", consistency_weight: float = 1.0, gc_mode: str = "project",
                     attention: str = "deformable", split: bool = True,
                     mask_out_of_map_keys: bool = True) -> SubspaceFusion:
    sets = [str(s) for s in gene_sets]
    if len(sets) != 2:
        raise ConfigError(f"subspace_fusion: gene_sets must name exactly two gene sets (tumour, microenvironment), "
                          f"got {sets}.")
    gene_dims = {s: int(input_dims.get(f"omics:{s}", 0)) for s in sets}
    absent = [s for s, d in gene_dims.items() if d <= 0]
    if absent:
        have = sorted(k.split(":", 1)[1] for k in input_dims if k.startswith("omics:"))
        raise ConfigError(f"subspace_fusion needs omics vectors for gene sets {sets}, but {absent} were not built "
                          f"(built: {have}). Add them to training.gene_sets.")
    return SubspaceFusion(
        wsi_dim=int(input_dims["wsi"]), gene_dims=gene_dims, gene_sets=sets, dim=int(dim),
        gene_hidden_dims=[int(h) for h in gene_hidden_dims], gene_dropout=float(gene_dropout),
        grid_size=int(grid_size), token_map=str(token_map), attention=attention, heads=int(heads),
        dim_head=int(dim_head), attn_dropout=float(attn_dropout), offset_groups=int(offset_groups),
        downsample=int(downsample), offset_kernel=int(offset_kernel), offset_scale=float(offset_scale),
        cpb_hidden=int(cpb_hidden), consistency=str(consistency), consistency_weight=float(consistency_weight),
        gc_mode=str(gc_mode), split=bool(split), mask_out_of_map_keys=bool(mask_out_of_map_keys))


# ----------------------------------------------------------------------------- variants
_COMMON: dict[str, Any] = {
    "gene_sets": ["tumour", "microenvironment"], "dim": 128, "gene_hidden_dims": [64, 48, 32], "gene_dropout": 0.1,
    "grid_size": 50, "token_map": "coords", "heads": 8, "dim_head": 64, "attn_dropout": 0.1,
}
_DEFORM: dict[str, Any] = {"offset_groups": 8, "downsample": 4, "offset_kernel": 6, "offset_scale": 4.0,
                           "cpb_hidden": 32, "mask_out_of_map_keys": True}
_CONSISTENCY: dict[str, Any] = {"consistency": "sample", "consistency_weight": 1.0}
_GC: dict[str, Any] = {"gc_mode": "project"}

_NOTES = (
    "Re-implemented from the method description (specs/subspace_fusion.md), D=128, 8 heads x 64, 8 offset groups, "
    "downsample 4, offset kernel 6, offsets 4*tanh, SwinV2 CPB. Deviations: sampling positions are normalised to "
    "cell centres (align_corners=False convention) rather than edge to edge; the unused per-subspace and MaxNet "
    "classifier heads are omitted; the fusion head is the task head (Linear on [z_T ; z_M]). token_map 'raster' "
    "is the original fixed S*S tiling in bag order, 'coords' places each patch at its grid cell (empty cells "
    "masked; an addition). consistency 'sample' is the intended per-group sample x sample form, 'original' "
    "reproduces the original reshape. mask_out_of_map_keys true (default): the part of a sampled key outside the "
    "map counts as an empty cell, so keys wholly outside are masked (3-9% relative change of the attention output "
    "at init, fidelity review); false is the original: zero-padded features with unmasked logits (in 'coords' "
    "mode empty cells inside the map stay masked). "
    "gc_mode 'project' (PCGrad-style, default) or 'reflect' (the original "
    "code's reflection rescaled to the orthogonal norm); 'off' logs the dynamics without changing gradients.")


@register_model(family="subspace_fusion", modalities=("wsi", "omics"), tasks=TASK_NAMES,
                reference=SUBSPACE_REFERENCE, defaults={**_COMMON, **_DEFORM, **_CONSISTENCY, **_GC},
                notes=_NOTES)
def subspace_fusion(*, input_dims: dict[str, int], **kwargs: Any) -> FusionModel:
    return _create_subspace(input_dims=input_dims, **kwargs)


@register_model(family="subspace_fusion", modalities=("wsi", "omics"), tasks=TASK_NAMES,
                reference=SUBSPACE_REFERENCE, defaults={**_COMMON, **_DEFORM, **_CONSISTENCY},
                ablation_of="subspace_fusion",
                notes="No subspace split: one gene encoder over the union of the two gene sets and one histology "
                      "branch (embedding D instead of 2D); consistency kept; no gradient coordination (one part).")
def subspace_fusion_no_split(*, input_dims: dict[str, int], **kwargs: Any) -> FusionModel:
    return _create_subspace(input_dims=input_dims, split=False, **kwargs)


@register_model(family="subspace_fusion", modalities=("wsi", "omics"), tasks=TASK_NAMES,
                reference=SUBSPACE_REFERENCE, defaults={**_COMMON, **_GC}, ablation_of="subspace_fusion",
                notes="No deformable attention: plain multi-head cross-attention from every gene-conditioned token "
                      "to every valid histology token of the map. Without sampling positions there is no "
                      "gene-guided consistency term either.")
def subspace_fusion_no_deform(*, input_dims: dict[str, int], **kwargs: Any) -> FusionModel:
    return _create_subspace(input_dims=input_dims, attention="plain", consistency_weight=0.0, **kwargs)


@register_model(family="subspace_fusion", modalities=("wsi", "omics"), tasks=TASK_NAMES,
                reference=SUBSPACE_REFERENCE, defaults={**_COMMON, **_DEFORM, **_GC}, ablation_of="subspace_fusion",
                notes="No gene-guided consistency loss (deformable attention and gradient coordination kept).")
def subspace_fusion_no_cons(*, input_dims: dict[str, int], **kwargs: Any) -> FusionModel:
    return _create_subspace(input_dims=input_dims, consistency_weight=0.0, **kwargs)


@register_model(family="subspace_fusion", modalities=("wsi", "omics"), tasks=TASK_NAMES,
                reference=SUBSPACE_REFERENCE, defaults={**_COMMON, **_DEFORM, **_CONSISTENCY},
                ablation_of="subspace_fusion",
                notes="No gradient coordination: the fusion-head gradients are left as they are; the policy still "
                      "logs their cosine and the confidence ratios (gc_dynamics.tsv, mode 'off').")
def subspace_fusion_no_gc(*, input_dims: dict[str, int], **kwargs: Any) -> FusionModel:
    return _create_subspace(input_dims=input_dims, gc_mode="off", **kwargs)
