"""Per-slide status record of the patching stage (``results/wsi/status/<slide_id>.json``)."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

from gliofuse.io import read_json_, write_json_


class SlideStatus(StrEnum):
    ok = "ok"
    skipped = "skipped"
    failed = "failed"


@dataclass
class SlideRecord:
    """What happened to one slide (docs/data-contracts.md §4).

    ``mpp_level0`` in µm per level-0 px (None if unknown); ``tissue_fraction`` = fraction of the
    slide area that is tissue (None if not segmented); ``preset`` and ``overrides`` (names of the
    parameters set by ``wsi.overrides_csv`` for this slide) say which parameters were used;
    ``n_tissue_regions``/``n_holes`` count the GeoJSON polygons and their holes; ``seg_threshold``
    is the saturation threshold applied (None if not segmented).
    """

    slide_id: str
    status: SlideStatus
    reason: str = ""
    n_patches: int = 0
    mpp_level0: float | None = None
    mpp_source: str = "missing"
    tissue_fraction: float | None = None
    preset: str | None = None
    overrides: list[str] = field(default_factory=list)
    n_tissue_regions: int = 0
    n_holes: int = 0
    seg_threshold: int | None = None
    stage: str = "wsi_patch"

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["status"] = str(self.status)
        return d


def write_status_(path: str | os.PathLike[str], record: SlideRecord) -> dict[str, Any]:
    """Write the record as JSON atomically and return it as a dict."""
    d = record.to_dict()
    write_json_(path, d)
    return d


def read_status_(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a status JSON (``InputDataError`` if missing or malformed)."""
    return read_json_(path, what="slide status file")
