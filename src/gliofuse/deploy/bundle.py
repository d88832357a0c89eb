"""The model bundle (docs/data-contracts.md §11): what a trained model needs to predict new patients.

A bundle holds the k cross-validation fold models of one model x task as an ensemble (no refit: the
fold models are what the evaluation measured). Layout of ``<bundle>/``:

* ``bundle.json``: :data:`BUNDLE_FORMAT_VERSION`, model name and card, task, class names, encoder name and
  feature dimension, the effective training config, survival curve times and each member's Cox baseline,
  provenance; written last, so its presence marks a complete bundle.
* ``fold_<k>.pt``: the fold's ``checkpoint.pt`` unchanged (weights, fitted objectives, omics normaliser).
* ``genes.tsv``: ``gene_id``, ``gene_name`` of the training matrix columns (the normalisers index them).

:func:`export_bundle_` writes it, :func:`load_bundle_` is its one reader. Members are rebuilt through the
training code: :func:`~gliofuse.training.assemble.build_model_and_heads`, the objectives' and normalisers'
``from_state`` constructors.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from torch import nn

from gliofuse.config import GliofuseConfig, TrainingConfig
from gliofuse.errors import ConfigError, InputDataError
from gliofuse.features.store import open_features_h5_
from gliofuse.io import decode_h5_attr, file_hash, provenance, read_json_, read_table_, write_json_
from gliofuse.models.base import FusionModel
from gliofuse.omics.normalize import GeneSetPreprocessor, OmicsPreprocessor
from gliofuse.tasks import TaskSpec, get_task
from gliofuse.training.checkpoint import load_checkpoint_
from gliofuse.training.objectives import Objective, objective_from_state
from gliofuse.training.provenance import fold_settings

logger = logging.getLogger(__name__)

BUNDLE_FORMAT_VERSION = 1
"""Layout version of a bundle; raised when a file or key of ``bundle.json`` is renamed or changes meaning."""

BUNDLE_JSON = "bundle.json"
GENES_TSV = "genes.tsv"
N_CURVE_TIMES = 25
"""Points of the predicted survival curve: 0 to the longest training time of the bundle, evenly spaced."""


@dataclass
class Member:
    """One fold model of a bundle, rebuilt and in eval mode.

    ``omics`` / ``gene_sets``: the fold's fitted normalisers (None where the model reads no omics);
    ``baseline``: the Cox cumulative baseline hazard ``(times_days, H0)`` of the fold (None for other heads).
    """

    fold: int
    seed: int
    model: FusionModel
    heads: nn.ModuleDict
    objectives: dict[str, Objective]
    omics: OmicsPreprocessor | None
    gene_sets: GeneSetPreprocessor | None
    baseline: tuple[np.ndarray, np.ndarray] | None


@dataclass
class Bundle:
    """A loaded bundle: metadata, the training config and the members."""

    path: Path
    meta: dict[str, Any]
    training: TrainingConfig
    spec: TaskSpec
    genes: pd.DataFrame
    members: list[Member]

    @property
    def model_name(self) -> str:
        return str(self.meta["model"])

    @property
    def modalities(self) -> tuple[str, ...]:
        return tuple(self.meta["card"]["modalities"])

    @property
    def curve_days(self) -> np.ndarray:
        return np.asarray(self.meta["survival_curve_days"], dtype=np.float64)


def feature_encoder_(paths: Sequence[Path]) -> str | None:
    """The ``encoder`` attribute shared by the feature files (None when they carry none).

    Raises ``InputDataError`` when two files name different encoders.
    """
    seen: dict[str, Path] = {}
    for path in paths:
        with open_features_h5_(path) as fh:
            name = decode_h5_attr(fh.attrs.get("encoder"))
        if name:
            seen.setdefault(str(name), Path(path))
    if len(seen) > 1:
        raise InputDataError("feature files come from several encoders: "
                             + ", ".join(f"{e!r} ({p.name})" for e, p in seen.items()) + ". Use one encoder's files.")
    return next(iter(seen), None)


def export_bundle_(*, cfg: GliofuseConfig, model_name: str, task: str, fold_dirs: Sequence[Path],
                   omics_path: Path | None, feature_paths: Sequence[Path], out_dir: Path) -> Path:
    """Export the fold models of ``model_name`` x ``task`` as one bundle in ``out_dir``; returns ``bundle.json``.

    Parameters
    ----------
    cfg : the configuration the folds were trained with (checked against each checkpoint's provenance).
    fold_dirs : ``results/training/<model>/<task>/fold_<k>/`` with ``checkpoint.pt`` and ``predictions.tsv``.
    omics_path : the training expression matrix (contract §6; must be the file the folds read); None for
        models without omics.
    feature_paths : training slide feature files (their ``encoder`` attribute names the bundle's encoder);
        may be empty for models without WSI.

    Raises
    ------
    InputDataError
        A checkpoint is missing, incompatible or was trained with another config or omics matrix.
    """
    from gliofuse.evaluation.survival import breslow_baseline
    from gliofuse.models.registry import get_model_card

    t_cfg = cfg.training.for_model(model_name).for_task(task)
    spec = get_task(task, diagnosis_classes=t_cfg.diagnosis_classes, grade_label=t_cfg.grade_label)
    card = get_model_card(model_name).to_dict()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for old in [out_dir / BUNDLE_JSON, *out_dir.glob("fold_*.pt")]:
        old.unlink(missing_ok=True)
    members, train_times, ckpt = [], [], {}
    for fold_dir in sorted(Path(d) for d in fold_dirs):
        ckpt = load_checkpoint_(fold_dir / "checkpoint.pt", model_name=model_name, card=card, task=spec.name)
        _check_trained_with(ckpt, cfg, fold_dir, omics_path if "omics" in card["modalities"] else None)
        rows = read_table_(fold_dir / "predictions.tsv", required=["split", *spec.prediction_columns],
                           what="fold prediction table")
        train = rows[rows["split"] == "train"]
        member: dict[str, Any] = {"fold": int(ckpt["fold"]), "file": f"fold_{int(ckpt['fold'])}.pt",
                                  "seed": int(ckpt["fit"]["seed"]), "best_epoch": int(ckpt["best_epoch"]),
                                  "bin_edges_days": ckpt["objectives"][spec.name].get("bin_edges_days"),
                                  "baseline": None}
        if spec.kind == "survival":
            train_times.append(train["time_days"].to_numpy(np.float64))
            if "bin_edges_days" not in ckpt["objectives"][spec.name]:
                x, h0 = breslow_baseline(train["risk"].to_numpy(np.float64), train["event"].to_numpy(),
                                         train["time_days"].to_numpy(np.float64))
                member["baseline"] = {"times_days": x.tolist(), "cum_hazard": h0.tolist()}
        shutil.copyfile(fold_dir / "checkpoint.pt", out_dir / member["file"])
        members.append(member)
    if not members:
        raise InputDataError(f"bundle {model_name}/{task}: no fold folder given.")
    genes = None
    if "omics" in card["modalities"]:
        from gliofuse.omics.matrix import read_omics_

        matrix = read_omics_(Path(omics_path))  # type: ignore[arg-type]
        names = matrix.gene_names if len(matrix.gene_names) == len(matrix.genes) else [""] * len(matrix.genes)
        genes = pd.DataFrame({"gene_id": list(matrix.genes), "gene_name": list(names)})
        genes.to_csv(out_dir / GENES_TSV, sep="\t", index=False)
    encoder = feature_encoder_([Path(p) for p in feature_paths]) if "wsi" in card["modalities"] else None
    longest = max((float(np.nanmax(t)) for t in train_times if len(t)), default=0.0)
    meta = {"format_version": BUNDLE_FORMAT_VERSION, "model": model_name, "task": spec.name,
            "task_kind": spec.kind, "class_names": list(spec.class_names), "card": card,
            "ensemble": "mean of the fold models (risk, survival curve, class probabilities)",
            "encoder": {"name": encoder, "feature_dim": int(ckpt["input_dims"].get("wsi", 0))},
            "n_genes": 0 if genes is None else len(genes),
            "survival_curve_days": np.round(np.linspace(0.0, longest, N_CURVE_TIMES), 1).tolist() if longest else [],
            "training": t_cfg.model_dump(mode="json"), "members": members,
            "provenance": provenance(config=t_cfg.model_dump(mode="json"),
                                     inputs={m["file"]: out_dir / m["file"] for m in members})}
    path = out_dir / BUNDLE_JSON
    write_json_(path, meta)
    logger.info("bundle of %s/%s with %d fold model(s) -> %s", model_name, spec.name, len(members), out_dir)
    return path


def bundle_dir(out_root: Path, model_name: str, task: str) -> Path:
    """``<out_root>/<model>/<task>/bundle`` (the workflow's ``results/models/...``)."""
    return Path(out_root) / model_name / task / "bundle"


def export_bundles_(*, cfg: GliofuseConfig, checkpoints: Sequence[Path], omics_path: Path | None,
                    feature_paths: Sequence[Path], out_root: Path) -> list[Path]:
    """One bundle per model x task of ``checkpoints`` (fold ``checkpoint.pt`` files, grouped by the model and
    task they record) in :func:`bundle_dir`; returns the ``bundle.json`` paths. One process for all bundles."""
    groups: dict[tuple[str, str], list[Path]] = {}
    for path in checkpoints:
        ckpt = load_checkpoint_(Path(path))
        groups.setdefault((str(ckpt["model_name"]), str(ckpt["task"])), []).append(Path(path).parent)
    return [export_bundle_(cfg=cfg, model_name=m, task=t, fold_dirs=dirs, omics_path=omics_path,
                           feature_paths=feature_paths, out_dir=bundle_dir(out_root, m, t))
            for (m, t), dirs in sorted(groups.items())]


def _check_trained_with(ckpt: Mapping[str, Any], cfg: GliofuseConfig, fold_dir: Path, omics_path: Path | None) -> None:
    """Refuse a checkpoint trained with another config or another omics matrix than the ones given."""
    settings = fold_settings(cfg, ckpt["model_name"], ckpt["task"], ckpt["model_params"], ckpt["tasks"])
    trained = ckpt.get("provenance", {})
    if provenance(config=settings)["config_hash"] != trained.get("config_hash"):
        raise InputDataError(f"{fold_dir}/checkpoint.pt was trained with another training config than the one "
                             "given; export with the config of that run (results/config/training.yaml) or retrain.")
    want = trained.get("inputs", {}).get("omics")
    if omics_path is not None and want is not None and file_hash(omics_path) != want:
        raise InputDataError(f"{fold_dir}/checkpoint.pt was trained on another omics matrix than {omics_path}; "
                             "the bundle's gene list must be the training matrix's. Pass that matrix.")


def load_bundle_(path: Path) -> Bundle:
    """Read and rebuild a bundle (the folder, or its ``bundle.json``); the one reader of the layout.

    Raises
    ------
    InputDataError
        Not a bundle, another ``format_version``, a model unknown to this gliofuse's registry, or a member
        whose checkpoint differs from the bundle (model, card, task, checkpoint format); messages name it.
    """
    from gliofuse.models.registry import get_model_card

    root = Path(path)
    root = root.parent if root.name == BUNDLE_JSON else root
    meta = read_json_(root / BUNDLE_JSON, what="model bundle")
    version = meta.get("format_version") if isinstance(meta, dict) else None
    if version != BUNDLE_FORMAT_VERSION:
        raise InputDataError(f"bundle {root}: format_version {version!r}, but this gliofuse reads bundles of "
                             f"format_version {BUNDLE_FORMAT_VERSION}. Export the bundle again with this gliofuse.")
    try:
        card = get_model_card(str(meta["model"])).to_dict()
    except ConfigError as exc:
        raise InputDataError(f"bundle {root}: model {meta['model']!r} is unknown to this gliofuse ({exc})") from None
    training = TrainingConfig.model_validate(meta["training"])

    def task_of(name: str) -> TaskSpec:
        return get_task(name, diagnosis_classes=training.diagnosis_classes, grade_label=training.grade_label)

    spec = task_of(meta["task"])
    genes = (read_table_(root / GENES_TSV, required=["gene_id", "gene_name"], what="bundle gene list",
                         dtype={"gene_id": str, "gene_name": str}).fillna("")
             if "omics" in card["modalities"] else pd.DataFrame({"gene_id": [], "gene_name": []}))
    gene_ids = list(genes["gene_name"] if (genes["gene_name"] != "").all() else genes["gene_id"])
    members = [_member(root, m, card=card, meta=meta, training=training, task_of=task_of, gene_ids=gene_ids)
               for m in meta["members"]]
    return Bundle(path=root, meta=meta, training=training, spec=spec, genes=genes, members=members)


def _member(root: Path, m: Mapping[str, Any], *, card: Mapping[str, Any], meta: Mapping[str, Any],
            training: TrainingConfig, task_of: Any, gene_ids: Sequence[str]) -> Member:
    """Rebuild one fold model through the training code and load its weights."""
    from gliofuse.training.assemble import build_model_and_heads

    ckpt = load_checkpoint_(root / m["file"], model_name=meta["model"], card=card, task=meta["task"])
    objectives = {name: objective_from_state(task_of(name), ckpt["objectives"][name]) for name in ckpt["tasks"]}
    omics = (None if ckpt.get("omics_preprocessing") is None
             else OmicsPreprocessor.from_state_dict(ckpt["omics_preprocessing"]))
    gene_sets = None if not ckpt.get("gene_sets") else GeneSetPreprocessor.from_state_dict(ckpt["gene_sets"])
    model, heads = build_model_and_heads(meta["model"], ckpt["model_params"], input_dims=ckpt["input_dims"],
                                         objectives=objectives, omics=omics, gene_ids=gene_ids,
                                         training=training.model_copy(update={"device": "cpu"}), seed=int(m["seed"]))
    model.load_state_dict(ckpt["model_state"])
    head_dict = nn.ModuleDict(heads)
    head_dict.load_state_dict(ckpt["heads_state"])
    model.eval()
    head_dict.eval()
    base = m.get("baseline")
    baseline = None if not base else (np.asarray(base["times_days"], dtype=np.float64),
                                      np.asarray(base["cum_hazard"], dtype=np.float64))
    return Member(fold=int(m["fold"]), seed=int(m["seed"]), model=model, heads=head_dict, objectives=objectives,
                  omics=omics, gene_sets=gene_sets, baseline=baseline)
