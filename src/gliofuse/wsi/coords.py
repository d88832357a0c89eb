"""Read and write the patch-coordinates HDF5 file (docs/data-contracts.md §4).

Root attributes carry gliofuse's fields; the ``coords`` dataset also carries TRIDENT's attribute
names (``patch_size`` = side at the target resolution, ``patch_size_level0``, ``level0_magnification``,
``target_magnification``, ``overlap``, ``name``, ``savetodir``, ``level0_width``, ``level0_height``) and
CLAM's level fields (``patch_level``, ``downsample``, ``level_dim``, ``downsampled_level_dim``), so
TRIDENT/CLAM-style readers find what they look for.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from gliofuse.errors import InputDataError
from gliofuse.io import atomic_path, decode_h5_attr, open_h5_contract_

#: attributes every coords file carries (ints, floats, strings)
INT_ATTRS = ("patch_size", "patch_size_level0", "read_level", "read_size", "level0_width", "level0_height")
FLOAT_ATTRS = ("level0_magnification", "target_magnification", "mpp_level0", "target_mpp")
STR_ATTRS = ("mpp_source", "slide_id", "slide_hash", "status", "reason", "parameters", "provenance")
REQUIRED_ATTRS = INT_ATTRS + FLOAT_ATTRS + STR_ATTRS


@dataclass
class CoordsFile:
    """Content of a coords h5.

    Attributes
    ----------
    coords : (N, 2) int64 level-0 (x, y) top-left corners.
    tissue_fraction : (N,) float32.
    attrs : the root attributes (unknown ints are -1 and unknown floats NaN for skipped slides).
    """

    coords: np.ndarray
    tissue_fraction: np.ndarray
    attrs: dict[str, Any] = field(default_factory=dict)

    @property
    def status(self) -> str:
        return str(self.attrs["status"])

    @property
    def reason(self) -> str:
        return str(self.attrs["reason"])


def write_coords_h5_(path: str | os.PathLike[str], coords: np.ndarray, tissue_fraction: np.ndarray,
                     attrs: dict[str, Any], coords_attrs: dict[str, Any] | None = None) -> None:
    """Write a coords file atomically.

    ``attrs`` (root attributes) must hold every name in ``REQUIRED_ATTRS``; ``coords_attrs`` go on the
    ``coords`` dataset (TRIDENT/CLAM-compatible names, see the module docstring).
    """
    missing = [a for a in REQUIRED_ATTRS if a not in attrs]
    if missing:
        raise ValueError(f"coords attrs missing {missing}")
    coords = np.asarray(coords, dtype=np.int64).reshape(-1, 2)
    tissue_fraction = np.asarray(tissue_fraction, dtype=np.float32).reshape(-1)
    if len(coords) != len(tissue_fraction):
        raise ValueError(f"coords ({len(coords)}) and tissue_fraction ({len(tissue_fraction)}) differ in length")
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        ds = f.create_dataset("coords", data=coords)
        for name, value in (coords_attrs or {}).items():
            ds.attrs[name] = value
        f.create_dataset("tissue_fraction", data=tissue_fraction)
        for name in INT_ATTRS:
            f.attrs[name] = np.int64(attrs[name])
        for name in FLOAT_ATTRS:
            f.attrs[name] = np.float64(attrs[name])
        for name in STR_ATTRS:
            value = attrs[name]
            f.attrs[name] = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)



def read_coords_h5(path: str | os.PathLike[str]) -> CoordsFile:
    """Read and validate a coords file; violations raise ``InputDataError`` naming the file and field."""
    p = Path(path)
    fix = "Rerun the wsi_patch stage for this slide (docs/data-contracts.md §4)."
    with open_h5_contract_(p, what="coords file", datasets=("coords", "tissue_fraction"), attrs=REQUIRED_ATTRS,
                           fix=fix) as f:
        coords = f["coords"][()]
        frac = f["tissue_fraction"][()]
        attrs = {k: decode_h5_attr(v) for k, v in f.attrs.items()}
    if coords.ndim != 2 or coords.shape[1] != 2 or not np.issubdtype(coords.dtype, np.integer):
        raise InputDataError(f"coords file {p}: dataset 'coords' must be integer (N, 2), got {coords.dtype} "
                             f"{coords.shape}. {fix}")
    if frac.shape != (coords.shape[0],):
        raise InputDataError(f"coords file {p}: 'tissue_fraction' has shape {frac.shape}, expected "
                             f"({coords.shape[0]},). {fix}")
    return CoordsFile(coords=coords.astype(np.int64), tissue_fraction=frac.astype(np.float32), attrs=attrs)
