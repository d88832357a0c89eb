"""``gliofuse gdc``, ``labels`` and ``cohort``: TCGA acquisition, the label table, the slide sheet."""

from __future__ import annotations

import argparse
from pathlib import Path

from gliofuse.cli.common import _add, _cfg, _section, add_group, log
from gliofuse.errors import ConfigError


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


def add_commands(stages: argparse._SubParsersAction) -> None:
    """Register the ``gdc``, ``labels`` and ``cohort`` stages."""
    g = add_group(stages, "gdc", "TCGA acquisition from the NCI GDC")
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

    g = add_group(stages, "labels", "patient label table")
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

    g = add_group(stages, "cohort", "the slide sheet: the workflow's one list of slides and their patients")
    p = _add(g, "sheet", cmd_cohort_sheet, "validate a slide sheet, or make one from TCGA-named slides; write it",
             config=False)
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--sheet", help="your slide sheet (patient_id, slide_id, slide_path)")
    source.add_argument("--tcga-slides", nargs="+", help="slide files named <TCGA slide barcode>.<ext>")
    p.add_argument("--out", required=True, help="the workflow's slide sheet (results/cohort/slides.tsv)")
    _add(g, "check", cmd_cohort_check, "check the config's slide sheet and clinical table (cohort: sheet)")
