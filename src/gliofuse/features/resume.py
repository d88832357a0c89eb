"""Resumable progress of one slide's extraction: finished batches saved under ``<out>.partial/``.

Each flush writes one ``shard-<first batch>-<n>.npz`` (rows, features, failed flags and batch indices)
atomically; ``manifest.json`` holds the key of the run (encoder, weights, coords and batch plan). A
rerun with the same key skips the saved batches; any other key discards the folder. The folder is
removed once the features file is written.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gliofuse.io import atomic_path, write_json_

log = logging.getLogger(__name__)


@dataclass
class Finished:
    """Saved result of some batches: ``rows`` (M,) int64, ``features`` (M, D) float32, ``failed`` (M,) bool."""

    batches: np.ndarray
    rows: np.ndarray
    features: np.ndarray
    failed: np.ndarray


class ResumeFolder:
    """Progress folder ``<out_path>.partial`` for the run identified by ``key``."""

    def __init__(self, out_path: str | os.PathLike[str], key: str) -> None:
        out = Path(out_path)
        self.dir = out.with_name(out.name + ".partial")
        self.key = key

    def load(self) -> list[Finished]:
        """Saved shards of this run (empty, and the folder reset, if it belongs to another run)."""
        manifest = self.dir / "manifest.json"
        try:
            same = json.loads(manifest.read_text()).get("key") == self.key
        except (OSError, ValueError):
            same = False
        if not same:
            if self.dir.exists():
                log.info("discarding %s: it belongs to another run (key differs)", self.dir)
            self.clear()
            return []
        out = []
        for shard in sorted(self.dir.glob("shard-*.npz")):
            try:
                with np.load(shard) as z:
                    out.append(Finished(batches=z["batches"], rows=z["rows"], features=z["features"],
                                        failed=z["failed"]))
            except (OSError, ValueError, KeyError, zipfile.BadZipFile) as exc:  # pragma: no cover - defensive
                log.warning("ignoring unreadable progress shard %s (%s)", shard, exc)
        return out

    def start(self) -> None:
        """Create the folder and its manifest (if not there yet)."""
        if not (self.dir / "manifest.json").is_file():
            self.dir.mkdir(parents=True, exist_ok=True)
            write_json_(self.dir / "manifest.json", {"key": self.key})

    def save(self, done: Finished) -> None:
        """Write one shard atomically."""
        if len(done.batches) == 0:
            return
        path = self.dir / f"shard-{int(done.batches.min()):06d}-{len(done.batches)}.npz"
        with atomic_path(path) as tmp, open(tmp, "wb") as fh:
            np.savez(fh, batches=done.batches, rows=done.rows, features=done.features, failed=done.failed)

    def clear(self) -> None:
        """Remove the folder."""
        shutil.rmtree(self.dir, ignore_errors=True)
