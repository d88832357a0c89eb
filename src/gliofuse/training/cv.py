"""Cross-validation entry point: train one model for one task on one fold (``gliofuse train fold``).

Reads the fold split (docs/data-contracts.md §7), the label table (§3), the omics matrix (§6)
and the slide feature files (§5); writes §8 outputs to ``out_dir``. A finished fold (its
``predictions.tsv`` exists with matching provenance) is skipped, so reruns are cheap.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from gliofuse.config import GliofuseConfig
from gliofuse.data.bags import group_feature_files_, patient_id_from_path
from gliofuse.data.batch import Targets
from gliofuse.data.datasets import PatientBagDataset
from gliofuse.data.splits import read_split_, short_ids
from gliofuse.errors import ConfigError, InputDataError
from gliofuse.features.store import FeatureFileInfo
from gliofuse.io import provenance, read_table_, sidecar_path
from gliofuse.omics.matrix import read_omics_
from gliofuse.omics.normalize import GeneSetPreprocessor, OmicsPreprocessor
from gliofuse.tasks import SPLITS, TaskSpec, diagnosis4_labels, get_task

logger = logging.getLogger(__name__)


def read_task_targets_(labels_path: Path, patients: Sequence[str], task: TaskSpec) -> tuple[Targets, np.ndarray]:
    """Targets of ``patients`` for ``task`` from the label table (contract §3).

    Returns
    -------
    targets : :class:`Targets` aligned to ``patients``.
    usable : bool array, shape = (len(patients),): the patient has this task's outcome
        (survival: ``time_days`` and ``event`` known; classification: label != -1).

    Raises
    ------
    InputDataError
        Missing columns, duplicate patients, a split patient without a label row, or bad values.
    """
    four_class = task.name == "diagnosis" and task.n_classes == 4
    required = ["patient_id", "time_days", "event"] + ([task.label_column] if task.label_column else [])
    if four_class:
        required.append("who2021_grade")
    labels = read_table_(labels_path, required=required, what="label table", dtype={"patient_id": str})
    dup = labels["patient_id"][labels["patient_id"].duplicated()].tolist()
    if dup:
        raise InputDataError(f"label table {labels_path}: duplicate patient_id {short_ids(dup)}. Rerun `labels_build`.")
    labels = labels.set_index("patient_id")
    absent = [p for p in patients if p not in labels.index]
    if absent:
        raise InputDataError(f"{len(absent)} patient(s) of the split have no row in the label table "
                             f"{labels_path}: {short_ids(absent)}. Rerun `data_splits` after `labels_build`.")
    rows = labels.loc[list(patients)]
    time_days = pd.to_numeric(rows["time_days"], errors="coerce").to_numpy(dtype=np.float64)
    event = pd.to_numeric(rows["event"], errors="coerce").to_numpy(dtype=np.float64)
    label = np.full(len(patients), -1, dtype=np.int64)
    if task.kind == "survival":
        usable = np.isfinite(time_days) & np.isfinite(event)
        bad_event = [p for p, e, u in zip(patients, event, usable, strict=True) if u and e not in (0.0, 1.0)]
        if bad_event:
            raise InputDataError(f"label table {labels_path}: column 'event' must be 0/1 (1 = death observed); "
                                 f"bad values for {short_ids(bad_event)}.")
        bad_time = [p for p, t, u in zip(patients, time_days, usable, strict=True) if u and not t > 0]
        if bad_time:
            raise InputDataError(f"label table {labels_path}: column 'time_days' must be > 0 days; "
                                 f"bad values for {short_ids(bad_time)}. Fix labels_build.")
    else:
        assert task.label_column is not None
        raw = pd.to_numeric(rows[task.label_column], errors="coerce").to_numpy(dtype=np.float64)
        raw = np.where(np.isfinite(raw), raw, -1.0)
        n_source = 3 if four_class else task.n_classes
        bad = [p for p, v in zip(patients, raw, strict=True) if v != -1 and (v not in range(n_source))]
        if bad:
            raise InputDataError(
                f"label table {labels_path}: column {task.label_column!r} must hold class indices "
                f"0..{n_source - 1} or -1 (missing); bad values for {short_ids(bad)}.")
        if four_class:
            grade = pd.to_numeric(rows["who2021_grade"], errors="coerce").to_numpy(dtype=np.float64)
            raw = np.asarray(diagnosis4_labels(raw.tolist(), grade.tolist()), dtype=np.float64)
        label = raw.astype(np.int64)
        usable = label >= 0
    return Targets(time_days=time_days, event=event, label=label), usable


_NOT_IN_FOLD_CONFIG = frozenset({"models", "tasks", "device", "resume", "keep_epoch_checkpoints", "model_overrides",
                                 "model_training"})


def _fold_config(cfg: GliofuseConfig, model_name: str, task: str, params: dict[str, Any],
                 tasks: Sequence[str] = ()) -> dict[str, Any]:
    """The settings a fold's result depends on (model list, device and bookkeeping options excluded)."""
    training = cfg.training.for_model(model_name)
    t = training.model_dump(mode="json")
    settings = {k: v for k, v in t.items() if k not in _NOT_IN_FOLD_CONFIG}
    if not training.multitask:
        settings.pop("loss_weights")
    return {"seed": cfg.seed, "model": model_name, "task": task, "model_params": params,
            "trained_tasks": list(tasks or [task]), **settings}


def _features_digest(infos: Sequence[FeatureFileInfo]) -> str:
    """Cheap identity of the feature files: name, shape and their own provenance attribute."""
    blob = json.dumps([[i.path.name, i.status, i.n_patches, i.embed_dim, i.provenance] for i in infos])
    return "sha256:" + hashlib.sha256(blob.encode()).hexdigest()


def _normalised(obj: Any) -> Any:
    return json.loads(json.dumps(obj, sort_keys=True, default=str))


def is_fold_done(out_dir: Path, prov: dict[str, Any]) -> bool:
    """True when ``out_dir`` holds finished outputs whose provenance matches ``prov``."""
    pred = Path(out_dir) / "predictions.tsv"
    side = sidecar_path(pred)
    if not (pred.exists() and side.exists() and (Path(out_dir) / "checkpoint.pt").exists()):
        return False
    try:
        old = json.loads(side.read_text())
    except (OSError, json.JSONDecodeError):
        return False
    keys = ("gliofuse_version", "config_hash", "inputs", "extra")
    new = _normalised(prov)
    return all(old.get(k) == new.get(k) for k in keys)


def train_fold_(*, cfg: GliofuseConfig, model_name: str, task: str, split_path: Path, labels_path: Path,
                omics_path: Path | None, feature_paths: list[Path], out_dir: Path) -> None:
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
    feature_paths : slide feature files (contract §5); patient id = first 12 characters of the stem.
        May be empty for omics-only models.
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
    from gliofuse.models.registry import create_model, get_model_card, resolve_model_params
    from gliofuse.training.harness import FitConfig, fit_fold_, resolve_device, seed_fold
    from gliofuse.training.objectives import build_objective

    t_cfg = cfg.training.for_model(model_name)
    spec = get_task(task, diagnosis_classes=t_cfg.diagnosis_classes)
    task_names = [spec.name]
    if t_cfg.multitask:
        task_names += [str(getattr(x, "value", x)) for x in t_cfg.tasks if str(getattr(x, "value", x)) != spec.name]
    specs = {n: get_task(n, diagnosis_classes=t_cfg.diagnosis_classes) for n in task_names}
    card = get_model_card(model_name)
    unsupported = [n for n in task_names if n not in card.tasks]
    if unsupported:
        raise ConfigError(f"model {model_name!r} does not support task {unsupported[0]!r} (it supports "
                          f"{list(card.tasks)}). Change training.tasks or training.models.")
    params = resolve_model_params(model_name, **t_cfg.model_overrides.get(model_name, {}))
    uses_wsi, uses_omics = "wsi" in card.modalities, "omics" in card.modalities
    if uses_omics and omics_path is None:
        raise ConfigError(f"model {model_name!r} reads omics but no omics matrix was given (--omics).")
    if uses_wsi and not feature_paths:
        raise ConfigError(f"model {model_name!r} reads WSI features but no feature files were given (--features).")

    out_dir = Path(out_dir)
    split = read_split_(Path(split_path))
    patients = split.patients

    inputs: dict[str, Path] = {"split": Path(split_path), "labels": Path(labels_path)}
    by_patient: dict[str, list[FeatureFileInfo]] = {}
    wsi_dim = 0
    extra: dict[str, Any] = {"model": model_name, "task": spec.name, "fold": split.fold,
                             "card": {**card.to_dict(), "params": params}}  # read by `gliofuse report cards`
    if uses_wsi:
        wanted = set(patients)
        fold_files = [Path(p) for p in feature_paths if patient_id_from_path(p) in wanted]
        by_patient, wsi_dim = group_feature_files_(fold_files)
        no_feat = [p for p in patients if p not in by_patient]
        if no_feat:
            raise InputDataError(
                f"{len(no_feat)} patient(s) of split {split_path} have no usable slide feature file "
                f"(status ok, N > 0) among the {len(feature_paths)} given: {short_ids(no_feat)}. "
                "Rerun `data_splits` (cohort.tsv `in_cohort` needs an ok slide with features) or `features_extract`.")
        extra["features_digest"] = _features_digest([i for p in sorted(by_patient) for i in by_patient[p]])
    if uses_omics:
        assert omics_path is not None
        inputs["omics"] = Path(omics_path)
    prov = provenance(config=_fold_config(cfg, model_name, spec.name, params, task_names), inputs=inputs,
                      extra=extra)
    if is_fold_done(out_dir, prov):
        logger.info("fold %d of %s/%s is already trained (provenance matches); skipping %s",
                    split.fold, model_name, spec.name, out_dir)
        return

    targets, usable = read_task_targets_(Path(labels_path), patients, spec)
    if len(task_names) > 1:
        # multi-task: the primary task decides who is kept; other outcomes may be missing (masked in the losses)
        labels = {n: read_task_targets_(Path(labels_path), patients, specs[n])[0].label
                  for n in task_names if specs[n].kind == "classification"}
        targets = Targets(time_days=targets.time_days, event=targets.event, label=targets.label, labels=labels)
    omics_rows = None
    matrix = None
    if uses_omics:
        matrix = read_omics_(Path(omics_path))  # type: ignore[arg-type]
        no_omics = [p for p in patients if p not in set(matrix.patients)]
        if no_omics:
            raise InputDataError(f"{len(no_omics)} patient(s) of split {split_path} have no profile in the omics "
                                 f"matrix {omics_path}: {short_ids(no_omics)}. Rerun `data_splits` after `omics_matrix`.")
        omics_rows = matrix.rows(patients)

    index = {p: i for i, p in enumerate(patients)}
    keep: dict[str, list[int]] = {}
    dropped: dict[str, int] = {}
    for name in SPLITS:
        idx = [index[p] for p in split.partition(name)]
        keep[name] = [i for i in idx if usable[i]]
        dropped[name] = len(idx) - len(keep[name])
    if sum(dropped.values()):
        what = "unknown time_days/event" if spec.kind == "survival" else f"{spec.label_column} = -1"
        logger.info("task %s: dropped %d of %d patients with %s (train %d, val %d, test %d)", spec.name,
                    sum(dropped.values()), len(patients), what, dropped["train"], dropped["val"], dropped["test"])
    if len(keep["train"]) < 2:
        raise InputDataError(f"task {spec.name}: fewer than 2 training patients with an outcome in fold "
                             f"{split.fold} ({split_path}).")
    if spec.kind == "survival" and not np.nansum(targets.event[keep["train"]]) > 0:
        raise InputDataError(f"task survival: no death event among the training patients of fold {split.fold}; "
                             "the survival model cannot be fit. Use fewer folds or stratify_by: event.")

    preproc = None
    gene_sets = None
    if omics_rows is not None:
        assert matrix is not None
        preproc = OmicsPreprocessor(n_top_genes=t_cfg.n_top_genes).fit(omics_rows[keep["train"]])
        gene_sets = _fit_gene_sets(t_cfg.gene_sets, omics_rows[keep["train"]], matrix.gene_names)

    seed = cfg.seed + split.fold

    def make(name: str) -> PatientBagDataset:
        idx = keep[name]
        sub = Targets(time_days=targets.time_days[idx], event=targets.event[idx], label=targets.label[idx],
                      labels={k: v[idx] for k, v in targets.labels.items()})
        rows = None if omics_rows is None else omics_rows[idx]
        return PatientBagDataset(
            patient_ids=[patients[i] for i in idx], slide_files=by_patient if uses_wsi else None,
            omics=None if preproc is None else preproc.transform(rows),  # type: ignore[arg-type]
            omics_sets=None if gene_sets is None else gene_sets.transform(rows),  # type: ignore[arg-type]
            targets=sub, max_patches=t_cfg.max_patches if name == "train" else None, seed=seed,
            bag_level=t_cfg.bag_level)

    datasets = {name: make(name) for name in SPLITS}
    input_dims = {"wsi": wsi_dim, "omics": 0 if preproc is None else preproc.n_features}
    if gene_sets is not None:
        input_dims.update({f"omics:{n}": d for n, d in gene_sets.dims.items()})
    train_idx = keep["train"]
    objectives = {
        n: build_objective(specs[n], train_time_days=targets.time_days[train_idx],
                           train_labels=(targets.labels.get(n, targets.label)[train_idx]
                                         if specs[n].kind == "classification" else None),
                           survival_loss=t_cfg.survival_loss, n_bins=t_cfg.n_bins, nll_alpha=t_cfg.nll_alpha,
                           class_weights=t_cfg.class_weights, weight=t_cfg.loss_weights.get(n, 1.0))
        for n in task_names}
    seed_fold(seed, resolve_device(t_cfg.device))
    model = create_model(model_name, input_dims=input_dims, tasks=tuple(task_names), **params)
    if preproc is not None:
        assert matrix is not None  # gene symbols where the matrix has them (foundation tables key on either)
        ids = matrix.gene_names if len(matrix.gene_names) == len(matrix.genes) else matrix.genes
        model.bind_omics_genes({"omics": [ids[i] for i in preproc.gene_index]})
    heads = {n: o.build_head(model.embed_dim) for n, o in objectives.items()}
    fit = FitConfig.from_training(t_cfg, seed=seed)
    fit_fold_(model=model, heads=heads, objectives=objectives, primary=spec.name, datasets=datasets, fit=fit,
              out_dir=out_dir, model_name=model_name, fold=split.fold, prov=prov,
              checkpoint_extra={"model_params": params, "input_dims": input_dims,
                                "rna_encoder": getattr(model, "rna_provenance", None),
                                "omics_preprocessing": None if preproc is None else preproc.state_dict(),
                                "gene_sets": None if gene_sets is None else gene_sets.state_dict(),
                                "bag_level": t_cfg.bag_level,
                                "split": {"path": str(split_path), "fold": split.fold, "n_folds": split.n_folds,
                                          "seed": split.seed, "stratify_by": split.stratify_by},
                                "n_patients": {k: len(v) for k, v in keep.items()}, "dropped": dropped})


def _fit_gene_sets(names: Sequence[str], train_rows: np.ndarray, gene_names: Sequence[str]) -> GeneSetPreprocessor | None:
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
