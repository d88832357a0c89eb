"""The expression matrix ``results/omics/expression.h5`` (docs/data-contracts.md §6): its writer and its reader.

Layout: ``values`` (P, G) float32, ``patients`` (P,) and ``genes`` (G,) byte strings, optional
``gene_names`` (G,); attributes ``value_column``, ``log_transform``, ``provenance``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from gliofuse.errors import InputDataError
from gliofuse.io import atomic_path, decode_h5_attr, open_h5_contract_

WHAT = "omics matrix"
FIX = "Rerun the `omics_matrix` stage (docs/data-contracts.md §6)."


@dataclass(frozen=True)
class OmicsMatrix:
    """Expression matrix (§6): ``values`` (P, G) float32, ``patients`` (P,), ``genes`` (G,).

    ``value_column`` (the unit, an ``omics.value_column`` name) and ``log_transform`` (values are log2(x + 1))
    are the file's attributes ("" and False when a file lacks them).
    """

    values: np.ndarray
    patients: tuple[str, ...]
    genes: tuple[str, ...]
    gene_names: tuple[str, ...] = ()
    value_column: str = ""
    log_transform: bool = False

    def rows(self, patient_ids: Sequence[str]) -> np.ndarray:
        """Rows of ``values`` for ``patient_ids`` in that order: (len(patient_ids), G)."""
        index = {p: i for i, p in enumerate(self.patients)}
        missing = [p for p in patient_ids if p not in index]
        if missing:
            raise InputDataError(f"{len(missing)} patient(s) have no omics profile, e.g. {missing[:5]}.")
        return self.values[[index[p] for p in patient_ids]]


def write_omics_h5_(path: str | Path, *, values: np.ndarray, patients: np.ndarray, genes: np.ndarray,
                    gene_names: np.ndarray, value_column: str, log_transform: bool, prov: dict[str, Any]) -> None:
    """Write the matrix atomically.

    ``values`` (P, G) float32; ``patients`` (P,), ``genes`` and ``gene_names`` (G,) str arrays, stored as
    byte strings; ``prov`` the provenance record (stored as sorted JSON).
    """
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        f.create_dataset("values", data=values)
        f.create_dataset("patients", data=patients.astype("S"))
        f.create_dataset("genes", data=genes.astype("S"))
        f.create_dataset("gene_names", data=gene_names.astype("S"))
        f.attrs["value_column"] = value_column
        f.attrs["log_transform"] = bool(log_transform)
        f.attrs["provenance"] = json.dumps(prov, sort_keys=True)


def _strings(ds: h5py.Dataset) -> tuple[str, ...]:
    return tuple(x.decode() if isinstance(x, bytes) else str(x) for x in ds[...])


def read_omics_(path: str | Path) -> OmicsMatrix:
    """Read ``results/omics/expression.h5`` (contract §6) and validate it.

    Raises
    ------
    InputDataError
        Missing or unreadable file, missing dataset, shape mismatch, NaN/inf values, duplicate patients.
    """
    p = Path(path)
    with open_h5_contract_(p, what=WHAT, datasets=("values", "patients", "genes"), attrs=(), fix=FIX) as fh:
        values = np.asarray(fh["values"][...], dtype=np.float32)
        patients = _strings(fh["patients"])
        genes = _strings(fh["genes"])
        gene_names = _strings(fh["gene_names"]) if "gene_names" in fh else ()
        value_column = decode_h5_attr(fh.attrs.get("value_column", ""))
        log_transform = bool(fh.attrs.get("log_transform", False))
    if values.shape != (len(patients), len(genes)):
        raise InputDataError(f"omics matrix {p}: 'values' has shape {values.shape} but there are "
                             f"{len(patients)} patients and {len(genes)} genes.")
    if not np.isfinite(values).all():
        raise InputDataError(f"omics matrix {p}: 'values' contains NaN or inf. Rerun `omics_matrix`.")
    if len(set(patients)) != len(patients):
        dup = sorted({x for x in patients if patients.count(x) > 1})
        raise InputDataError(f"omics matrix {p}: duplicate patient ids {dup[:5]}.")
    if gene_names and len(gene_names) != len(genes):
        raise InputDataError(f"omics matrix {p}: 'gene_names' has {len(gene_names)} entries but there are "
                             f"{len(genes)} genes. Rerun `omics_matrix`.")
    return OmicsMatrix(values=values, patients=patients, genes=genes, gene_names=gene_names,
                       value_column=str(value_column), log_transform=log_transform)

