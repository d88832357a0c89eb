"""Per-slide status record of the features stage (``results/features/<encoder>/status/<slide_id>.json``)."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from typing import Any

from gliofuse.io import read_json_, write_json_


@dataclass
class FeatureRecord:
    """What happened to one slide in ``features_extract`` (docs/data-contracts.md §5).

    ``status``: ``ok``; ``skipped`` (the coords file has no patches; ``reason`` copied from it);
    ``failed`` (more than ``features.max_failed_fraction`` of the patches were unreadable; the
    features file is still written, and downstream stages leave the slide out).
    ``n_failed_reads`` patches were unreadable and encoded as white tiles; ``n_read_retries`` reads
    were repeated after an error; ``reused``: a complete features file of the same run existed;
    ``resumed_batches``: batches taken from a killed run's progress folder. ``seconds`` is the whole
    slide (in a shard job: from its preparation on); ``patches_per_s`` the read + encode throughput
    (None when nothing was encoded). ``decoder``: the reader that encoded the patches (``raw`` JPEG
    tiles or ``openslide``; empty when nothing was read); ``decoder_fallback``: why raw tiles were
    abandoned for OpenSlide (``features.decoder: auto``), else empty. In a shard job, a slide whose
    extraction raised is recorded ``failed`` with ``reason`` ``error: <type>: <message>`` (no h5).
    """

    slide_id: str
    encoder: str
    status: str
    reason: str = ""
    n_patches: int = 0
    embed_dim: int = 0
    n_failed_reads: int = 0
    n_read_retries: int = 0
    reused: bool = False
    resumed_batches: int = 0
    seconds: float = 0.0
    patches_per_s: float | None = None
    device: str = ""
    precision: str = ""
    read_strategy: str = ""
    num_workers: int = 0
    decoder: str = ""
    decoder_fallback: str = ""
    stage: str = "features_extract"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def write_feature_status_(path: str | os.PathLike[str], record: FeatureRecord) -> dict[str, Any]:
    """Write the record as JSON atomically and return it as a dict."""
    d = record.to_dict()
    write_json_(path, d)
    return d


def read_feature_status_(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a features status JSON (``InputDataError`` if missing or malformed)."""
    return read_json_(path, what="features status file")
