"""Read a gene × sample expression matrix file: TSV/CSV (genes in rows or in columns) or h5ad (AnnData).

TSV/CSV: the first column (``genes-in-rows``) or the header row (``genes-in-columns``) holds the gene ids, the
other axis the sample (patient) ids; ``.tsv``/``.txt`` are tab-separated, ``.csv`` comma-separated, optionally
gzipped. h5ad: ``obs`` = samples (``obs_names``), ``var`` = genes (``var_names`` or the column
``gene_column``), values from ``X`` or the layer ``layer``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from gliofuse.errors import InputDataError

ORIENTATIONS = ("genes-in-rows", "genes-in-columns")
TABLE_SUFFIXES = {".tsv": "\t", ".txt": "\t", ".csv": ","}


@dataclass(frozen=True)
class GeneSampleMatrix:
    """``values`` (G, S) float64 as stored, ``genes`` (G,) ids as given, ``samples`` (S,) ids."""

    values: np.ndarray
    genes: list[str]
    samples: list[str]


def read_gene_sample_matrix(path: str | Path, *, orientation: str = "genes-in-rows", gene_column: str | None = None,
                            layer: str | None = None) -> GeneSampleMatrix:
    """Read a matrix file (see the module docstring); errors name the file and the row, column or key."""
    p = Path(path)
    if not p.is_file():
        raise InputDataError(f"expression matrix {p} not found.")
    name = p.name.lower().removesuffix(".gz")
    if name.endswith(".h5ad"):
        m = _read_h5ad(p, gene_column=gene_column, layer=layer)
    else:
        sep = next((s for suf, s in TABLE_SUFFIXES.items() if name.endswith(suf)), None)
        if sep is None:
            raise InputDataError(f"expression matrix {p}: unknown file type; give a .tsv, .txt, .csv (optionally "
                                 ".gz) or .h5ad file.")
        if gene_column is not None or layer is not None:
            raise InputDataError(f"expression matrix {p}: gene_column / layer apply to h5ad files only.")
        m = _read_table(p, sep=sep, orientation=orientation)
    _check(p, m)
    return m


def _read_table(p: Path, *, sep: str, orientation: str) -> GeneSampleMatrix:
    if orientation not in ORIENTATIONS:
        raise InputDataError(f"expression matrix {p}: unknown orientation {orientation!r}; use one of "
                             f"{list(ORIENTATIONS)}.")
    try:
        df = pd.read_csv(p, sep=sep, index_col=0, dtype=str, keep_default_na=False)
    except (OSError, UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise InputDataError(f"cannot read expression matrix {p}: {exc}") from None
    if orientation == "genes-in-columns":
        df = df.T
    values = df.apply(pd.to_numeric, errors="coerce")
    bad = values.isna().to_numpy()
    if bad.any():
        r, c = (int(i[0]) for i in np.nonzero(bad))
        what = "rows (genes)" if orientation == "genes-in-rows" else "columns (genes)"
        raise InputDataError(
            f"expression matrix {p}: gene {df.index[r]!r}, sample {df.columns[c]!r} holds {df.iat[r, c]!r}, not a "
            f"number ({int(bad.sum())} such cell(s)); genes are in {what} (declare the orientation if not).")
    return GeneSampleMatrix(values.to_numpy(np.float64), [str(g) for g in df.index], [str(s) for s in df.columns])


def _read_h5ad(p: Path, *, gene_column: str | None, layer: str | None) -> GeneSampleMatrix:
    import anndata

    try:
        adata = anndata.read_h5ad(p)
    except (OSError, KeyError, ValueError) as exc:
        raise InputDataError(f"cannot read h5ad {p}: {type(exc).__name__}: {exc}") from None
    if gene_column is not None and gene_column not in adata.var.columns:
        raise InputDataError(f"h5ad {p}: var has no column {gene_column!r} (var columns: {list(adata.var.columns)}); "
                             "declare the column holding the gene ids, or none to use var_names.")
    if layer is not None and layer not in adata.layers:
        raise InputDataError(f"h5ad {p}: no layer {layer!r} (layers: {list(adata.layers)}); declare one of them, or "
                             "none to use X.")
    x = adata.layers[layer] if layer is not None else adata.X
    if x is None:
        raise InputDataError(f"h5ad {p}: X is empty; declare the layer holding the expression.")
    x = x.toarray() if hasattr(x, "toarray") else np.asarray(x)
    genes = adata.var[gene_column] if gene_column is not None else adata.var_names
    return GeneSampleMatrix(np.asarray(x, np.float64).T, [str(g) for g in genes], [str(s) for s in adata.obs_names])


def _check(p: Path, m: GeneSampleMatrix) -> None:
    if m.values.size == 0:
        raise InputDataError(f"expression matrix {p} has no gene or no sample ({m.values.shape}).")
    if not np.isfinite(m.values).all():
        g, s = (int(i[0]) for i in np.nonzero(~np.isfinite(m.values)))
        raise InputDataError(f"expression matrix {p}: gene {m.genes[g]!r}, sample {m.samples[s]!r} is "
                             f"{m.values[g, s]} (NaN or inf); give a value for every gene and sample.")
    empty = [i for i, s in enumerate(m.samples) if not s.strip()]
    if empty:
        raise InputDataError(f"expression matrix {p}: sample {empty[0] + 1} has an empty id.")
    seen: set[str] = set()
    dup = sorted({s for s in m.samples if s in seen or seen.add(s)})
    if dup:
        raise InputDataError(f"expression matrix {p}: sample id(s) {dup[:5]} appear more than once; give one "
                             "column per patient.")
