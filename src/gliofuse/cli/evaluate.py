"""``gliofuse evaluate``: out-of-fold metrics, the summary table, model comparisons."""

from __future__ import annotations

import argparse
from pathlib import Path

from gliofuse.cli.common import _add, _cfg, _one_or_none, add_group


def cmd_evaluate_model(args: argparse.Namespace) -> None:
    from gliofuse.evaluation.evaluate import evaluate_model_

    cfg = _cfg(args)
    ev = cfg.evaluation
    evaluate_model_(prediction_paths=[Path(p) for p in args.predictions], model=args.model, task=args.task,
                    n_bootstrap=ev.n_bootstrap, seed=cfg.seed, time_quantiles=ev.time_quantiles, n_times=ev.n_times,
                    out_predictions=Path(args.out_predictions), out_metrics=Path(args.out_metrics),
                    fold_repeats=_fold_repeats(args.splits))


def _fold_repeats(split_paths: list[str] | None) -> dict[int, int] | None:
    """``{fold id: repeat}`` from the split files (checked as one repeated CV); None without any."""
    from gliofuse.data.splits import check_repeats, read_split_

    if not split_paths:
        return None
    splits = [read_split_(Path(p)) for p in split_paths]
    check_repeats(splits, source=f"--splits ({len(splits)} files, first {split_paths[0]})")
    return {s.fold: s.repeat for s in splits}


def cmd_evaluate_summary(args: argparse.Namespace) -> None:
    from gliofuse.evaluation.summary import summarise_

    summarise_(metrics_paths=[Path(p) for p in args.metrics], out_summary=Path(args.out))


def cmd_evaluate_compare(args: argparse.Namespace) -> None:
    from gliofuse.evaluation.compare import compare_models_

    cfg = _cfg(args)
    compare_models_(oof_paths=[Path(p) for p in args.oof], reference=args.reference,
                    cards_path=Path(args.cards) if args.cards else None, n_bootstrap=cfg.evaluation.n_bootstrap,
                    seed=cfg.seed, out_comparisons=Path(args.out_comparisons), out_ablation=Path(args.out_ablation),
                    card_predictions=[Path(p) for p in args.predictions or []],
                    truth_path=_one_or_none(args.truth, "--truth"))


def add_commands(stages: argparse._SubParsersAction) -> None:
    """Register the ``evaluate`` stage."""
    g = add_group(stages, "evaluate", "metrics from prediction files")
    p = _add(g, "model", cmd_evaluate_model, "out-of-fold predictions and metrics of one model and task")
    p.add_argument("--model", required=True)
    p.add_argument("--task", required=True)
    p.add_argument("--predictions", nargs="+", required=True)
    p.add_argument("--splits", nargs="*", default=None,
                   help="every fold_<i>.json of the cross-validation: maps fold ids to repeats (data.n_repeats > 1); "
                        "none: every fold is repeat 0")
    p.add_argument("--out-predictions", required=True)
    p.add_argument("--out-metrics", required=True)
    p = _add(g, "summary", cmd_evaluate_summary, "one summary table over models and tasks", config=False)
    p.add_argument("--metrics", nargs="+", required=True)
    p.add_argument("--out", required=True)
    p = _add(g, "compare", cmd_evaluate_compare,
             "paired bootstrap comparisons against the reference model, and the ablation table")
    p.add_argument("--oof", nargs="+", required=True, help="predictions_oof.tsv of every model and task")
    p.add_argument("--reference", required=True, help="the main model (evaluation.reference_model)")
    cards = p.add_mutually_exclusive_group()
    cards.add_argument("--cards", default=None, help="model cards JSON (gliofuse report cards); needed for ablations")
    cards.add_argument("--predictions", nargs="+", default=None,
                       help="fold predictions.tsv whose provenance sidecars hold the model cards (instead of --cards)")
    p.add_argument("--out-comparisons", required=True)
    p.add_argument("--out-ablation", required=True)
    p.add_argument("--truth", nargs="*", default=None,
                   help="ground-truth table with true_risk (the demo's truth/ground_truth.tsv): adds the C-index "
                        "against the true risk (column c_index_true_risk); none for real cohorts")
