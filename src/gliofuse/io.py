"""Atomic writes, provenance records and table IO shared by every stage.

Provenance (docs/data-contracts.md, "Provenance") is a JSON object with
``gliofuse_version``, ``code_version``, ``config_hash``, ``inputs`` (name -> hash)
and ``extra``. HDF5 outputs carry it in the ``provenance`` attribute; tables carry it
in a sidecar ``<file>.prov.json``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import subprocess
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from gliofuse import __version__
from gliofuse.errors import InputDataError

PARTIAL_HASH_BYTES = 4 * 1024 * 1024  # files larger than 2x this are hashed head+tail+size


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it onto ``path`` only on success.

    A crash or kill leaves ``path`` untouched (old content or absent), never half-written.
    """
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp_path, 0o666 & ~umask)  # mkstemp creates 0600; give the file the usual permissions
        os.replace(tmp_path, final)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_text_atomic_(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)


@lru_cache(maxsize=1)
def code_version() -> str:
    """``<package version>+g<git sha>[.dirty]`` when run from a git checkout, else the package version."""
    here = Path(__file__).resolve().parent
    try:
        sha = subprocess.run(
            ["git", "-C", str(here), "rev-parse", "--short=12", "HEAD"],
            capture_output=True, text=True, timeout=5, check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return __version__
    return f"{__version__}+g{sha}" if sha else __version__


def file_hash(path: str | os.PathLike[str]) -> str:
    """Content hash of a file.

    Small files: ``sha256:<hex>`` of the whole content. Files larger than 8 MiB (slides):
    ``sha256-ht:<hex>`` of the size, the first 4 MiB and the last 4 MiB, which identifies a
    download without reading gigabytes.
    """
    p = Path(path)
    size = p.stat().st_size
    h = hashlib.sha256()
    with p.open("rb") as fh:
        if size <= 2 * PARTIAL_HASH_BYTES:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
            return f"sha256:{h.hexdigest()}"
        h.update(str(size).encode())
        h.update(fh.read(PARTIAL_HASH_BYTES))
        fh.seek(size - PARTIAL_HASH_BYTES)
        h.update(fh.read(PARTIAL_HASH_BYTES))
    return f"sha256-ht:{h.hexdigest()}"


def config_hash(section: Any) -> str:
    """sha256 (16 hex chars) of a JSON-serialisable config section, key order independent."""
    blob = json.dumps(section, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def provenance(
    *, config: Any, inputs: Mapping[str, str | os.PathLike[str]] | Iterable[str | os.PathLike[str]] = (),
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Build a provenance record for an artifact.

    Parameters
    ----------
    config : JSON-serialisable config section the artifact was made with.
    inputs : input files, as ``{name: path}`` or a list of paths (named by file name).
    extra : free-form additional fields (encoder name, units, ...).
    """
    if isinstance(inputs, Mapping):
        named = dict(inputs)
    else:
        named = {Path(p).name: p for p in inputs}
    return {
        "gliofuse_version": __version__,
        "code_version": code_version(),
        "config_hash": config_hash(config),
        "inputs": {k: file_hash(v) for k, v in sorted(named.items())},
        "extra": dict(extra or {}),
    }


def sidecar_path(path: str | os.PathLike[str]) -> Path:
    """Path of the provenance sidecar of a table: ``<file>.prov.json``."""
    p = Path(path)
    return p.with_name(p.name + ".prov.json")


def write_table_(path: str | os.PathLike[str], df: pd.DataFrame, *, prov: Mapping[str, Any]) -> None:
    """Write ``df`` as TSV atomically, with its provenance sidecar."""
    with atomic_path(path) as tmp:
        df.to_csv(tmp, sep="\t", index=False, float_format="%.6g")
    write_text_atomic_(sidecar_path(path), json.dumps(dict(prov), indent=2, sort_keys=True) + "\n")


def read_table_(path: str | os.PathLike[str], *, required: Iterable[str], what: str,
                dtype: Mapping[str, Any] | None = None) -> pd.DataFrame:
    """Read a TSV contract file and check that its ``required`` columns exist.

    ``what`` names the contract (e.g. "label table") for the error message.
    """
    p = Path(path)
    if not p.exists():
        raise InputDataError(f"{what} not found: {p}. Run the stage that writes it (see docs/data-contracts.md).")
    df = pd.read_csv(p, sep="\t", dtype=dtype)
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise InputDataError(
            f"{what} {p} lacks required column(s) {missing}; it has {list(df.columns)[:12]}. "
            "See docs/data-contracts.md for the expected layout."
        )
    return df


def write_json_(path: str | os.PathLike[str], obj: Any) -> None:
    """Write JSON atomically (sorted keys, indented)."""
    write_text_atomic_(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def read_json_(path: str | os.PathLike[str], *, what: str) -> Any:
    """Read a JSON file; a missing or malformed file raises InputDataError naming it."""
    p = Path(path)
    try:
        return json.loads(p.read_text())
    except FileNotFoundError:
        raise InputDataError(f"{what} not found: {p}.") from None
    except json.JSONDecodeError as exc:
        raise InputDataError(f"{what} {p} is not valid JSON ({exc}). Delete it and rerun the stage that writes it.") from None


@contextlib.contextmanager
def open_h5_contract_(path: str | os.PathLike[str], *, what: str, datasets: Iterable[str],
                      attrs: Iterable[str], fix: str) -> Iterator[Any]:
    """Open an HDF5 contract file read-only, checking that ``datasets`` and ``attrs`` exist.

    A missing or unreadable file, or a missing dataset/attribute, raises InputDataError naming ``what``,
    the path, the field and ``fix``. Yields the open ``h5py.File``.
    """
    import h5py

    p = Path(path)
    if not p.is_file():
        raise InputDataError(f"{what} not found: {p}. {fix}")
    try:
        f = h5py.File(p, "r")
    except OSError as exc:
        raise InputDataError(f"{what} {p} is not a readable HDF5 file ({exc}). {fix}") from None
    with f:
        for name in datasets:
            if name not in f:
                raise InputDataError(f"{what} {p} lacks dataset {name!r}. {fix}")
        missing = [a for a in attrs if a not in f.attrs]
        if missing:
            raise InputDataError(f"{what} {p} lacks attribute(s) {missing}. {fix}")
        yield f


def decode_h5_attr(value: Any) -> Any:
    """An HDF5 attribute as a plain Python value (bytes → str, NumPy scalar → Python scalar)."""
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, np.generic):
        return value.item()
    return value
