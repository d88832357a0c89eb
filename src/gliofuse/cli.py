"""``gliofuse`` command line: one subcommand per stage, each a thin call into the package.

Heavy modules (torch, openslide) are imported inside the command that needs them, so
``gliofuse --help`` and the Snakefile stay fast. A ``GliofuseError`` is printed without a
traceback (exit 2 for configuration errors, 1 otherwise); anything else is logged with one.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from gliofuse import __version__
from gliofuse.errors import ConfigError, GliofuseError

log = logging.getLogger("gliofuse")
Handler = Callable[[argparse.Namespace], None]


def _cfg(args: argparse.Namespace):
    from gliofuse.config import load_config

    cfg = load_config(args.config)
    log.info("gliofuse %s, config %s", __version__, args.config)
    return cfg


def _torch_threads(n: int | None) -> None:
    if n:
        import torch

        torch.set_num_threads(n)


def _section(cfg, name: str) -> dict:
    from gliofuse.config import section_snapshot

    return section_snapshot(cfg.model_dump(mode="json"), name)


# --- handlers -------------------------------------------------------------------------------------------

def cmd_config_schema(args: argparse.Namespace) -> None:
    from gliofuse.config import schema_yaml
    from gliofuse.io import write_text_atomic_

    text = schema_yaml()
    if args.out:
        write_text_atomic_(args.out, text)
    else:
        sys.stdout.write(text)


def cmd_config_check(args: argparse.Namespace) -> None:
    import yaml

    cfg = _cfg(args)
    sys.stdout.write(yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False))


def cmd_models_list(args: argparse.Namespace) -> None:
    from gliofuse.models.registry import get_card, list_models

    for name in list_models(args.pattern):
        card = get_card(name)
        print(f"{name:32s} {'+'.join(card.modalities):10s} {','.join(card.tasks):28s} {card.reference}")


def cmd_demo_generate(args: argparse.Namespace) -> None:
    from gliofuse.demo.build import generate_cohort_

    cfg = _cfg(args)
    generate_cohort_(seed=cfg.seed, cfg=cfg.demo, out_dir=Path(args.out))


def cmd_labels_build(args: argparse.Namespace) -> None:
    from gliofuse.labels.tables import build_label_table_, shipped_molecular_table

    cfg = _cfg(args)
    molecular = Path(args.molecular) if args.molecular else shipped_molecular_table()
    build_label_table_(
        cases_path=Path(args.cases), molecular_path=molecular,
        strict=cfg.labels.who2021_strict, survival_source=cfg.labels.survival_source,
        out_path=Path(args.out), config=_section(cfg, "labels"),
    )


def cmd_wsi_patch(args: argparse.Namespace) -> None:
    from gliofuse.wsi.patch import patch_slide_

    cfg = _cfg(args)
    patch_slide_(slide_path=Path(args.slide), cfg=cfg.wsi, out_coords=Path(args.out_coords),
                 out_qc=Path(args.out_qc), out_status=Path(args.out_status), mpp_override=args.mpp)


def cmd_features_extract(args: argparse.Namespace) -> None:
    from gliofuse.features.extract import extract_slide_

    cfg = _cfg(args)
    _torch_threads(args.threads)
    extract_slide_(slide_path=Path(args.slide), coords_path=Path(args.coords), cfg=cfg.features,
                   out_path=Path(args.out), seed=cfg.seed)


def cmd_omics_matrix(args: argparse.Namespace) -> None:
    from gliofuse.omics.rnaseq import build_expression_matrix_

    cfg = _cfg(args)
    build_expression_matrix_(
        files_json=Path(args.files_meta), rnaseq_dir=Path(args.rnaseq_dir), value_column=cfg.omics.value_column, gene_types=cfg.omics.gene_types,
        log_transform=cfg.omics.log_transform, out_h5=Path(args.out), out_samples=Path(args.out_samples),
        config=_section(cfg, "omics"),
    )


def cmd_data_splits(args: argparse.Namespace) -> None:
    from gliofuse.data.cohort import build_cohort
    from gliofuse.data.splits import make_splits, write_splits_
    from gliofuse.io import provenance, write_table_
    from gliofuse.labels.tables import read_label_table_
    from gliofuse.omics.rnaseq import read_expression_

    cfg = _cfg(args)
    labels = read_label_table_(Path(args.labels))
    _, omics_patients, _ = read_expression_(Path(args.omics))
    cohort = build_cohort(labels=labels, slide_status_paths=[Path(p) for p in args.slide_status],
                          omics_patients=omics_patients)
    splits = make_splits(cohort, n_folds=cfg.data.n_folds, val_fraction=cfg.data.val_fraction,
                         stratify_by=cfg.data.stratify_by, seed=cfg.seed)
    if len(args.out_folds) != cfg.data.n_folds:
        raise ConfigError(f"--out-folds names {len(args.out_folds)} files but data.n_folds = {cfg.data.n_folds}.")
    write_table_(Path(args.out_cohort), cohort,
                 prov=provenance(config=_section(cfg, "data"), inputs={"labels": args.labels, "omics": args.omics}))
    write_splits_(splits, out_paths=[Path(p) for p in args.out_folds])


def cmd_train_fold(args: argparse.Namespace) -> None:
    from gliofuse.training.cv import train_fold_

    cfg = _cfg(args)
    _torch_threads(args.threads)
    train_fold_(cfg=cfg, model_name=args.model, task=args.task, split_path=Path(args.split),
                labels_path=Path(args.labels), omics_path=Path(args.omics) if args.omics else None,
                feature_paths=[Path(p) for p in args.features], out_dir=Path(args.out_dir))


def cmd_evaluate_model(args: argparse.Namespace) -> None:
    from gliofuse.evaluation.aggregate import evaluate_model_

    cfg = _cfg(args)
    evaluate_model_(prediction_paths=[Path(p) for p in args.predictions], model=args.model, task=args.task,
                    n_bootstrap=cfg.evaluation.n_bootstrap, seed=cfg.seed,
                    out_predictions=Path(args.out_predictions), out_metrics=Path(args.out_metrics))


def cmd_evaluate_summary(args: argparse.Namespace) -> None:
    from gliofuse.evaluation.aggregate import summarise_

    summarise_(metrics_paths=[Path(p) for p in args.metrics], out_summary=Path(args.out))


def cmd_report_model(args: argparse.Namespace) -> None:
    from gliofuse.report.figures import plot_model_task_

    plot_model_task_(oof_path=Path(args.oof), task=args.task, out_png=Path(args.out))


def cmd_report_summary(args: argparse.Namespace) -> None:
    from gliofuse.report.figures import plot_summary_

    plot_summary_(summary_path=Path(args.summary), out_png=Path(args.out))


def cmd_report_cohort(args: argparse.Namespace) -> None:
    from gliofuse.report.figures import plot_cohort_

    plot_cohort_(labels_path=Path(args.labels), out_png=Path(args.out))


def cmd_report_qc(args: argparse.Namespace) -> None:
    from gliofuse.report.qc import qc_summary_

    qc_summary_(status_paths=[Path(p) for p in args.status], qc_pngs=[Path(p) for p in args.qc],
                out_table=Path(args.out_table), out_png=Path(args.out_png))


# --- parser ---------------------------------------------------------------------------------------------

def _add(sub: argparse._SubParsersAction, name: str, handler: Handler, help_: str, *, config: bool = True):
    p = sub.add_parser(name, help=help_, description=help_)
    if config:
        p.add_argument("--config", required=True, help="config.yaml or a results/config/<section>.yaml snapshot")
    p.set_defaults(handler=handler)
    return p


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gliofuse", description=__doc__.split("\n\n")[0])
    parser.add_argument("--version", action="version", version=f"gliofuse {__version__}")
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    stages = parser.add_subparsers(dest="stage", required=True, metavar="STAGE")

    def group(name: str, help_: str) -> argparse._SubParsersAction:
        return stages.add_parser(name, help=help_).add_subparsers(dest="verb", required=True, metavar="VERB")

    g = group("config", "export the config JSON schema, check a config")
    p = _add(g, "schema", cmd_config_schema, "write the config JSON schema (YAML)", config=False)
    p.add_argument("--out", help="output file (default: stdout)")
    _add(g, "check", cmd_config_check, "validate a config and print it with defaults filled in")

    g = group("models", "the model registry")
    p = _add(g, "list", cmd_models_list, "list registered models", config=False)
    p.add_argument("pattern", nargs="?", default="*", help="fnmatch pattern")

    g = group("demo", "embedded synthetic demo cohort")
    p = _add(g, "generate", cmd_demo_generate, "write the demo cohort in GDC layout")
    p.add_argument("--out", required=True, help="data root to write (slides/, rnaseq/, metadata/, labels/, truth/)")

    g = group("labels", "patient label table")
    p = _add(g, "build", cmd_labels_build, "survival + WHO-2021 labels -> labels.tsv")
    p.add_argument("--cases", required=True, help="GDC /cases JSON (metadata/cases.json)")
    p.add_argument("--molecular", default=None,
                   help="molecular label TSV (cBioPortal lgggbm_tcga_pub schema); default: the shipped Ceccarelli table")
    p.add_argument("--out", required=True)

    g = group("wsi", "tissue segmentation and patching")
    p = _add(g, "patch", cmd_wsi_patch, "segment tissue and write patch coordinates of one slide")
    p.add_argument("--slide", required=True)
    p.add_argument("--out-coords", required=True)
    p.add_argument("--out-qc", required=True)
    p.add_argument("--out-status", required=True)
    p.add_argument("--mpp", type=float, default=None, help="override the slide's microns per pixel")

    g = group("features", "patch feature extraction")
    p = _add(g, "extract", cmd_features_extract, "encode the patches of one slide")
    p.add_argument("--slide", required=True)
    p.add_argument("--coords", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")

    g = group("omics", "RNA-seq expression")
    p = _add(g, "matrix", cmd_omics_matrix, "STAR - Counts files -> patient x gene matrix")
    p.add_argument("--files-meta", required=True, help="GDC /files JSON of the STAR files (metadata/files_rnaseq.json)")
    p.add_argument("--rnaseq-dir", required=True, help="folder holding <file_id>/<file_name> STAR files")
    p.add_argument("--out", required=True)
    p.add_argument("--out-samples", required=True)

    g = group("data", "cohort and cross-validation splits")
    p = _add(g, "splits", cmd_data_splits, "build the cohort and patient-level K-fold split files")
    p.add_argument("--labels", required=True)
    p.add_argument("--omics", required=True)
    p.add_argument("--slide-status", nargs="+", required=True)
    p.add_argument("--out-cohort", required=True)
    p.add_argument("--out-folds", nargs="+", required=True, help="fold_<k>.json paths, in fold order")

    g = group("train", "model training")
    p = _add(g, "fold", cmd_train_fold, "train one model on one task and fold")
    p.add_argument("--model", required=True)
    p.add_argument("--task", required=True, choices=["survival", "grade", "diagnosis"])
    p.add_argument("--split", required=True)
    p.add_argument("--labels", required=True)
    p.add_argument("--omics", default=None)
    p.add_argument("--features", nargs="+", required=True)
    p.add_argument("--out-dir", required=True)
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")

    g = group("evaluate", "metrics from prediction files")
    p = _add(g, "model", cmd_evaluate_model, "out-of-fold predictions and metrics of one model and task")
    p.add_argument("--model", required=True)
    p.add_argument("--task", required=True)
    p.add_argument("--predictions", nargs="+", required=True)
    p.add_argument("--out-predictions", required=True)
    p.add_argument("--out-metrics", required=True)
    p = _add(g, "summary", cmd_evaluate_summary, "one summary table over models and tasks", config=False)
    p.add_argument("--metrics", nargs="+", required=True)
    p.add_argument("--out", required=True)

    g = group("report", "figures and tables for the report")
    p = _add(g, "model", cmd_report_model, "KM / ROC figure of one model and task", config=False)
    p.add_argument("--oof", required=True)
    p.add_argument("--task", required=True)
    p.add_argument("--out", required=True)
    p = _add(g, "summary", cmd_report_summary, "metric overview figure", config=False)
    p.add_argument("--summary", required=True)
    p.add_argument("--out", required=True)
    p = _add(g, "cohort", cmd_report_cohort, "cohort overview figure", config=False)
    p.add_argument("--labels", required=True)
    p.add_argument("--out", required=True)
    p = _add(g, "qc", cmd_report_qc, "slide QC table and mosaic", config=False)
    p.add_argument("--status", nargs="+", required=True)
    p.add_argument("--qc", nargs="+", required=True)
    p.add_argument("--out-table", required=True)
    p.add_argument("--out-png", required=True)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    try:
        args.handler(args)
    except ConfigError as exc:
        print(f"ConfigError: {exc}", file=sys.stderr)
        return 2
    except GliofuseError as exc:
        print(f"{type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    except Exception:  # unknown errors fail loudly, with the traceback
        log.exception("gliofuse %s failed", " ".join(sys.argv[1:]))
        return 1
    return 0
