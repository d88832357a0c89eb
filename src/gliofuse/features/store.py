"""The patch-features HDF5 file (docs/data-contracts.md §5): its layout, writer and every reader.

Readers go through :func:`open_features_h5_`, which validates the file: the header
(:func:`inspect_feature_file_`), one slide's arrays (:func:`read_slide_features_`,
:func:`read_slide_coords_`) and the full strict read (:func:`read_features_h5_`).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from gliofuse.errors import InputDataError
from gliofuse.io import atomic_path, decode_h5_attr, open_h5_contract_

INT_ATTRS = ("embed_dim", "patch_size")
FLOAT_ATTRS = ("target_mpp",)
STR_ATTRS = ("encoder", "slide_id", "status", "reason", "provenance")
REQUIRED_ATTRS = INT_ATTRS + FLOAT_ATTRS + STR_ATTRS
WHAT = "slide feature file"
FIX = "Rerun `features_extract` for this slide (docs/data-contracts.md §5)."


@dataclass
class FeaturesFile:
    """Content of a features h5.

    Attributes
    ----------
    features : (N, D) float32.
    coords : (N, 2) int64 level-0 (x, y).
    read_failed : (N,) bool, True where the patch was unreadable and encoded as a white tile.
    attrs : root attributes.
    """

    features: np.ndarray
    coords: np.ndarray
    attrs: dict[str, Any] = field(default_factory=dict)
    read_failed: np.ndarray | None = None


def _attr(value: Any) -> Any:
    if isinstance(value, bool | np.bool_):
        return np.int64(value)
    if isinstance(value, int | np.integer):
        return np.int64(value)
    if isinstance(value, float | np.floating):
        return np.float64(value)
    return str(value)


def write_features_h5_(path: str | os.PathLike[str], features: np.ndarray, coords: np.ndarray,
                       attrs: dict[str, Any], read_failed: np.ndarray | None = None) -> None:
    """Write a features file atomically.

    ``attrs`` must hold every name in ``REQUIRED_ATTRS``; other attributes are written as int64,
    float64 or str. ``read_failed`` (N,) bool is stored as dataset ``read_failed`` (uint8; zeros if None).
    """
    missing = [a for a in REQUIRED_ATTRS if a not in attrs]
    if missing:
        raise ValueError(f"features attrs missing {missing}")
    features = np.asarray(features, dtype=np.float32)
    coords = np.asarray(coords, dtype=np.int64).reshape(-1, 2)
    if features.ndim != 2 or features.shape[0] != coords.shape[0] or features.shape[1] != attrs["embed_dim"]:
        raise ValueError(f"features {features.shape} do not match coords {coords.shape} / embed_dim "
                         f"{attrs['embed_dim']}")
    n, d = features.shape
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        f.create_dataset("features", data=features, chunks=(min(n, 256), d) if n and d else None)
        f.create_dataset("coords", data=coords)
        failed = np.zeros(n, np.uint8) if read_failed is None else np.asarray(read_failed, np.uint8).reshape(n)
        f.create_dataset("read_failed", data=failed)
        for name, value in attrs.items():
            f.attrs[name] = _attr(value)
        for name in INT_ATTRS:
            f.attrs[name] = np.int64(attrs[name])
        for name in FLOAT_ATTRS:
            f.attrs[name] = np.float64(attrs[name])
        for name in STR_ATTRS:
            f.attrs[name] = str(attrs[name])


def features_complete(path: str | os.PathLike[str], *, encoder: str | None = None, key: str | None = None) -> bool:
    """True if ``path`` is a finished features file (status attr set, features rows == coords rows,
    and, when given, written by ``encoder`` with ``extract_key`` == ``key``)."""
    p = Path(path)
    if not p.is_file():
        return False
    try:
        with h5py.File(p, "r") as f:
            if "status" not in f.attrs or "features" not in f or "coords" not in f:
                return False
            if encoder is not None and decode_h5_attr(f.attrs.get("encoder")) != encoder:
                return False
            if key is not None and decode_h5_attr(f.attrs.get("extract_key")) != key:
                return False
            return f["features"].ndim == 2 and f["features"].shape[0] == f["coords"].shape[0]
    except OSError:
        return False


@contextlib.contextmanager
def open_features_h5_(path: str | os.PathLike[str], *, datasets: Iterable[str] = (),
                      attrs: Iterable[str] = ()) -> Iterator[h5py.File]:
    """Open a features file read-only after checking it against contract §5.

    Always checked: the file exists and is HDF5, and ``features`` is a 2-D (N, D) dataset;
    ``datasets`` and ``attrs`` name further required items. Violations raise ``InputDataError``
    naming the file and the item. Yields the open ``h5py.File``.
    """
    with open_h5_contract_(path, what=WHAT, datasets=("features", *datasets), attrs=attrs, fix=FIX) as f:
        if f["features"].ndim != 2:
            raise InputDataError(f"{WHAT} {Path(path)}: 'features' must be 2-D (N, D), got shape "
                                 f"{f['features'].shape}. {FIX}")
        yield f


@dataclass(frozen=True)
class FeatureFileInfo:
    """Header of a slide feature file (§5)."""

    path: Path
    status: str
    n_patches: int
    embed_dim: int
    provenance: str = ""


def inspect_feature_file_(path: str | Path) -> FeatureFileInfo:
    """Read the header of a slide feature file: status (``ok`` when the attribute is absent), N, D, provenance.

    Raises
    ------
    InputDataError
        File missing or unreadable, ``features`` dataset missing or not 2-D.
    """
    p = Path(path)
    with open_features_h5_(p) as f:
        n, d = f["features"].shape
        return FeatureFileInfo(path=p, status=str(decode_h5_attr(f.attrs.get("status", "ok"))), n_patches=int(n),
                               embed_dim=int(d), provenance=str(decode_h5_attr(f.attrs.get("provenance", ""))))


def _coords_or_none(f: h5py.File) -> np.ndarray | None:
    """``coords`` as stored, or None when absent or not (N, 2) for the N rows of ``features``."""
    if "coords" in f and f["coords"].shape == (f["features"].shape[0], 2):
        return np.asarray(f["coords"][...])
    return None


def read_slide_features_(path: str | Path, rows: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """One slide's ``features`` (N, D) float32 and ``coords`` (N, 2) level-0 ``(x, y)`` as stored (int64 per §5),
    or None for coords when the file has no usable ``coords``.

    ``rows``: strictly increasing row indices in [0, N); only those feature rows are read from disk (an
    (n_rows, D) array), ``coords`` always come in full. None: every row.
    """
    with open_features_h5_(path) as f:
        data = f["features"]
        if rows is None:
            return np.asarray(data[...], dtype=np.float32), _coords_or_none(f)
        rows = np.asarray(rows, dtype=np.int64).reshape(-1)
        n = data.shape[0]
        if rows.size and (rows[0] < 0 or rows[-1] >= n or np.any(np.diff(rows) <= 0)):
            raise ValueError(f"{WHAT} {Path(path)}: rows must be strictly increasing in [0, {n}).")
        feats = data[rows] if rows.size else np.zeros((0, data.shape[1]), dtype=np.float32)
        return np.asarray(feats, dtype=np.float32), _coords_or_none(f)


def read_slide_coords_(path: str | Path) -> np.ndarray | None:
    """One slide's ``coords`` (N, 2) as stored (int64 per §5), or None when the file has no usable ``coords``."""
    with open_features_h5_(path) as f:
        return _coords_or_none(f)


def read_features_h5_(path: str | os.PathLike[str]) -> FeaturesFile:
    """Read a features file in full, requiring ``coords`` and every attribute of ``REQUIRED_ATTRS``.

    Violations raise ``InputDataError`` naming the file and the item.
    """
    p = Path(path)
    with open_features_h5_(p, datasets=("coords",), attrs=REQUIRED_ATTRS) as f:
        feats = f["features"][()]
        coords = f["coords"][()]
        failed = f["read_failed"][()].astype(bool) if "read_failed" in f else None
        attrs = {k: decode_h5_attr(v) for k, v in f.attrs.items()}
    if coords.shape != (feats.shape[0], 2):
        raise InputDataError(f"{WHAT} {p}: 'features' {feats.shape} and 'coords' {coords.shape} "
                             f"must be (N, D) and (N, 2). {FIX}")
    return FeaturesFile(features=feats.astype(np.float32, copy=False), coords=coords.astype(np.int64), attrs=attrs,
                        read_failed=failed)
