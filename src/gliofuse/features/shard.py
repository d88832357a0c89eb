"""Shard extraction: one job encodes several slides with one encoder build (docs/data-contracts.md §5).

* :func:`extract_shard_`: encodes the slides of a shard in order. The encoder is built (and compiled)
  once; while slide k encodes, a background thread prepares slide k+1 (coords, slide hash, reuse
  check, reader choice, batch plan) and reads its first batches. Each slide keeps its own features h5,
  status JSON and resume folder, so a killed shard redoes only its unfinished slides; a slide whose
  extraction raises is recorded ``failed`` (reason ``error: ...``) and the others go on;
* the shard table (:mod:`gliofuse.features.shard_table`), one row per slide, is the job's declared output.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from gliofuse.config import FeaturesConfig
from gliofuse.errors import ConfigError
from gliofuse.features.extract import (
    Prepared,
    SlideJob,
    encode_prepared,
    get_encoder,
    prepare_slide,
    run_settings,
)
from gliofuse.features.shard_table import ShardRow, write_shard_table_
from gliofuse.features.status import FeatureRecord, write_feature_status_

log = logging.getLogger(__name__)


def _failed(job: SlideJob, cfg: FeaturesConfig, exc: BaseException) -> dict[str, Any]:
    """Record a slide whose extraction raised: status JSON ``failed``, reason ``error: <type>: <message>``."""
    message = " ".join(str(exc).split())[:500]
    log.error("features %s: failed (%s: %s)\n%s", job.slide_path.name, type(exc).__name__, message,
              "".join(traceback.format_exception(exc)))
    device, precision, workers = run_settings(cfg)
    record = FeatureRecord(slide_id=job.slide_path.stem, encoder=cfg.encoder, status="failed",
                           reason=f"error: {type(exc).__name__}: {message}", device=str(device),
                           precision=precision, read_strategy=cfg.read_strategy, num_workers=workers)
    return write_feature_status_(job.out_status, record) if job.out_status else record.to_dict()


def extract_shard_(jobs: Sequence[SlideJob], *, cfg: FeaturesConfig, seed: int, out_table: Path | None = None,
                   num_workers: int | None = None) -> list[dict[str, Any]]:
    """Encode the slides of ``jobs`` in order with one encoder; write each slide's h5 + status and the shard table.

    A slide that raises (unreadable file, coords of another file, ...) is recorded ``failed`` and the next one
    goes on; a configuration error (``ConfigError``) stops the shard. Returns the status records.
    """
    encoder = get_encoder(cfg, seed=seed)
    records: list[dict[str, Any]] = []
    errored: set[int] = set()

    def prepare(job: SlideJob) -> Prepared:
        return prepare_slide(job, cfg=cfg, seed=seed, encoder=encoder, prefetch=cfg.prefetch_factor)

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="prepare-next-slide") as pool:
        nxt: Future[Prepared] | None = pool.submit(prepare, jobs[0]) if jobs else None
        for i, job in enumerate(jobs):
            current, nxt = nxt, None

            def start_next(i: int = i) -> None:
                nonlocal nxt
                if nxt is None and i + 1 < len(jobs):
                    nxt = pool.submit(prepare, jobs[i + 1])

            try:
                prep = current.result() if current is not None else prepare(job)
                records.append(encode_prepared(prep, cfg=cfg, seed=seed, encoder=encoder, num_workers=num_workers,
                                               on_started=start_next))
            except ConfigError:
                raise
            except Exception as exc:  # noqa: BLE001 - a bad slide fails only itself (recorded with its reason)
                records.append(_failed(job, cfg, exc))
                errored.add(i)
            start_next()
    if out_table is not None:
        write_shard_table_(out_table, [_row(job, rec, has_h5=i not in errored and job.out_path.is_file())
                                       for i, (job, rec) in enumerate(zip(jobs, records, strict=True))])
    n_failed = sum(r["status"] == "failed" for r in records)
    log.info("shard: %d slides (%d ok, %d skipped, %d failed)", len(records),
             sum(r["status"] == "ok" for r in records), sum(r["status"] == "skipped" for r in records), n_failed)
    return records


def _row(job: SlideJob, record: dict[str, Any], *, has_h5: bool) -> ShardRow:
    return ShardRow(slide_id=str(record["slide_id"]), status=str(record["status"]), reason=str(record["reason"]),
                    n_patches=int(record["n_patches"]), decoder=str(record.get("decoder", "")),
                    features=str(job.out_path) if has_h5 else "",
                    status_json=str(job.out_status) if job.out_status else "")
