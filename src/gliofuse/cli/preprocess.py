"""``gliofuse wsi``, ``features`` and ``omics``: slide patching, patch features, expression matrices."""

from __future__ import annotations

import argparse
from pathlib import Path

from gliofuse.cli.common import _add, _cfg, _section, _torch_threads, add_group
from gliofuse.errors import ConfigError


def cmd_wsi_patch(args: argparse.Namespace) -> None:
    from gliofuse.wsi.patch import patch_slide_

    cfg = _cfg(args)
    opt = {name: Path(getattr(args, name)) if getattr(args, name) else None
           for name in ("out_geojson", "out_thumbnail", "out_contours")}
    patch_slide_(slide_path=Path(args.slide), cfg=cfg.wsi, out_coords=Path(args.out_coords),
                 out_qc=Path(args.out_qc), out_status=Path(args.out_status), mpp_override=args.mpp,
                 slide_id=args.slide_id, **opt)


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


def add_commands(stages: argparse._SubParsersAction) -> None:
    """Register the ``wsi``, ``features`` and ``omics`` stages."""
    g = add_group(stages, "wsi", "tissue segmentation and patching")
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

    g = add_group(stages, "features", "patch feature extraction")
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

    g = add_group(stages, "omics", "RNA-seq expression")
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
