"""``gliofuse data`` and ``train``: the cohort and its splits, fold training."""

from __future__ import annotations

import argparse
from pathlib import Path

from gliofuse.cli.common import (
    _add,
    _cfg,
    _feature_paths,
    _feature_status_paths,
    _one_or_none,
    _section,
    _sheet_patients,
    _torch_threads,
    add_group,
)
from gliofuse.errors import ConfigError
from gliofuse.tasks import TASK_NAMES


def cmd_data_splits(args: argparse.Namespace) -> None:
    from gliofuse.cohorts.sheet import read_slide_sheet_, slide_patients
    from gliofuse.data.cohort import check_failed_slides, cohort_members, cohort_table
    from gliofuse.data.splits import make_splits, write_splits_
    from gliofuse.io import provenance, write_table_
    from gliofuse.labels.tables import read_label_table_
    from gliofuse.omics.matrix import read_omics_

    cfg = _cfg(args)
    labels = read_label_table_(Path(args.labels))
    omics_patients = list(read_omics_(Path(args.omics)).patients)
    feature_status = _feature_status_paths(args)
    check_failed_slides([Path(p) for p in args.slide_status], feature_status,
                        max_fraction=cfg.data.max_failed_slide_fraction)
    patients = slide_patients(read_slide_sheet_(args.slides, check_files=False))
    table = cohort_table(labels=labels, slide_status_paths=[Path(p) for p in args.slide_status],
                         omics_patients=omics_patients, slide_patients=patients, feature_status_paths=feature_status)
    if len(args.out_folds) != cfg.data.n_fold_ids:
        raise ConfigError(f"--out-folds names {len(args.out_folds)} files but data.n_folds x data.n_repeats = "
                          f"{cfg.data.n_folds} x {cfg.data.n_repeats} = {cfg.data.n_fold_ids}.")
    splits = make_splits(cohort_members(table), n_folds=cfg.data.n_folds, val_fraction=cfg.data.val_fraction,
                         stratify_by=cfg.data.stratify_by, seed=cfg.seed, n_repeats=cfg.data.n_repeats)
    write_table_(Path(args.out_cohort), table,
                 prov=provenance(config=_section(cfg, "data"), inputs={"labels": args.labels, "omics": args.omics}))
    write_splits_(splits, out_paths=[Path(p) for p in args.out_folds])


def cmd_train_fold(args: argparse.Namespace) -> None:
    from gliofuse.training.fold import train_fold_

    cfg = _cfg(args)
    _torch_threads(args.threads)
    train_fold_(cfg=cfg, model_name=args.model, task=args.task, split_path=Path(args.split),
                labels_path=Path(args.labels), omics_path=Path(args.omics) if args.omics else None,
                feature_paths=_feature_paths(args), out_dir=Path(args.out_dir),
                slide_patients=_sheet_patients(_one_or_none(args.slides, "--slides")))


def cmd_train_folds(args: argparse.Namespace) -> None:
    from gliofuse.training.fold import train_folds_

    cfg = _cfg(args)
    _torch_threads(args.threads)
    train_folds_(cfg=cfg, model_name=args.model, task=args.task, split_paths=[Path(p) for p in args.splits],
                 labels_path=Path(args.labels), omics_path=Path(args.omics) if args.omics else None,
                 feature_paths=_feature_paths(args), out_dirs=[Path(p) for p in args.out_dirs],
                 slide_patients=_sheet_patients(_one_or_none(args.slides, "--slides")))


def _add_training_inputs(p: argparse.ArgumentParser) -> None:
    """The inputs of `train fold` and `train folds` besides the split(s) and output folder(s)."""
    p.add_argument("--model", required=True)
    p.add_argument("--task", required=True, choices=TASK_NAMES)
    p.add_argument("--labels", required=True)
    p.add_argument("--omics", default=None)
    p.add_argument("--features", nargs="+", default=None, help="features h5 files")
    p.add_argument("--feature-shards", nargs="+", default=None,
                   help="features shard tables (results/features/<encoder>/shards/shard_<k>.tsv); their h5 files "
                   "count as --features")
    p.add_argument("--slides", nargs="*", default=None, help="slide sheet (results/cohort/slides.tsv): the patient "
                   "of each feature file <slide_id>.h5 (default: the first 12 characters of the name)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")


def add_commands(stages: argparse._SubParsersAction) -> None:
    """Register the ``data`` and ``train`` stages."""
    g = add_group(stages, "data", "cohort and cross-validation splits")
    p = _add(g, "splits", cmd_data_splits, "build the cohort and patient-level K-fold split files")
    p.add_argument("--labels", required=True)
    p.add_argument("--omics", required=True)
    p.add_argument("--slides", required=True, help="the slide sheet (results/cohort/slides.tsv): patient of each slide")
    p.add_argument("--slide-status", nargs="+", required=True)
    p.add_argument("--feature-status", nargs="*", default=None,
                   help="features status JSONs: slides whose extraction failed are left out (default: not checked)")
    p.add_argument("--feature-shards", nargs="+", default=None,
                   help="features shard tables (results/features/<encoder>/shards/shard_<k>.tsv); their status JSONs count as --feature-status")
    p.add_argument("--out-cohort", required=True)
    p.add_argument("--out-folds", nargs="+", required=True, help="fold_<i>.json paths, in global fold order (n_folds x n_repeats)")

    g = add_group(stages, "train", "model training")
    p = _add(g, "fold", cmd_train_fold, "train one model on one task and fold")
    p.add_argument("--split", required=True)
    p.add_argument("--out-dir", required=True)
    _add_training_inputs(p)
    p = _add(g, "folds", cmd_train_folds, "train one model on one task and several folds, in this process")
    p.add_argument("--splits", nargs="+", required=True, help="fold_<k>.json of each fold")
    p.add_argument("--out-dirs", nargs="+", required=True, help="output folder of each fold, in --splits order")
    _add_training_inputs(p)
