"""Shard tables of ``features_extract`` (docs/data-contracts.md §5) — torch-free, read by data, training and report.

``results/features/<encoder>/shards/shard_<k>.tsv``: one row per slide of shard k
(:class:`ShardRow`). :func:`assign_shards` puts slides into shards; :func:`read_shard_tables_` is the
one reader (it checks the columns, the status values and that every listed file exists).
"""

from __future__ import annotations

import csv
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from gliofuse.errors import ConfigError, InputDataError
from gliofuse.io import atomic_path

STATUSES = ("ok", "skipped", "failed")


def assign_shards(slide_ids: Sequence[str], shard_size: int) -> list[list[str]]:
    """Slide ids → shards: the sorted unique ids cut into consecutive chunks of ``shard_size``.

    Deterministic: the same slide list gives the same shards in any order; adding a slide changes only
    the shards from its sorted position on.
    """
    if shard_size < 1:
        raise ConfigError(f"features.shard_size must be >= 1, got {shard_size}.")
    ids = sorted(set(slide_ids))
    return [ids[i:i + shard_size] for i in range(0, len(ids), shard_size)]


@dataclass(frozen=True)
class ShardRow:
    """One slide of a shard table: the status JSON always exists; ``features`` is empty when no h5 was written
    (extraction raised). Paths are as the job got them (relative to the workflow's working directory)."""

    slide_id: str
    status: str
    reason: str
    n_patches: int
    decoder: str
    features: str
    status_json: str


COLUMNS = tuple(f.name for f in fields(ShardRow))


def write_shard_table_(path: str | os.PathLike[str], rows: Sequence[ShardRow]) -> None:
    """Write a shard table (TSV with the :class:`ShardRow` columns) atomically."""
    with atomic_path(Path(path)) as tmp, open(tmp, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=COLUMNS, delimiter="\t", lineterminator="\n")
        w.writeheader()
        for row in rows:
            w.writerow({k: " ".join(str(v).split()) for k, v in asdict(row).items()})


def _rows_of(path: Path) -> list[ShardRow]:
    fix = f"Rerun its features_extract job: snakemake --forcerun {path} (finished slides are reused)."
    try:
        with open(path, newline="") as fh:
            reader = csv.DictReader(fh, delimiter="\t")
            if tuple(reader.fieldnames or ()) != COLUMNS:
                raise InputDataError(f"shard table {path}: columns {reader.fieldnames}, expected {list(COLUMNS)}. {fix}")
            raw = list(reader)
    except OSError as exc:
        raise InputDataError(f"shard table {path} cannot be read ({exc}). {fix}") from None
    rows = []
    for i, r in enumerate(raw, start=2):
        if r["status"] not in STATUSES or not r["n_patches"].isdigit() or not r["slide_id"]:
            raise InputDataError(f"shard table {path}, line {i}: slide {r['slide_id']!r} has status {r['status']!r} "
                                 f"and n_patches {r['n_patches']!r}; expected one of {STATUSES} and an integer. {fix}")
        for col in ("status_json", "features"):
            if (r[col] or col == "status_json") and not Path(r[col]).is_file():
                raise InputDataError(f"shard table {path}, line {i}: {col} file {r[col]!r} of slide {r['slide_id']} "
                                     f"is missing. {fix}")
        rows.append(ShardRow(**{**r, "n_patches": int(r["n_patches"])}))
    return rows


def read_shard_tables_(paths: Sequence[str | os.PathLike[str]]) -> list[ShardRow]:
    """Rows of the shard tables ``paths``, checked: columns, status values, a slide in one shard only, and
    every listed file present (a deleted features h5 names its shard table and how to rerun it)."""
    rows: list[ShardRow] = []
    seen: dict[str, Path] = {}
    for p in map(Path, paths):
        for row in _rows_of(p):
            if row.slide_id in seen:
                raise InputDataError(f"slide {row.slide_id} is listed in two shard tables, {seen[row.slide_id]} and "
                                     f"{p}. Delete the stale one (features.shard_size changed?).")
            seen[row.slide_id] = p
            rows.append(row)
    return rows


def shard_feature_paths(rows: Sequence[ShardRow]) -> list[Path]:
    """Features h5 files of the rows that have one (contract §5)."""
    return [Path(r.features) for r in rows if r.features]


def shard_status_paths(rows: Sequence[ShardRow]) -> list[Path]:
    """Features status JSON files of all rows (contract §5)."""
    return [Path(r.status_json) for r in rows]
