"""The jobs of the reproduction, from the ``validation`` config section alone.

One job = one protocol (``pf`` / ``mcat``) x omics-only model x task x patient set x split. The workflow
(workflow/rules/validation.smk) imports this module at parse time: it reads no table and imports no torch.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from gliofuse.config import ValidationConfig, ValidationProtocolConfig
from gliofuse.errors import ConfigError
from gliofuse.reproduce.protocols import MCAT_SPLITS, PF_SPLITS, PROTOCOLS
from gliofuse.reproduce.tables import MCAT_FILES, PF_FILES, PublishedCohort, load_protocol_, mcat_patients_

JOB_COLUMNS: tuple[str, ...] = ("protocol", "model", "task", "cohort", "split")


@dataclass(frozen=True)
class ValidationJob:
    """One training job of the reproduction; ``cohort``: ``all`` or ``rnaseq`` (PF survival, see the config)."""

    protocol: str
    model: str
    task: str
    split: int
    cohort: str = "all"

    @property
    def rel_dir(self) -> str:
        """``<protocol>/<model>/<task>/<cohort>/split_<k>`` (relative to the validation output folder)."""
        return f"{self.protocol}/{self.model}/{self.task}/{self.cohort}/split_{self.split}"


def protocol_config(cfg: ValidationConfig, protocol: str) -> ValidationProtocolConfig:
    """The ``validation.pf`` or ``validation.mcat`` section."""
    if protocol == "pf":
        return cfg.pf
    if protocol == "mcat":
        return cfg.mcat
    raise ConfigError(f"unknown validation protocol {protocol!r}; expected pf or mcat.")


def protocol_dir(cfg: ValidationConfig, protocol: str) -> str | None:
    """The configured table folder of ``protocol`` (None: not configured)."""
    return cfg.pf_dir if protocol == "pf" else cfg.mcat_dir


def roi_weighting(pc: ValidationProtocolConfig) -> bool:
    """Whether a protocol counts each patient once per ROI (``validation.pf.roi_weighting``; MCAT: never)."""
    return bool(getattr(pc, "roi_weighting", False))


def active_protocols(cfg: ValidationConfig) -> list[str]:
    """Protocols that are enabled and whose table folder is configured."""
    return [p for p in PROTOCOLS if protocol_config(cfg, p).enabled and protocol_dir(cfg, p)]


def validation_jobs(cfg: ValidationConfig) -> list[ValidationJob]:
    """All jobs of the configured reproduction (from the config alone; the tables are not read)."""
    jobs = []
    for protocol in active_protocols(cfg):
        pc = protocol_config(cfg, protocol)
        all_splits = PF_SPLITS if protocol == "pf" else MCAT_SPLITS
        splits = all_splits if pc.splits is None else tuple(pc.splits)
        bad = sorted(set(splits) - set(all_splits))
        if bad:
            raise ConfigError(f"validation.{protocol}.splits: {bad} are not splits of the protocol "
                              f"({all_splits[0]}..{all_splits[-1]}).")
        if protocol == "mcat" and "grade" in pc.tasks:
            raise ConfigError("validation.mcat.tasks: the MCAT protocol has no grade task (survival only).")
        for t in pc.tasks:
            cohorts = list(getattr(pc, "survival_cohorts", ["all"])) if t == "survival" else ["all"]
            if "rnaseq" in cohorts and not cfg.mcat_dir:
                raise ConfigError("validation.pf.survival_cohorts: 'rnaseq' needs validation.mcat_dir (the MCAT "
                                  "table lists the patients with RNA-seq); set it or use [all].")
            jobs += [ValidationJob(protocol, m, t, k, c) for m in pc.models for c in cohorts for k in splits]
    return jobs


def protocol_inputs(cfg: ValidationConfig, protocol: str) -> dict[str, Path]:
    """The table files a protocol reads, ``{name: path}`` (provenance and workflow inputs)."""
    root = protocol_dir(cfg, protocol)
    if root is None:
        raise ConfigError(f"validation.{protocol}_dir is not set; point it at the published tables "
                          "(see config/real_gbmlgg_omics.yaml).")
    if protocol == "pf":
        return {k: Path(root) / v for k, v in PF_FILES.items()}
    files = {"table": Path(root) / MCAT_FILES["table"], "signatures": Path(root) / MCAT_FILES["signatures"]}
    files.update({f"splits_{k}": Path(root) / MCAT_FILES["splits"] / f"splits_{k}.csv" for k in MCAT_SPLITS})
    return files


def job_table_inputs(cfg: ValidationConfig, protocol: str, cohort: str) -> list[str]:
    """Table files one job reads (its protocol's, plus the MCAT table for the ``rnaseq`` patient set)."""
    files = protocol_inputs(cfg, protocol)
    if cohort == "rnaseq":
        files["mcat_table"] = protocol_inputs(cfg, "mcat")["table"]
    return [str(p) for p in files.values()]


def job_prediction_paths(cfg: ValidationConfig, out_root: str) -> list[str]:
    """``<out_root>/<job>/predictions.tsv`` of every configured job; none configured raises ``ConfigError``."""
    jobs = validation_jobs(cfg)
    if not jobs:
        raise ConfigError("validation: no protocol is configured. Set validation.pf_dir and/or validation.mcat_dir, "
                          "e.g. snakemake validation_all --configfile config/real_gbmlgg_omics.yaml")
    return [f"{out_root}/{j.rel_dir}/predictions.tsv" for j in jobs]


def load_cohort_(cfg: ValidationConfig, protocol: str) -> PublishedCohort:
    """Read the tables of ``protocol`` with the configured feature selection."""
    mc = cfg.mcat
    return load_protocol_(protocol, pf_dir=cfg.pf_dir, mcat_dir=cfg.mcat_dir, signature_genes=mc.signature_genes,
                          exclude_genes=mc.exclude_genes, feature_types=mc.feature_types)


def restrict_cohort_(cohort: PublishedCohort, name: str, cfg: ValidationConfig) -> PublishedCohort:
    """The patient set ``name`` of ``cohort``: ``all`` (unchanged) or ``rnaseq`` (patients in the MCAT table)."""
    if name == "all":
        return cohort
    if name == "rnaseq":
        keep = mcat_patients_(cfg.mcat_dir)  # type: ignore[arg-type]
        return replace(cohort, usable=cohort.usable & np.isin(np.asarray(cohort.patients), sorted(keep)))
    raise ConfigError(f"unknown validation cohort {name!r}; expected all or rnaseq.")
