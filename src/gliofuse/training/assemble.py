"""Assemble one fold run from typed, already-read inputs: datasets, objectives, model and heads.

The one place where a fold's trainable pieces are built, for cross-validation training
(:func:`gliofuse.training.fold.train_fold_`) and for the published-table reproduction alike. Everything
fitted on data (omics gene selection and scaling, gene-set vectors, survival bin edges, class weights) sees
the training partition only.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import torch
from torch import Tensor, nn

from gliofuse.config import TrainingConfig
from gliofuse.data.batch import Targets
from gliofuse.data.datasets import PatientBagDataset
from gliofuse.device import resolve_device
from gliofuse.errors import ConfigError, InputDataError
from gliofuse.features.store import FeatureFileInfo
from gliofuse.models.base import FusionModel
from gliofuse.omics.normalize import GeneSetPreprocessor, OmicsPreprocessor
from gliofuse.seed import seed_everything
from gliofuse.tasks import TaskSpec
from gliofuse.training.losses import survival_bin_edges
from gliofuse.training.objectives import DiscreteHazardObjective, Objective, build_objective

logger = logging.getLogger(__name__)


class OmicsTransform(Protocol):
    """A preprocessing of omics rows fitted on the training partition (e.g. a published protocol's scaler)."""

    def transform(self, values: np.ndarray) -> np.ndarray: ...

    def state_dict(self) -> dict[str, Any]: ...


@dataclass(frozen=True)
class FoldData:
    """The read inputs of one fold, row-aligned to ``patients``.

    Attributes
    ----------
    patients : patient ids, the row order of everything below.
    targets : outcomes of ``patients`` (``labels``: the other classification tasks of multi-task training).
    partitions : ``{"train", "val", "test"}`` -> row indices of the patients with the task's outcome; a row may
        repeat (a published protocol's per-ROI training rows). ``val``/``test`` may be missing or empty.
    omics : raw omics values (P, G) float, or None (no omics model input).
    genes : identifiers of the G omics columns (Ensembl ids or symbols).
    gene_names : gene symbols of the G columns where known (gene sets, foundation gene tables); () if not.
    slide_files : ``{patient: feature files}`` (contract §5), or None (no WSI model input).
    wsi_dim : the feature files' embedding size D (0 without WSI).
    """

    patients: Sequence[str]
    targets: Targets
    partitions: Mapping[str, Sequence[int]]
    omics: np.ndarray | None = None
    genes: Sequence[str] = ()
    gene_names: Sequence[str] = ()
    slide_files: Mapping[str, list[FeatureFileInfo]] | None = None
    wsi_dim: int = 0


@dataclass
class FoldRun:
    """An assembled fold, ready for :func:`gliofuse.training.fit.fit_fold_`.

    Attributes
    ----------
    heads, objectives : ``{task: ...}``, one per task; ``primary`` is the task whose predictions are written.
    datasets : ``{"train", "val", "test"}`` -> dataset (``train`` samples ``max_patches`` per bag).
    input_dims : the model's input sizes (``wsi``, ``omics``, ``omics:<set>``).
    preprocessors : the fitted omics preprocessing, ``{"omics": ..., "gene_sets": ...}`` (None where unused).
    checkpoint_extra : what the checkpoint needs to rebuild the run (model params, input dims, preprocessing).
    """

    model_name: str
    model: FusionModel
    heads: dict[str, nn.Module]
    objectives: dict[str, Objective]
    primary: str
    datasets: dict[str, PatientBagDataset]
    input_dims: dict[str, int]
    preprocessors: dict[str, Any] = field(default_factory=dict)
    checkpoint_extra: dict[str, Any] = field(default_factory=dict)


def assemble_fold(data: FoldData, *, model_name: str, model_params: Mapping[str, Any], tasks: Sequence[TaskSpec],
                  training: TrainingConfig, seed: int, omics_transform: OmicsTransform | None = None,
                  bin_edges: Mapping[str, Tensor] | None = None) -> FoldRun:
    """Build the datasets, objectives, model and heads of one fold.

    Parameters
    ----------
    data : the fold's read inputs.
    model_name, model_params : a registered model and its resolved hyper-parameters
        (:func:`gliofuse.models.registry.resolve_model_params`).
    tasks : the trained tasks, the primary (predicted, epoch-selecting) one first.
    training : reads ``n_top_genes``, ``gene_sets``, ``max_patches``, ``inference_max_patches`` (null: the model
        card's ``max_inference_patches``), ``batch_size`` (with ``max_patches``: the inference batch's patch budget),
        ``bag_level``,
        ``survival_loss``, ``n_bins``, ``bin_edges``, ``bin_closed``, ``nll_alpha``, ``class_weights``,
        ``loss_weights`` and ``device`` (seeding).
    seed : seeds the model and head initialisation and the datasets' patch sampling.
    omics_transform : an omics preprocessing already fitted on the training rows (a published protocol's);
        None: the ``n_top_genes`` most variable genes z-scored, and one vector per ``gene_sets`` entry, fitted
        here on ``partitions["train"]``.
    bin_edges : ``{task: inner edges in days}``: fixed survival bins (a protocol's) for a discrete-hazard
        objective instead of training-fold quantiles.
    """
    train = np.asarray(data.partitions["train"], dtype=np.int64)
    if len(train) == 0:
        raise InputDataError(f"{model_name}: the fold has no training patient.")
    omics, gene_sets = omics_transform, None
    if data.omics is not None and omics is None:
        omics = OmicsPreprocessor(n_top_genes=training.n_top_genes).fit(data.omics[train])
        gene_sets = _fit_gene_sets(training.gene_sets, data.omics[train], data.gene_names)
    cap = inference_patch_cap(model_name, training)
    datasets = {name: _dataset(data, np.asarray(rows, dtype=np.int64), omics, gene_sets, training, seed,
                               sample=name == "train", inference_cap=cap)
                for name, rows in data.partitions.items()}
    input_dims = {"wsi": data.wsi_dim, "omics": datasets["train"].omics_dim}
    if gene_sets is not None:
        input_dims.update({f"omics:{n}": d for n, d in gene_sets.dims.items()})
    objectives = {spec.name: _objective(spec, data.targets, train, training, (bin_edges or {}).get(spec.name))
                  for spec in tasks}
    ids = data.gene_names if len(data.gene_names) == len(data.genes) else data.genes
    model, heads = build_model_and_heads(model_name, model_params, input_dims=input_dims, objectives=objectives,
                                         omics=omics, gene_ids=ids, training=training, seed=seed)
    extra = {"model_params": dict(model_params), "input_dims": input_dims,
             "rna_encoder": getattr(model, "rna_provenance", None),
             "omics_preprocessing": None if omics is None else omics.state_dict(),
             "gene_sets": None if gene_sets is None else gene_sets.state_dict(), "bag_level": training.bag_level}
    return FoldRun(model_name=model_name, model=model, heads=heads, objectives=objectives, primary=tasks[0].name,
                   datasets=datasets, input_dims=input_dims, preprocessors={"omics": omics, "gene_sets": gene_sets},
                   checkpoint_extra=extra)


def build_model_and_heads(model_name: str, model_params: Mapping[str, Any], *, input_dims: Mapping[str, int],
                          objectives: Mapping[str, Objective], omics: OmicsTransform | None, gene_ids: Sequence[str],
                          training: TrainingConfig, seed: int) -> tuple[FusionModel, dict[str, nn.Module]]:
    """Seed, create the registered model and one head per objective (a fold's, or a bundle member's).

    ``gene_ids`` (G,): identifiers of the full omics matrix columns, symbols where known; the genes an
    :class:`OmicsPreprocessor` keeps are bound to the model (foundation RNA encoders key on them).
    """
    from gliofuse.models.registry import create_model

    seed_everything(seed, resolve_device(training.device, key="training.device"))
    model = create_model(model_name, input_dims=input_dims, tasks=tuple(objectives), **model_params)
    if isinstance(omics, OmicsPreprocessor):
        model.bind_omics_genes({"omics": [gene_ids[i] for i in omics.gene_index]})
    heads = {n: o.build_head(model.embed_dim) for n, o in objectives.items()}
    return model, heads


def patient_dataset(patients: Sequence[str], *, slide_files: Mapping[str, list[FeatureFileInfo]] | None,
                    omics_values: np.ndarray | None, omics: OmicsTransform | None,
                    gene_sets: GeneSetPreprocessor | None, targets: Targets | None, training: TrainingConfig,
                    seed: int, inference_cap: int | None, sample: bool = False) -> PatientBagDataset:
    """The dataset of ``patients`` with their raw omics rows (P, G) put through the fitted transforms.

    ``sample``: draw ``training.max_patches`` per bag (training); else ``inference_cap`` patches per bag
    (:func:`inference_patch_cap`; None: every patch). An inference batch holds at most batch_size x max_patches
    padded patches (a larger bag goes alone).
    A transform's non-finite outputs are left as they come (a bundle fills missing genes before this).
    """
    return PatientBagDataset(
        patient_ids=list(patients), slide_files=slide_files,
        omics=None if omics is None or omics_values is None else omics.transform(omics_values),
        omics_sets=None if gene_sets is None or omics_values is None else gene_sets.transform(omics_values),
        targets=targets, max_patches=training.max_patches if sample else inference_cap, seed=seed,
        bag_level=training.bag_level, inference_max_patches=inference_cap,
        inference_batch_patches=training.batch_size * training.max_patches)


def inference_patch_cap(model_name: str, training: TrainingConfig) -> int | None:
    """Patches per bag at validation and prediction: ``training.inference_max_patches`` when set, else the model
    card's ``max_inference_patches`` (self-attention over every patch: quadratic memory), else None (all)."""
    from gliofuse.models.registry import get_model_card

    if training.inference_max_patches is not None:
        return training.inference_max_patches
    cap = get_model_card(model_name).max_inference_patches
    if cap is not None:
        logger.info("%s: inference bags capped at %d patches (a fixed seeded subsample; the model's self-attention "
                    "memory grows with the square of the bag; set training.inference_max_patches to change it)",
                    model_name, cap)
    return cap


def _dataset(data: FoldData, rows: np.ndarray, omics: OmicsTransform | None, gene_sets: GeneSetPreprocessor | None,
             training: TrainingConfig, seed: int, *, sample: bool, inference_cap: int | None) -> PatientBagDataset:
    t = data.targets
    sub = Targets(time_days=t.time_days[rows], event=t.event[rows], label=t.label[rows],
                  labels={k: v[rows] for k, v in t.labels.items()})
    return patient_dataset([data.patients[i] for i in rows], slide_files=data.slide_files,
                           omics_values=None if data.omics is None else data.omics[rows], omics=omics,
                           gene_sets=gene_sets, targets=sub, training=training, seed=seed,
                           inference_cap=inference_cap, sample=sample)


def _objective(spec: TaskSpec, targets: Targets, train: np.ndarray, training: TrainingConfig,
               edges: Tensor | None) -> Objective:
    weight = training.loss_weights.get(spec.name, 1.0)
    if edges is None and spec.kind == "survival" and training.survival_loss == "nll":
        if training.bin_edges == "cohort":  # every patient of the split, test included: the originals' leak
            edges = survival_bin_edges(torch.as_tensor(targets.time_days, dtype=torch.float64), training.n_bins)
        elif not isinstance(training.bin_edges, str):
            edges = torch.as_tensor(training.bin_edges, dtype=torch.float64)
    if edges is not None:
        return DiscreteHazardObjective(spec, edges=edges, alpha=training.nll_alpha, weight=weight,
                                       closed=training.bin_closed)
    labels = targets.labels.get(spec.name, targets.label)[train] if spec.kind == "classification" else None
    return build_objective(spec, train_time_days=targets.time_days[train], train_labels=labels,
                           survival_loss=training.survival_loss, n_bins=training.n_bins, nll_alpha=training.nll_alpha,
                           class_weights=training.class_weights, weight=weight, bin_closed=training.bin_closed)


def _fit_gene_sets(names: Sequence[str], train_rows: np.ndarray,
                   gene_names: Sequence[str]) -> GeneSetPreprocessor | None:
    """Per-gene-set omics vectors fit on the training rows; sets that cannot be matched are left out (logged).

    A model that needs a missing set fails at ``create_model`` with the set's name.
    """
    if not gene_names:
        logger.warning("the omics matrix has no 'gene_names'; per-gene-set omics vectors (training.gene_sets) are "
                       "not built")
        return None
    usable = []
    for name in names:
        try:
            GeneSetPreprocessor([name]).fit(train_rows, gene_names)
        except (InputDataError, ConfigError) as exc:
            logger.warning("gene set %s is not built: %s", name, exc)
            continue
        usable.append(name)
    if not usable:
        return None
    return GeneSetPreprocessor(usable).fit(train_rows, gene_names)
