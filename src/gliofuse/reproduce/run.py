"""Entry points of the reproduction of the published protocols (``gliofuse validate report`` / ``run``).

Outputs under ``out_root`` (``results/validation/`` in the workflow):

* ``<protocol>/<model>/<task>/<cohort>/split_<k>/``: the harness outputs of each job
  (:func:`gliofuse.reproduce.fit.fit_published_split_`).
* ``metrics.tsv`` and ``summary.tsv`` (:mod:`gliofuse.reproduce.summary`).
* ``report.md`` and ``validation.png`` (+ ``.svg``) (:mod:`gliofuse.reproduce.report`).

Protocol details and their sources are in docs/validation.md.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pandas as pd

from gliofuse.config import GliofuseConfig
from gliofuse.errors import ConfigError
from gliofuse.io import provenance, write_table_
from gliofuse.reproduce.fit import fit_published_split_
from gliofuse.reproduce.jobs import load_cohort_, validation_jobs
from gliofuse.reproduce.report import format_value, write_report_
from gliofuse.reproduce.summary import collect_metrics_, summarise_metrics
from gliofuse.reproduce.tables import PublishedCohort

logger = logging.getLogger(__name__)


def report_validation_(*, cfg: GliofuseConfig, out_root: Path, wall_seconds: float | None = None) -> pd.DataFrame:
    """Score all jobs of the config found under ``out_root``; write metrics, summary, report and figure.

    Returns the summary frame.
    """
    vcfg = cfg.validation
    jobs = validation_jobs(vcfg)
    if not jobs:
        raise ConfigError("validation: no protocol is configured; set validation.pf_dir and/or validation.mcat_dir "
                          "(e.g. --config config/real_gbmlgg_omics.yaml).")
    out_root = Path(out_root)
    metrics = collect_metrics_(vcfg, jobs, out_root)
    summary = summarise_metrics(metrics, tolerance=vcfg.tolerance)
    prov = provenance(config=vcfg.model_dump(mode="json"), inputs={}, extra={"jobs": len(jobs)})
    write_table_(out_root / "metrics.tsv", metrics, prov=prov)
    write_table_(out_root / "summary.tsv", summary, prov=prov)
    write_report_(cfg=vcfg, summary=summary, metrics=metrics, out_md=out_root / "report.md",
                  out_png=out_root / "validation.png", wall_seconds=wall_seconds)
    for r in summary.itertuples(index=False):
        logger.info("%s/%s/%s %s: %.4f ± %.4f over %d splits (published %s, %s)", r.protocol, r.model, r.task,
                    r.metric, r.mean, r.sd, r.n_splits, format_value(r.published), r.status or "-")
    return summary


def run_validation_(*, cfg: GliofuseConfig, out_root: Path) -> pd.DataFrame:
    """Train every job of the config in this process, then write the report (:func:`report_validation_`)."""
    jobs = validation_jobs(cfg.validation)
    if not jobs:
        raise ConfigError("validation: no protocol is configured; set validation.pf_dir and/or validation.mcat_dir.")
    t0 = time.perf_counter()
    cohorts: dict[str, PublishedCohort] = {}
    for job in jobs:
        if job.protocol not in cohorts:
            cohorts[job.protocol] = load_cohort_(cfg.validation, job.protocol)
        fit_published_split_(cfg=cfg, job=job, out_root=Path(out_root), cohort=cohorts[job.protocol])
    return report_validation_(cfg=cfg, out_root=Path(out_root), wall_seconds=time.perf_counter() - t0)
