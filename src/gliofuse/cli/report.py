"""``gliofuse report``: figures and tables of the report."""

from __future__ import annotations

import argparse
from pathlib import Path

from gliofuse.cli.common import _add, _cfg, _feature_status_paths, add_group
from gliofuse.tasks import TASK_NAMES


def _vector(args: argparse.Namespace) -> Path | None:
    return Path(args.out_vector) if args.out_vector else None


def cmd_report_model(args: argparse.Namespace) -> None:
    from gliofuse.report.figures import plot_model_task_

    plot_model_task_(oof_path=Path(args.oof), task=args.task, out_png=Path(args.out), out_vector=_vector(args),
                     dpi=args.dpi)


def cmd_report_summary(args: argparse.Namespace) -> None:
    from gliofuse.report.figures import plot_summary_

    plot_summary_(summary_path=Path(args.summary), out_png=Path(args.out), out_vector=_vector(args), dpi=args.dpi)


def cmd_report_cohort(args: argparse.Namespace) -> None:
    from gliofuse.report.figures import plot_cohort_

    plot_cohort_(labels_path=Path(args.labels), out_png=Path(args.out), out_vector=_vector(args), dpi=args.dpi)


def cmd_report_qc(args: argparse.Namespace) -> None:
    from gliofuse.report.qc import qc_summary_

    qc_summary_(status_paths=[Path(p) for p in args.status], qc_pngs=[Path(p) for p in args.qc],
                out_table=Path(args.out_table), out_png=Path(args.out_png),
                feature_status_paths=_feature_status_paths(args) or None)


def cmd_report_training(args: argparse.Namespace) -> None:
    from gliofuse.report.training import plot_gc_dynamics_, plot_training_

    history = [Path(p) for p in args.history]
    plot_training_(history_paths=history, out_png=Path(args.out), out_vector=_vector(args), dpi=args.dpi)
    if args.gc_out_dir:
        plot_gc_dynamics_(history_paths=history, out_dir=Path(args.gc_out_dir), dpi=args.dpi)


def cmd_report_forest(args: argparse.Namespace) -> None:
    from gliofuse.report.forest import plot_forest_

    plot_forest_(comparisons_path=Path(args.comparisons), ablation_path=Path(args.ablation) if args.ablation else None,
                 out_png=Path(args.out), out_vector=_vector(args), dpi=args.dpi)


def cmd_report_attention(args: argparse.Namespace) -> None:
    from gliofuse.report.attention import plot_attention_

    plot_attention_(oof_path=Path(args.oof), fold_dirs=[Path(p) for p in args.fold_dirs],
                    thumbnails=[Path(p) for p in args.thumbnails], coords=[Path(p) for p in args.coords],
                    out_dir=Path(args.out_dir), n_patients=args.n_patients, dpi=args.dpi)


def cmd_report_model_task(args: argparse.Namespace) -> None:
    from gliofuse.report.model_task import plot_model_task_figures_

    plot_model_task_figures_(oof_path=Path(args.oof), task=args.task, fold_dirs=[Path(p) for p in args.fold_dirs],
                             thumbnails=[Path(p) for p in args.thumbnails], coords=[Path(p) for p in args.coords],
                             out_model=Path(args.out_model), out_training=Path(args.out_training),
                             gc_out_dir=Path(args.gc_out_dir), attention_out_dir=Path(args.attention_out_dir),
                             n_patients=args.n_patients, dpi=args.dpi)


def cmd_report_markdown(args: argparse.Namespace) -> None:
    from gliofuse.report.tables import write_summary_markdown_

    cfg = _cfg(args)
    write_summary_markdown_(summary_path=Path(args.summary), comparisons_path=Path(args.comparisons),
                            ablation_path=Path(args.ablation), out=Path(args.out), title=cfg.report.title,
                            cards_path=Path(args.cards) if args.cards else None,
                            external_sections=[Path(p) for p in args.external or []])


def cmd_report_cards(args: argparse.Namespace) -> None:
    from gliofuse.evaluation.cards import write_model_cards_

    write_model_cards_(models=args.models, prediction_paths=[Path(p) for p in args.predictions or []],
                       out=Path(args.out))


def add_commands(stages: argparse._SubParsersAction) -> None:
    """Register the ``report`` stage."""
    g = add_group(stages, "report", "figures and tables for the report")

    def figure_args(p: argparse.ArgumentParser, out_help: str = "output PNG") -> None:
        p.add_argument("--out", required=True, help=out_help)
        p.add_argument("--out-vector", default=None, help="vector twin (.svg or .pdf; default: --out with .svg)")
        p.add_argument("--dpi", type=int, default=110, help="PNG resolution (report.dpi)")

    p = _add(g, "model", cmd_report_model, "KM (with numbers at risk) / ROC + confusion figure of one model and task",
             config=False)
    p.add_argument("--oof", required=True)
    p.add_argument("--task", required=True)
    figure_args(p)
    p = _add(g, "summary", cmd_report_summary, "metric overview figure", config=False)
    p.add_argument("--summary", required=True)
    figure_args(p)
    p = _add(g, "cohort", cmd_report_cohort, "cohort overview figure", config=False)
    p.add_argument("--labels", required=True)
    figure_args(p)
    p = _add(g, "qc", cmd_report_qc, "slide QC table and mosaic", config=False)
    p.add_argument("--status", nargs="+", required=True)
    p.add_argument("--qc", nargs="+", required=True)
    p.add_argument("--feature-status", nargs="*", default=None, help="features status JSONs (adds features_* columns)")
    p.add_argument("--feature-shards", nargs="+", default=None,
                   help="features shard tables (results/features/<encoder>/shards/shard_<k>.tsv); their status JSONs count as --feature-status")
    p.add_argument("--out-table", required=True)
    p.add_argument("--out-png", required=True)
    p = _add(g, "training", cmd_report_training,
             "training curves of one model and task (+ gradient-coordination dynamics if recorded)", config=False)
    p.add_argument("--history", nargs="+", required=True, help="history.tsv of each fold")
    figure_args(p)
    p.add_argument("--gc-out-dir", default=None,
                   help="folder for gc_dynamics.png/.svg (left empty when no fold has gc_dynamics.tsv)")
    p = _add(g, "forest", cmd_report_forest, "forest plot of the model comparisons", config=False)
    p.add_argument("--comparisons", required=True)
    p.add_argument("--ablation", default=None)
    figure_args(p)
    p = _add(g, "attention", cmd_report_attention, "attention heatmaps of a few patients (models that record them)",
             config=False)
    p.add_argument("--oof", required=True)
    p.add_argument("--fold-dirs", nargs="+", required=True)
    p.add_argument("--thumbnails", nargs="+", required=True)
    p.add_argument("--coords", nargs="+", required=True)
    p.add_argument("--out-dir", required=True)
    p.add_argument("--n-patients", type=int, default=3)
    p.add_argument("--dpi", type=int, default=110)
    p = _add(g, "model-task", cmd_report_model_task,
             "every figure of one model and task in one process: model, training (+ gc dynamics), attention",
             config=False)
    p.add_argument("--oof", required=True)
    p.add_argument("--task", required=True, choices=TASK_NAMES)
    p.add_argument("--fold-dirs", nargs="+", required=True, help="fold folders (history.tsv, attention.h5)")
    p.add_argument("--thumbnails", nargs="+", required=True)
    p.add_argument("--coords", nargs="+", required=True)
    p.add_argument("--out-model", required=True, help="out-of-fold figure PNG (SVG twin beside it)")
    p.add_argument("--out-training", required=True, help="training curves PNG (SVG twin beside it)")
    p.add_argument("--gc-out-dir", required=True, help="folder for gc_dynamics.png/.svg")
    p.add_argument("--attention-out-dir", required=True, help="folder for the attention heatmaps")
    p.add_argument("--n-patients", type=int, default=3)
    p.add_argument("--dpi", type=int, default=110)
    p = _add(g, "markdown", cmd_report_markdown, "results/summary.md with the main tables")
    p.add_argument("--summary", required=True)
    p.add_argument("--comparisons", required=True)
    p.add_argument("--ablation", required=True)
    p.add_argument("--cards", help="model_cards.json: adds a Models section (family, reference, RNA encoder)")
    p.add_argument("--external", nargs="*", default=None,
                   help="external cohorts' sections (results/external/<cohort>/summary.md), appended in order")
    p.add_argument("--out", required=True)
    p = _add(g, "cards", cmd_report_cards, "model cards JSON (from the prediction tables' provenance sidecars)",
             config=False)
    p.add_argument("--models", nargs="+", required=True)
    p.add_argument("--predictions", nargs="*", default=None,
                   help="fold predictions.tsv, at least one of each model; their sidecars hold the cards")
    p.add_argument("--out", required=True)
