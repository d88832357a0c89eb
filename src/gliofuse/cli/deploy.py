"""``gliofuse bundle``, ``predict`` and ``external``: model bundles, prediction, external validation cohorts."""

from __future__ import annotations

import argparse
from pathlib import Path

from gliofuse.cli.common import (
    _add,
    _cfg,
    _feature_paths,
    _one_or_none,
    _sheet_patients,
    _torch_threads,
    add_group,
)


def cmd_bundle_export(args: argparse.Namespace) -> None:
    from gliofuse.deploy.bundle import export_bundles_

    export_bundles_(cfg=_cfg(args), checkpoints=[Path(p) for p in args.checkpoints],
                    omics_path=Path(args.omics) if args.omics else None,
                    feature_paths=_feature_paths(args, required=False), out_root=Path(args.out_root))


def cmd_predict(args: argparse.Namespace) -> None:
    from gliofuse.config import PredictConfig
    from gliofuse.deploy.apply import predict_cohort_
    from gliofuse.deploy.bundle import load_bundle_
    from gliofuse.deploy.cohort import read_cohort_inputs_

    settings = _cfg(args).predict if args.config else PredictConfig()
    _torch_threads(args.threads)
    bundle = load_bundle_(Path(args.bundle))
    inputs = read_cohort_inputs_(bundle, feature_paths=[Path(p) for p in args.features or []],
                                 omics_path=_one_or_none(args.omics, "--omics"), patients=args.patients,
                                 max_missing_gene_fraction=settings.max_missing_gene_fraction,
                                 drop_incomplete=args.drop_incomplete or settings.drop_incomplete,
                                 slide_patients=_sheet_patients(_one_or_none(args.slides, "--slides")))
    predict_cohort_(bundle, inputs, out_dir=Path(args.out_dir), device=args.device,
                    wsi_dir=Path(args.wsi_dir) if args.wsi_dir else None)


def cmd_external_predict(args: argparse.Namespace) -> None:
    from gliofuse.deploy.external import predict_external_

    cfg = _cfg(args)
    _torch_threads(args.threads)
    predict_external_(bundles=[Path(p) for p in args.bundles], slides=Path(args.slides),
                      feature_paths=_feature_paths(args, required=False),
                      omics_path=_one_or_none(args.omics, "--omics"), out_root=Path(args.out_root),
                      settings=cfg.predict, device=args.device)


def cmd_external_evaluate(args: argparse.Namespace) -> None:
    from gliofuse.evaluation.external import evaluate_external_

    cfg = _cfg(args)
    ev = cfg.evaluation
    evaluate_external_(cohort=args.cohort, prediction_paths=[Path(p) for p in args.predictions],
                       bundle_paths=[Path(p) for p in args.bundles], labels_path=Path(args.labels),
                       development_predictions=[Path(p) for p in args.development_predictions or []],
                       n_bootstrap=ev.n_bootstrap, seed=cfg.seed, time_quantiles=ev.time_quantiles,
                       n_times=ev.n_times, out_dir=Path(args.out_dir),
                       truth_path=_one_or_none(args.truth, "--truth"))


def cmd_external_report(args: argparse.Namespace) -> None:
    from gliofuse.report.external import write_external_report_

    write_external_report_(cohort=args.cohort, evaluation_dir=Path(args.evaluation_dir), out_km=Path(args.out_km),
                           out_calibration=Path(args.out_calibration), out_md=Path(args.out_md), dpi=args.dpi)


def add_commands(stages: argparse._SubParsersAction) -> None:
    """Register the ``bundle``, ``predict`` and ``external`` stages."""
    g = add_group(stages, "bundle", "model bundles for deployment")
    p = _add(g, "export", cmd_bundle_export, "export the fold models of each model and task as a bundle")
    p.add_argument("--checkpoints", nargs="+", required=True, help="fold checkpoint.pt files (grouped by model/task)")
    p.add_argument("--omics", default=None, help="the training expression matrix (models reading RNA)")
    p.add_argument("--features", nargs="*", default=None, help="training feature files (name the encoder)")
    p.add_argument("--feature-shards", nargs="+", default=None,
                   help="features shard tables (results/.../shards/shard_<k>.tsv); their h5 files count as --features")
    p.add_argument("--out-root", required=True, help="bundles go to <out-root>/<model>/<task>/bundle/")

    p = stages.add_parser("predict", help="apply a model bundle to new patients (no labels needed)",
                          description="apply a model bundle to new patients (no labels needed)")
    p.set_defaults(handler=cmd_predict)
    p.add_argument("--bundle", required=True, help="bundle folder (results/models/<model>/<task>/bundle)")
    p.add_argument("--features", nargs="*", default=None, help="slide feature files (.h5) or folders of them")
    p.add_argument("--omics", nargs="*", default=None, help="expression matrix (contract §6)")
    p.add_argument("--patients", nargs="+", default=None, help="patients to predict (default: all with inputs)")
    p.add_argument("--slides", nargs="*", default=None, help="slide sheet (patient_id, slide_id, slide_path): the patient of "
                   "each feature file <slide_id>.h5 (default: the first 12 characters of the name, TCGA barcodes)")
    p.add_argument("--out-dir", required=True)
    p.add_argument("--config", default=None, help="config for predict.* settings (default: built-in defaults)")
    p.add_argument("--drop-incomplete", action="store_true",
                   help="leave out patients missing a modality the model reads (default: refuse)")
    p.add_argument("--wsi-dir", default=None,
                   help="the cohort's wsi_patch outputs (thumbnails/, coords/): draw attention heatmaps")
    p.add_argument("--device", default="cpu", help="torch device (cpu, cuda)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")

    g = add_group(stages, "external", "external validation cohorts (section external; docs/data-contracts.md §12)")
    p = _add(g, "predict", cmd_external_predict, "apply every development bundle to one external cohort")
    p.add_argument("--bundles", nargs="+", required=True, help="bundle folders (results/models/<m>/<t>/bundle)")
    p.add_argument("--slides", required=True, help="the cohort's slide sheet: the patient of each <slide_id>.h5")
    p.add_argument("--features", nargs="*", default=None, help="the cohort's slide feature files")
    p.add_argument("--feature-shards", nargs="+", default=None,
                   help="features shard tables (results/.../shards/shard_<k>.tsv); their h5 files count as --features")
    p.add_argument("--omics", nargs="*", default=None, help="its expression matrix on the development genes")
    p.add_argument("--out-root", required=True, help="outputs go to <out-root>/<model>/<task>/")
    p.add_argument("--device", default="cpu", help="torch device (cpu, cuda)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p = _add(g, "evaluate", cmd_external_evaluate, "metrics, KM risk groups and calibration on one external cohort")
    p.add_argument("--cohort", required=True)
    p.add_argument("--predictions", nargs="+", required=True, help="the cohort's predictions.tsv (one per bundle)")
    p.add_argument("--bundles", nargs="+", required=True, help="bundle.json of each model x task (class maps)")
    p.add_argument("--labels", required=True, help="the cohort's label table")
    p.add_argument("--development-predictions", nargs="*", default=None,
                   help="development fold predictions.tsv of the survival models (risk cut-offs)")
    p.add_argument("--truth", nargs="*", default=None,
                   help="ground-truth table with true_risk (the demo site's truth/ground_truth.tsv): adds the metric "
                   "c_index_true_risk of each survival model; none for a real cohort")
    p.add_argument("--out-dir", required=True)
    p = _add(g, "report", cmd_external_report, "KM and calibration figures and the Markdown section of a cohort",
             config=False)
    p.add_argument("--cohort", required=True)
    p.add_argument("--evaluation-dir", required=True, help="results/external/<cohort>/evaluation")
    p.add_argument("--out-km", required=True)
    p.add_argument("--out-calibration", required=True)
    p.add_argument("--out-md", required=True)
    p.add_argument("--dpi", type=int, default=150)
