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
from typing import TYPE_CHECKING

from gliofuse import __version__
from gliofuse.errors import ConfigError, GliofuseError, InputDataError
from gliofuse.tasks import TASK_NAMES

if TYPE_CHECKING:
    from gliofuse.features.shard_table import ShardRow

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
    from gliofuse.config_schema import schema_yaml
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
    from gliofuse.models.registry import get_model_card, list_models

    for name in list_models(args.pattern):
        card = get_model_card(name)
        print(f"{name:32s} {'+'.join(card.modalities):10s} {','.join(card.tasks):28s} {card.reference}")


def cmd_demo_generate(args: argparse.Namespace) -> None:
    from gliofuse.demo.build import generate_cohort_

    cfg = _cfg(args)
    generate_cohort_(seed=cfg.seed, cfg=cfg.demo, out_dir=Path(args.out))


def cmd_demo_external(args: argparse.Namespace) -> None:
    from gliofuse.demo.site_build import generate_external_site_

    cfg = _cfg(args)
    generate_external_site_(seed=cfg.seed, cfg=cfg.demo, out_dir=Path(args.out), workers=args.workers)


def cmd_gdc_query(args: argparse.Namespace) -> None:
    from gliofuse.gdc.client import client_from_config
    from gliofuse.gdc.query import query_cohort_

    cfg = _cfg(args)
    manifest = args.manifest or cfg.gdc.manifest
    if args.out_dir:
        log.warning("gdc query --out-dir is deprecated; use --data-root (the name gdc download uses too)")
    root = args.data_root or args.out_dir
    out_dir = Path(root) if root else cfg.resolved_data_root()
    query_cohort_(client=client_from_config(cfg.gdc), out_dir=out_dir, projects=cfg.gdc.projects,
                  config=_section(cfg, "gdc"), page_size=cfg.gdc.page_size, max_patients=cfg.gdc.max_patients,
                  user_manifest=Path(manifest) if manifest else None)


def cmd_gdc_download(args: argparse.Namespace) -> None:
    from gliofuse.gdc.client import client_from_config
    from gliofuse.gdc.download import download_all_, download_file_
    from gliofuse.gdc.manifest import read_manifest_
    from gliofuse.gdc.query import MANIFEST_TSV

    cfg = _cfg(args)
    root = Path(args.data_root) if args.data_root else cfg.resolved_data_root()
    rows = read_manifest_(Path(args.manifest) if args.manifest else root / MANIFEST_TSV)
    client = client_from_config(cfg.gdc)
    if args.file_id or args.file_name:
        chosen = [r for r in rows if (not args.file_id or r.id == args.file_id)
                  and (not args.file_name or r.filename == args.file_name)]
        if len(chosen) != 1:
            raise ConfigError(f"--file-id {args.file_id!r} / --file-name {args.file_name!r} select {len(chosen)} "
                              "manifest rows; they must select exactly one.")
        row = chosen[0]
        out = Path(args.out) if args.out else root / row.relpath
        if out.name != row.filename:
            raise ConfigError(f"--out {out} does not end in the file name {row.filename!r} of file {row.id}.")
        download_file_(client, row, out, refetch_on_mismatch=cfg.gdc.refetch_on_mismatch)
        return
    if args.out:
        raise ConfigError("--out needs --file-id or --file-name (one file); without them every file goes to --data-root.")
    if args.kind:
        rows = [r for r in rows if r.kind == args.kind]
    results = download_all_(client, rows, root, jobs=args.jobs, refetch_on_mismatch=cfg.gdc.refetch_on_mismatch)
    log.info("%d files verified under %s (%d already present)", len(results), root, sum(r.skipped for r in results))


def cmd_labels_build(args: argparse.Namespace) -> None:
    from gliofuse.labels.tables import (
        build_label_table_,
        build_label_table_from_clinical_,
        shipped_molecular_table,
    )

    cfg = _cfg(args)
    if args.clinical:
        if args.molecular:
            raise ConfigError("--molecular goes with --cases (GDC route); --clinical holds the markers itself.")
        sheet = cfg.sheet
        if args.external:
            if args.external not in cfg.external:
                raise ConfigError(f"--external {args.external}: no such cohort in section external "
                                  f"(configured: {sorted(cfg.external)}).")
            sheet = cfg.external[args.external]
        build_label_table_from_clinical_(clinical_path=Path(args.clinical), sheet=sheet,
                                         strict=cfg.labels.who2021_strict, out_path=Path(args.out),
                                         config=_section(cfg, "labels"))
        return
    molecular = Path(args.molecular) if args.molecular else shipped_molecular_table()
    build_label_table_(
        cases_path=Path(args.cases), molecular_path=molecular,
        strict=cfg.labels.who2021_strict, survival_source=cfg.labels.survival_source,
        out_path=Path(args.out), config=_section(cfg, "labels"),
    )


def cmd_cohort_sheet(args: argparse.Namespace) -> None:
    from gliofuse.cohorts.sheet import read_slide_sheet_, tcga_slide_sheet, write_slide_sheet_

    if args.sheet:
        df, inputs = read_slide_sheet_(args.sheet), {"sheet": args.sheet}
    else:
        df, inputs = tcga_slide_sheet(args.tcga_slides), {}
    write_slide_sheet_(df, args.out, inputs=inputs)
    log.info("slide sheet %s: %d slides of %d patients", args.out, len(df), df["patient_id"].nunique())


def cmd_cohort_check(args: argparse.Namespace) -> None:
    from gliofuse.cohorts.sheet import read_slide_sheet_
    from gliofuse.labels.clinical_sheet import read_clinical_table_

    cfg = _cfg(args)
    slides_path, clinical_path = cfg.sheet_files()
    slides = read_slide_sheet_(slides_path)
    clinical = read_clinical_table_(clinical_path, sheet=cfg.sheet, strict=cfg.labels.who2021_strict)
    no_clinical = sorted(set(slides["patient_id"]) - set(clinical["patient_id"]))
    print(f"slide sheet {slides_path}: {len(slides)} slides of {slides['patient_id'].nunique()} patients")
    print(f"clinical table {clinical_path}: {len(clinical)} patients; survival {int(clinical['time_days'].notna().sum())}, "
          f"WHO-2021 class {int(clinical['who2021_class'].notna().sum())}")
    if no_clinical:
        print(f"{len(no_clinical)} patient(s) with slides but no clinical row (left out): {no_clinical[:10]}")


def cmd_wsi_patch(args: argparse.Namespace) -> None:
    from gliofuse.wsi.patch import patch_slide_

    cfg = _cfg(args)
    opt = {name: Path(getattr(args, name)) if getattr(args, name) else None
           for name in ("out_geojson", "out_thumbnail", "out_contours")}
    patch_slide_(slide_path=Path(args.slide), cfg=cfg.wsi, out_coords=Path(args.out_coords),
                 out_qc=Path(args.out_qc), out_status=Path(args.out_status), mpp_override=args.mpp,
                 slide_id=args.slide_id, **opt)


def _shard_rows(args: argparse.Namespace) -> list[ShardRow] | None:
    """Rows of ``--feature-shards`` (features shard tables, contract §5), or None when not given."""
    if getattr(args, "feature_shards", None) is None:
        return None
    from gliofuse.features.shard_table import read_shard_tables_

    return read_shard_tables_([Path(p) for p in args.feature_shards])


def _feature_status_paths(args: argparse.Namespace) -> list[Path] | None:
    """Features status JSONs from ``--feature-status`` and/or the rows of ``--feature-shards`` (None: neither)."""
    from gliofuse.features.shard_table import shard_status_paths

    rows = _shard_rows(args)
    if args.feature_status is None and rows is None:
        return None
    return [Path(p) for p in args.feature_status or []] + (shard_status_paths(rows) if rows else [])


def cmd_features_extract(args: argparse.Namespace) -> None:
    from gliofuse.features.extract import SlideJob, extract_slide_
    from gliofuse.features.shard import extract_shard_

    cfg = _cfg(args)
    _torch_threads(args.threads)
    n = len(args.slide)
    lists = {"--coords": args.coords, "--out": args.out, "--out-status": args.out_status or []}
    bad = {flag: len(v) for flag, v in lists.items() if len(v) != n and not (flag == "--out-status" and not v)}
    if bad:
        raise ConfigError(f"features extract: {n} --slide value(s) but {bad}; give one of each per slide, in order.")
    if n == 1 and args.out_shard is None:
        extract_slide_(slide_path=Path(args.slide[0]), coords_path=Path(args.coords[0]), cfg=cfg.features,
                       out_path=Path(args.out[0]), seed=cfg.seed,
                       out_status=Path(args.out_status[0]) if args.out_status else None, num_workers=args.num_workers)
        return
    if not args.out_status or args.out_shard is None:
        raise ConfigError("features extract with several slides needs --out-status (one per slide) and --out-shard.")
    jobs = [SlideJob(Path(s), Path(c), Path(o), Path(st))
            for s, c, o, st in zip(args.slide, args.coords, args.out, args.out_status, strict=True)]
    extract_shard_(jobs, cfg=cfg.features, seed=cfg.seed, out_table=Path(args.out_shard), num_workers=args.num_workers)


def cmd_omics_matrix(args: argparse.Namespace) -> None:
    from gliofuse.omics.rnaseq import build_expression_matrix_

    cfg = _cfg(args)
    build_expression_matrix_(
        files_json=Path(args.files_meta), rnaseq_dir=Path(args.rnaseq_dir), value_column=cfg.omics.value_column, gene_types=cfg.omics.gene_types,
        log_transform=cfg.omics.log_transform, out_h5=Path(args.out), out_samples=Path(args.out_samples),
        config=_section(cfg, "omics"),
    )


def cmd_omics_import(args: argparse.Namespace) -> None:
    from gliofuse.config import OmicsConfig
    from gliofuse.omics.matrix_import import import_expression_matrix_

    omics = _cfg(args).omics if args.config else OmicsConfig()
    import_expression_matrix_(
        Path(args.matrix), unit=args.unit, gene_id=args.gene_id, out_h5=Path(args.out), pseudocount=args.pseudocount,
        orientation=args.orientation, gene_column=args.gene_column, layer=args.layer,
        reference=Path(args.reference) if args.reference else None,
        gene_table=Path(args.gene_table) if args.gene_table else None, cfg=omics,
        max_missing_fraction=args.max_missing_fraction)


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


def _feature_paths(args: argparse.Namespace, *, required: bool = True) -> list[Path]:
    """Features h5 files from ``--features`` and/or the rows of ``--feature-shards`` (the slides that have one)."""
    from gliofuse.features.shard_table import shard_feature_paths

    rows = _shard_rows(args)
    if required and not args.features and rows is None:
        raise ConfigError(f"gliofuse {args.stage} {args.verb} needs --features (features h5 files) or "
                          "--feature-shards (shard tables).")
    return [Path(p) for p in args.features or []] + (shard_feature_paths(rows) if rows else [])


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


def _sheet_patients(sheet: Path | None) -> dict[str, str] | None:
    """``{slide_id: patient_id}`` of a slide sheet (``--slides``), or None (patient = first 12 characters)."""
    if not sheet:
        return None
    from gliofuse.cohorts.sheet import read_slide_sheet_, slide_patients

    return slide_patients(read_slide_sheet_(sheet, check_files=False))


def _one_or_none(paths: list[str] | None, flag: str) -> Path | None:
    """An optional single path given as ``FLAG [PATH]`` (a workflow input list that may be empty)."""
    if not paths:
        return None
    if len(paths) > 1:
        raise InputDataError(f"{flag} takes at most one file, got {len(paths)}: {paths[:3]}.")
    return Path(paths[0])


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


def cmd_validate_fit(args: argparse.Namespace) -> None:
    from gliofuse.reproduce.fit import fit_published_split_
    from gliofuse.reproduce.jobs import ValidationJob

    cfg = _cfg(args)
    _torch_threads(args.threads)
    job = ValidationJob(protocol=args.protocol, model=args.model, task=args.task, split=args.split,
                        cohort=args.cohort)
    fit_published_split_(cfg=cfg, job=job, out_root=Path(args.out_dir))


def cmd_validate_report(args: argparse.Namespace) -> None:
    from gliofuse.reproduce.run import report_validation_

    report_validation_(cfg=_cfg(args), out_root=Path(args.out_dir))


def cmd_validate_run(args: argparse.Namespace) -> None:
    from gliofuse.reproduce.run import run_validation_

    cfg = _cfg(args)
    _torch_threads(args.threads)
    run_validation_(cfg=cfg, out_root=Path(args.out_dir))


# --- parser ---------------------------------------------------------------------------------------------

def _add(sub: argparse._SubParsersAction, name: str, handler: Handler, help_: str, *, config: bool = True):
    p = sub.add_parser(name, help=help_, description=help_)
    if config:
        p.add_argument("--config", required=True, help="config.yaml or a results/config/<section>.yaml snapshot")
    p.set_defaults(handler=handler)
    return p


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
    p = _add(g, "external", cmd_demo_external, "write the demo's external site (demo.external): a cohort: sheet "
             "input with DICOM/TIFF slides, a TPM matrix and its own clinical columns")
    p.add_argument("--out", required=True, help="site folder to write (slides/, slides.csv, clinical.csv, "
                   "expression_tpm.tsv, cohort.yaml, truth/)")
    p.add_argument("--workers", type=int, default=None, help="slide processes (default: up to 4, one per CPU)")

    g = group("gdc", "TCGA acquisition from the NCI GDC")
    p = _add(g, "query", cmd_gdc_query, "query slides, STAR counts and cases; write metadata/*.json + manifest.tsv")
    p.add_argument("--data-root", default=None, help="data root to write metadata/ into (default: the config's data_root)")
    p.add_argument("--out-dir", default=None, help="deprecated name of --data-root")
    p.add_argument("--manifest", default=None, help="user manifest TSV fixing the file list (default: gdc.manifest)")
    p = _add(g, "download", cmd_gdc_download, "download manifest files (Range resume, size + md5 check)")
    p.add_argument("--manifest", default=None, help="manifest TSV (default: <data_root>/metadata/manifest.tsv)")
    p.add_argument("--data-root", default=None, help="data root (default: the config's data_root)")
    p.add_argument("--file-id", default=None, help="download only this file id")
    p.add_argument("--file-name", default=None, help="download only the file with this name")
    p.add_argument("--out", default=None, help="output path of the one selected file (default: its data-root path)")
    p.add_argument("--kind", choices=["slide", "rnaseq"], default=None, help="only files of this kind")
    p.add_argument("--jobs", type=int, default=4, help="parallel connections (all-files mode)")

    g = group("labels", "patient label table")
    p = _add(g, "build", cmd_labels_build, "survival + WHO-2021 labels -> labels.tsv")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--cases", help="GDC /cases JSON (metadata/cases.json)")
    source.add_argument("--clinical", help="own clinical table (sheet.clinical; columns mapped by sheet.columns)")
    p.add_argument("--molecular", default=None,
                   help="molecular label TSV (cBioPortal lgggbm_tcga_pub schema) with --cases; default: the shipped "
                        "Ceccarelli table")
    p.add_argument("--external", default=None,
                   help="with --clinical: the external cohort whose columns map the table (external.<name>)")
    p.add_argument("--out", required=True)

    g = group("cohort", "the slide sheet: the workflow's one list of slides and their patients")
    p = _add(g, "sheet", cmd_cohort_sheet, "validate a slide sheet, or make one from TCGA-named slides; write it",
             config=False)
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--sheet", help="your slide sheet (patient_id, slide_id, slide_path)")
    source.add_argument("--tcga-slides", nargs="+", help="slide files named <TCGA slide barcode>.<ext>")
    p.add_argument("--out", required=True, help="the workflow's slide sheet (results/cohort/slides.tsv)")
    _add(g, "check", cmd_cohort_check, "check the config's slide sheet and clinical table (cohort: sheet)")

    g = group("wsi", "tissue segmentation and patching")
    p = _add(g, "patch", cmd_wsi_patch, "segment tissue and write patch coordinates of one slide")
    p.add_argument("--slide", required=True)
    p.add_argument("--out-coords", required=True)
    p.add_argument("--out-qc", required=True)
    p.add_argument("--out-status", required=True)
    p.add_argument("--mpp", type=float, default=None, help="override the slide's microns per pixel")
    p.add_argument("--slide-id", default=None, help="slide id of the outputs (default: file name without extension)")
    p.add_argument("--out-geojson", default=None, help="tissue polygons with holes (GeoJSON, level-0 px)")
    p.add_argument("--out-thumbnail", default=None, help="JPEG thumbnail")
    p.add_argument("--out-contours", default=None, help="JPEG contour overlay (tissue green, holes blue)")

    g = group("features", "patch feature extraction")
    p = _add(g, "extract", cmd_features_extract,
             "encode the patches of one slide, or of a shard of slides with one encoder build")
    p.add_argument("--slide", required=True, nargs="+", help="slide file(s)")
    p.add_argument("--coords", required=True, nargs="+", help="coords h5 of each slide, in the order of --slide")
    p.add_argument("--out", required=True, nargs="+", help="features h5 of each slide")
    p.add_argument("--out-status", default=None, nargs="+", help="status JSON of each slide (ok / skipped / failed)")
    p.add_argument("--out-shard", default=None,
                   help="shard table (TSV, one row per slide; needed with several slides): a slide that raises is "
                        "recorded failed there and in its status JSON, and the others go on")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--num-workers", type=int, default=None, help="DataLoader workers (overrides features.num_workers)")

    g = group("omics", "RNA-seq expression")
    p = _add(g, "matrix", cmd_omics_matrix, "STAR - Counts files -> patient x gene matrix")
    p.add_argument("--files-meta", required=True, help="GDC /files JSON of the STAR files (metadata/files_rnaseq.json)")
    p.add_argument("--rnaseq-dir", required=True, help="folder holding <file_id>/<file_name> STAR files")
    p.add_argument("--out", required=True)
    p.add_argument("--out-samples", required=True)

    p = _add(g, "import", cmd_omics_import, "gene x sample matrix (TSV/CSV/h5ad) with a declared unit -> "
             "expression.h5", config=False)
    p.add_argument("--matrix", required=True, help="TSV/CSV (genes x samples) or h5ad (obs = samples, var = genes)")
    p.add_argument("--unit", required=True, help="counts, tpm, fpkm, fpkm_uq, or log2_<one of these> (+ --pseudocount)")
    p.add_argument("--pseudocount", type=float, default=None, help="p of a log2(x + p) unit")
    p.add_argument("--gene-id", required=True, choices=("symbol", "ensembl"), help="gene id type (versions stripped)")
    p.add_argument("--orientation", default="genes-in-rows", choices=("genes-in-rows", "genes-in-columns"),
                   help="TSV/CSV layout")
    p.add_argument("--gene-column", default=None, help="h5ad var column with the gene ids (default var_names)")
    p.add_argument("--layer", default=None, help="h5ad layer with the values (default X)")
    p.add_argument("--reference", default=None,
                   help="training expression.h5: its genes, order and unit are the target (external cohorts)")
    p.add_argument("--gene-table", default=None,
                   help="symbol <-> Ensembl table: a GDC STAR - Counts file or a TSV with gene_id, gene_name[, gene_type]")
    p.add_argument("--max-missing-fraction", type=float, default=0.1,
                   help="reference genes the matrix may lack (filled with the reference mean)")
    p.add_argument("--config", default=None, help="config.yaml: omics.value_column/gene_types/log_transform "
                   "(without --reference; default: their defaults)")
    p.add_argument("--out", required=True)

    g = group("data", "cohort and cross-validation splits")
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

    g = group("train", "model training")
    p = _add(g, "fold", cmd_train_fold, "train one model on one task and fold")
    p.add_argument("--split", required=True)
    p.add_argument("--out-dir", required=True)
    _add_training_inputs(p)
    p = _add(g, "folds", cmd_train_folds, "train one model on one task and several folds, in this process")
    p.add_argument("--splits", nargs="+", required=True, help="fold_<k>.json of each fold")
    p.add_argument("--out-dirs", nargs="+", required=True, help="output folder of each fold, in --splits order")
    _add_training_inputs(p)

    g = group("bundle", "model bundles for deployment")
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

    g = group("external", "external validation cohorts (section external; docs/data-contracts.md §12)")
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

    g = group("evaluate", "metrics from prediction files")
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

    g = group("validate", "omics models on published TCGA-GBMLGG tables under their original protocols")
    p = _add(g, "fit", cmd_validate_fit, "train one validation job (protocol x model x task x patients x split)")
    p.add_argument("--protocol", required=True, choices=["pf", "mcat"])
    p.add_argument("--model", required=True, help="omics-only registered model (e.g. snn)")
    p.add_argument("--task", required=True, choices=["survival", "grade"])
    p.add_argument("--cohort", default="all", choices=["all", "rnaseq"], help="patient set (PF survival)")
    p.add_argument("--split", required=True, type=int, help="PF randomisation 1..15 or MCAT fold 0..4")
    p.add_argument("--out-dir", required=True, help="validation output folder (results/validation)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p = _add(g, "report", cmd_validate_report, "metrics.tsv, summary.tsv, report.md and the figure of all jobs")
    p.add_argument("--out-dir", required=True, help="validation output folder holding the jobs")
    p = _add(g, "run", cmd_validate_run, "train every configured job in this process, then write the report")
    p.add_argument("--out-dir", required=True, help="validation output folder (results/validation)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")

    g = group("report", "figures and tables for the report")

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
