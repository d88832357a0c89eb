"""Train one model for one task on one cross-validation fold (``gliofuse train fold``): read, assemble, fit, write;
or on several folds in one process (``gliofuse train folds``: the same fold code, once per fold).

Reads the fold split (docs/data-contracts.md §7), the label table (§3), the omics matrix (§6)
and the slide feature files (§5) (:mod:`gliofuse.training.inputs`), assembles the fold
(:mod:`gliofuse.training.assemble`) and fits it (:mod:`gliofuse.training.fit`), which writes the §8 outputs
to ``out_dir``. A finished fold (its ``predictions.tsv`` exists with matching provenance) is skipped, so reruns
are cheap.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from gliofuse.config import GliofuseConfig
from gliofuse.data.bags import group_feature_files_, patient_id_from_path
from gliofuse.data.splits import read_split_, short_ids
from gliofuse.errors import ConfigError, InputDataError
from gliofuse.features.store import FeatureFileInfo
from gliofuse.io import provenance
from gliofuse.tasks import get_task
from gliofuse.training.provenance import features_digest, fold_settings, is_fold_done

logger = logging.getLogger(__name__)


def _patient_of(path: Path, slide_patients: Mapping[str, str] | None) -> str | None:
    """The patient of a feature file: the sheet's (None for a slide not in it) or the first 12 characters."""
    return patient_id_from_path(path) if slide_patients is None else slide_patients.get(path.stem)


def train_fold_(*, cfg: GliofuseConfig, model_name: str, task: str, split_path: Path, labels_path: Path,
                omics_path: Path | None, feature_paths: list[Path], out_dir: Path,
                slide_patients: Mapping[str, str] | None = None) -> None:
    """Train ``model_name`` for ``task`` on one cross-validation fold and write its outputs.

    Parameters
    ----------
    cfg : validated configuration; uses ``seed`` and the ``training`` section with
        ``training.model_training[model_name]`` applied (``model_overrides[model_name]`` are the model's
        hyper-parameter overrides).
    model_name : registered model (``gliofuse models list``).
    task : ``"survival"``, ``"grade"`` or ``"diagnosis"``.
    split_path : ``results/splits/fold_<k>.json`` (contract §7).
    labels_path : ``results/labels/labels.tsv`` (contract §3).
    omics_path : ``results/omics/expression.h5`` (contract §6); may be None for WSI-only models.
    feature_paths : slide feature files (contract §5, ``<slide_id>.h5``). May be empty for omics-only models.
    slide_patients : ``{slide_id: patient_id}`` of the slide sheet (contract §0); None: patient id = the first
        12 characters of the stem (TCGA barcodes).
    out_dir : ``results/training/<model>/<task>/fold_<k>/``; receives ``checkpoint.pt``,
        ``history.tsv``, ``gc_dynamics.tsv``, ``predictions.tsv`` (contract §8), ``attention.h5`` (§10, models
        with attention) and ``last.pt`` while training (resumed after an interruption when ``training.resume``).

    Notes
    -----
    Patients without the task's outcome (survival: unknown time/event; classification: label -1)
    are dropped from training and from the prediction table; counts are logged. With
    ``training.multitask`` the other tasks of ``training.tasks`` get heads too; their missing
    outcomes are masked in their losses. Everything fitted on data uses the training partition only
    (the validation partition of the split, carved from the training patients, selects the epoch):
    omics reduced to the ``training.n_top_genes`` most variable genes and z-scored, one z-scored
    vector per ``training.gene_sets`` entry (sets that cannot be matched are skipped with a warning),
    survival bin edges (``survival_loss: nll``) and class weights. If ``out_dir/predictions.tsv``
    exists with matching provenance the fold is skipped.

    Raises
    ------
    ConfigError
        Unknown model, task or model parameter; task unsupported by the model; a needed input not given.
    InputDataError
        The split, labels, features or omics violate their contracts, or a split patient lacks one.
    """
    from gliofuse.models.registry import get_model_card, resolve_model_params
    from gliofuse.training.assemble import assemble_fold
    from gliofuse.training.fit import fit_fold_
    from gliofuse.training.inputs import read_fold_data_

    t_cfg = cfg.training.for_model(model_name).for_task(task)
    spec = get_task(task, diagnosis_classes=t_cfg.diagnosis_classes, grade_label=t_cfg.grade_label)
    task_names = [spec.name]
    if t_cfg.multitask:
        task_names += [str(getattr(x, "value", x)) for x in t_cfg.tasks if str(getattr(x, "value", x)) != spec.name]
    card = get_model_card(model_name)
    unsupported = [n for n in task_names if n not in card.tasks]
    if unsupported:
        raise ConfigError(f"model {model_name!r} does not support task {unsupported[0]!r} (it supports "
                          f"{list(card.tasks)}). Change training.tasks or training.models.")
    inherited, own = cfg.training.model_overrides_for(model_name)
    params = resolve_model_params(model_name, inherited, **own)
    uses_wsi, uses_omics = "wsi" in card.modalities, "omics" in card.modalities
    if uses_omics and omics_path is None:
        raise ConfigError(f"model {model_name!r} reads omics but no omics matrix was given (--omics).")
    if uses_wsi and not feature_paths:
        raise ConfigError(f"model {model_name!r} reads WSI features but no feature files were given (--features).")

    out_dir = Path(out_dir)
    split = read_split_(Path(split_path))
    inputs: dict[str, Path] = {"split": Path(split_path), "labels": Path(labels_path)}
    by_patient: dict[str, list[FeatureFileInfo]] | None = None
    wsi_dim = 0
    extra: dict[str, Any] = {"model": model_name, "task": spec.name, "fold": split.fold,
                             "card": {**card.to_dict(), "params": params}}  # read by `gliofuse report cards`
    if uses_wsi:
        wanted = set(split.patients)
        fold_files = [Path(p) for p in feature_paths if _patient_of(Path(p), slide_patients) in wanted]
        by_patient, wsi_dim = group_feature_files_(fold_files, slide_patients)
        no_feat = [p for p in split.patients if p not in by_patient]
        if no_feat:
            raise InputDataError(
                f"{len(no_feat)} patient(s) of split {split_path} have no usable slide feature file "
                f"(status ok, N > 0) among the {len(feature_paths)} given: {short_ids(no_feat)}. "
                "Rerun `data_splits` (cohort.tsv `in_cohort` needs an ok slide with features) or `features_extract`.")
        extra["features_digest"] = features_digest([i for p in sorted(by_patient) for i in by_patient[p]])
    if uses_omics:
        assert omics_path is not None
        inputs["omics"] = Path(omics_path)
    prov = provenance(config=fold_settings(cfg, model_name, spec.name, params, task_names), inputs=inputs,
                      extra=extra)
    if is_fold_done(out_dir, prov):
        logger.info("fold %d of %s/%s is already trained (provenance matches); skipping %s",
                    split.fold, model_name, spec.name, out_dir)
        return

    specs = [get_task(n, diagnosis_classes=t_cfg.diagnosis_classes, grade_label=t_cfg.grade_label)
             for n in task_names]
    data, dropped = read_fold_data_(split, split_path=Path(split_path), labels_path=Path(labels_path),
                                    omics_path=Path(omics_path) if uses_omics else None,  # type: ignore[arg-type]
                                    tasks=specs, slide_files=by_patient, wsi_dim=wsi_dim)
    seed = cfg.seed + split.fold
    run = assemble_fold(data, model_name=model_name, model_params=params, tasks=specs, training=t_cfg, seed=seed)
    fit_fold_(run, optim=t_cfg, seed=seed, out_dir=out_dir, fold=split.fold, prov=prov,
              checkpoint_extra={"split": {"path": str(split_path), "fold": split.fold, "n_folds": split.n_folds,
                                          "seed": split.seed, "stratify_by": split.stratify_by},
                                "n_patients": {k: len(v) for k, v in data.partitions.items()}, "dropped": dropped})


def train_folds_(*, cfg: GliofuseConfig, model_name: str, task: str, split_paths: list[Path], labels_path: Path,
                 omics_path: Path | None, feature_paths: list[Path], out_dirs: list[Path],
                 slide_patients: Mapping[str, str] | None = None) -> None:
    """Train ``model_name`` for ``task`` on several folds in this process, one after another.

    Each fold goes through :func:`train_fold_` exactly as in its own job (the fold's seed ``cfg.seed + fold``,
    its own outputs, provenance and skip-if-done), so ``out_dirs[i]`` ends up byte-identical in its predictions
    to a ``gliofuse train fold`` run of ``split_paths[i]``; only the Python/torch start-up is shared
    (``training.folds_per_job: all``).

    Parameters
    ----------
    split_paths : the folds' ``results/splits/fold_<k>.json``, paired by position with ``out_dirs``.
    out_dirs : the folds' ``results/training/<model>/<task>/fold_<k>/``.
    Other parameters: as :func:`train_fold_`.

    Raises
    ------
    ConfigError
        ``split_paths`` and ``out_dirs`` differ in length or are empty, or a folder is given twice.
    """
    if not split_paths or len(split_paths) != len(out_dirs):
        raise ConfigError(f"train folds needs one --out-dirs folder per --splits file, in the same order; got "
                          f"{len(split_paths)} split(s) and {len(out_dirs)} folder(s).")
    if len({Path(d).resolve() for d in out_dirs}) != len(out_dirs):
        raise ConfigError(f"train folds: an output folder is given twice in --out-dirs {[str(d) for d in out_dirs]}; "
                          "each fold needs its own folder.")
    for split_path, out_dir in zip(split_paths, out_dirs, strict=True):
        logger.info("training %s/%s: split %s -> %s", model_name, task, split_path, out_dir)
        train_fold_(cfg=cfg, model_name=model_name, task=task, split_path=Path(split_path), labels_path=labels_path,
                    omics_path=omics_path, feature_paths=feature_paths, out_dir=Path(out_dir),
                    slide_patients=slide_patients)
