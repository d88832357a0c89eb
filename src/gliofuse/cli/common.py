"""Helpers shared by the command modules: config loading, subcommand registration, input-path arguments."""

from __future__ import annotations

import argparse
import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from gliofuse import __version__
from gliofuse.errors import ConfigError, InputDataError

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


def _add(sub: argparse._SubParsersAction, name: str, handler: Handler, help_: str, *, config: bool = True):
    p = sub.add_parser(name, help=help_, description=help_)
    if config:
        p.add_argument("--config", required=True, help="config.yaml or a results/config/<section>.yaml snapshot")
    p.set_defaults(handler=handler)
    return p


def add_group(stages: argparse._SubParsersAction, name: str, help_: str) -> argparse._SubParsersAction:
    """Add stage ``name`` and return its subparsers, one per verb."""
    return stages.add_parser(name, help=help_).add_subparsers(dest="verb", required=True, metavar="VERB")


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


def _feature_paths(args: argparse.Namespace, *, required: bool = True) -> list[Path]:
    """Features h5 files from ``--features`` and/or the rows of ``--feature-shards`` (the slides that have one)."""
    from gliofuse.features.shard_table import shard_feature_paths

    rows = _shard_rows(args)
    if required and not args.features and rows is None:
        raise ConfigError(f"gliofuse {args.stage} {args.verb} needs --features (features h5 files) or "
                          "--feature-shards (shard tables).")
    return [Path(p) for p in args.features or []] + (shard_feature_paths(rows) if rows else [])


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
