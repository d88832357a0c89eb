"""Download GDC files: stream to ``.<name>.part``, resume with HTTP Range, verify size + md5, rename atomically.

A file only ever appears under its final name after its size and md5 matched the manifest, so an existing
file in the data root is a verified one. An interrupted transfer (connection cut, killed job) leaves the
``.part`` file, and the next attempt (in the same call or a later run) resumes from its size with
``Range: bytes=<size>-``. A wrong md5 or size discards the partial data and fetches the file again, once
by default; a second mismatch raises ``DownloadError`` naming the file id.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
import re
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import requests

from gliofuse.gdc.client import GdcClient, GdcError
from gliofuse.gdc.manifest import ManifestRow

log = logging.getLogger(__name__)

CHUNK_BYTES = 1 << 16  # small enough that a cut connection loses little (urllib3 drops a partial read)
_CONTENT_RANGE = re.compile(r"^bytes (\d+)-(\d+)/(\d+|\*)$")


class DownloadError(GdcError):
    """A file could not be downloaded intact (after all retries and re-fetches)."""


@dataclass(frozen=True)
class DownloadResult:
    """Outcome of one file download."""

    file_id: str
    path: Path
    size: int
    md5: str
    fetched_bytes: int
    resumed: int
    refetched: int
    skipped: bool


def part_path(dest: Path) -> Path:
    """Temporary file of a download in progress: ``.<name>.part`` beside ``dest``."""
    return dest.with_name(f".{dest.name}.part")


def md5_of(path: Path) -> str:
    """md5 hex digest of a file."""
    h = hashlib.md5()
    with Path(path).open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def _fetch(client: GdcClient, row: ManifestRow, part: Path) -> tuple[int, int]:
    """Fill ``part`` up to ``row.size`` bytes, resuming after interruptions. Returns (bytes fetched, resumes)."""
    fetched = resumes = failures = 0
    while True:
        have = _size(part)
        if have > row.size:
            part.unlink()
            have = 0
        if have == row.size and (have > 0 or part.exists()):
            return fetched, resumes
        headers = {"Accept-Encoding": "identity"}
        if have:
            headers["Range"] = f"bytes={have}-"
            resumes += 1
            log.info("file %s: resuming at byte %d of %d", row.id, have, row.size)
        resp = client.request("GET", f"data/{row.id}", what=f"file {row.id}", stream=True, ok=(200, 206, 416),
                              headers=headers)
        try:
            if resp.status_code == 416:
                # the server thinks we are at or past the end although the size says otherwise: start over
                log.warning("file %s: server answered 416 to Range bytes=%d-; restarting from 0", row.id, have)
                part.unlink(missing_ok=True)
                failures += 1
            else:
                mode = "wb"
                if resp.status_code == 206:
                    m = _CONTENT_RANGE.match(resp.headers.get("Content-Range", ""))
                    if m and int(m.group(1)) == have:
                        mode = "ab"
                    else:
                        log.warning("file %s: unexpected Content-Range %r; restarting from 0", row.id,
                                    resp.headers.get("Content-Range"))
                try:
                    with part.open(mode) as fh:
                        for chunk in resp.iter_content(CHUNK_BYTES):
                            fh.write(chunk)
                            fetched += len(chunk)
                except requests.RequestException as exc:
                    failures += 1
                    log.warning("file %s: transfer interrupted at byte %d of %d (%s)", row.id, _size(part), row.size,
                                type(exc).__name__)
                else:
                    if _size(part) >= row.size:
                        return fetched, resumes
                    failures += 1
                    log.warning("file %s: connection closed at byte %d of %d", row.id, _size(part), row.size)
        finally:
            resp.close()
        if failures > client.retry.max_retries:
            raise DownloadError(
                f"GDC file {row.id} ({row.filename}): download interrupted {failures} times, {_size(part)} of "
                f"{row.size} bytes kept in {part}. Rerun to resume, or raise gdc.max_retries."
            )
        wait = client.retry.delay(failures - 1)
        client.sleep(wait)


def download_file_(client: GdcClient, row: ManifestRow, dest: Path, *, refetch_on_mismatch: int = 1) -> DownloadResult:
    """Download one manifest file to ``dest`` (verified, atomic).

    Parameters
    ----------
    client : GDC client (retries, back-off, token).
    row : the manifest row (id, expected size and md5).
    dest : final path; skipped when it already exists with the right size and md5.
    refetch_on_mismatch : how many times a file whose size or md5 is wrong is downloaded again from scratch.

    Raises
    ------
    DownloadError
        Size or md5 still wrong after the re-fetches, or too many interruptions; the message names the file id.
    GdcError
        The server refused the request (4xx) or kept failing (5xx/429) beyond the retry budget.
    """
    dest = Path(dest)
    if dest.exists() and dest.stat().st_size == row.size and md5_of(dest) == row.md5:
        log.info("file %s: %s already present and verified", row.id, dest)
        return DownloadResult(row.id, dest, row.size, row.md5, 0, 0, 0, True)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = part_path(dest)
    fetched = resumed = 0
    for refetch in range(refetch_on_mismatch + 1):
        got_bytes, got_resumes = _fetch(client, row, part)
        fetched += got_bytes
        resumed += got_resumes
        size = _size(part)
        digest = md5_of(part) if size == row.size else None
        if digest == row.md5:
            os.replace(part, dest)
            log.info("file %s: %s (%d bytes, md5 ok)", row.id, dest, size)
            return DownloadResult(row.id, dest, size, digest, fetched, resumed, refetch, False)
        problem = (f"md5 {digest} != expected {row.md5}" if digest is not None
                   else f"size {size} != expected {row.size}")
        part.unlink(missing_ok=True)
        if refetch < refetch_on_mismatch:
            log.warning("file %s: %s; downloading it again", row.id, problem)
    raise DownloadError(
        f"GDC file {row.id} ({row.filename}): {problem} after {refetch_on_mismatch + 1} downloads. The file on the "
        "server does not match its metadata; rerun the query (gdc_query) to refresh the manifest, or report it."
    )


def download_all_(client: GdcClient, rows: Iterable[ManifestRow], data_root: Path, *, jobs: int = 4,
                  refetch_on_mismatch: int = 1) -> list[DownloadResult]:
    """Download every manifest row into the data-root layout with ``jobs`` parallel connections.

    Every file is attempted; failures are collected and raised together as one ``DownloadError``.
    """
    rows = list(rows)
    root = Path(data_root)

    def one(row: ManifestRow) -> DownloadResult | Exception:
        own = dataclasses.replace(client, session=requests.Session())  # sessions are not shared across threads
        try:
            return download_file_(own, row, root / row.relpath, refetch_on_mismatch=refetch_on_mismatch)
        except GdcError as exc:
            return exc
        finally:
            own.session.close()

    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        results = list(pool.map(one, rows))
    errors = [r for r in results if isinstance(r, Exception)]
    if errors:
        lines = "\n  ".join(str(e) for e in errors[:10])
        raise DownloadError(f"{len(errors)} of {len(rows)} GDC downloads failed:\n  {lines}")
    return [r for r in results if isinstance(r, DownloadResult)]
