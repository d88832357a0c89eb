"""``gliofuse validate``: omics models on published TCGA-GBMLGG tables under their original protocols."""

from __future__ import annotations

import argparse
from pathlib import Path

from gliofuse.cli.common import _add, _cfg, _torch_threads, add_group


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


def add_commands(stages: argparse._SubParsersAction) -> None:
    """Register the ``validate`` stage."""
    g = add_group(stages, "validate", "omics models on published TCGA-GBMLGG tables under their original protocols")
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
