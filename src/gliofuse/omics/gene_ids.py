"""Gene identifiers of an imported matrix: Ensembl ids (version stripped) or HGNC symbols, and the table that maps them.

The mapping table comes from data the project already has, never from a download: the training matrix's
``genes`` / ``gene_names`` (results/omics/expression.h5), or any GDC STAR - Counts file (columns ``gene_id``,
``gene_name``, ``gene_type``), or a TSV/CSV with ``gene_id`` and ``gene_name`` (optional ``gene_type``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from gliofuse.errors import InputDataError

GeneIdType = Literal["symbol", "ensembl"]
GENE_ID_TYPES: tuple[str, ...] = ("symbol", "ensembl")
ENSEMBL_RE = re.compile(r"^ENS[A-Z]*G\d{6,}")
#: GENCODE gives the pseudo-autosomal Y copies the X copy's id plus this suffix (GDC STAR files list both)
PAR_Y_SUFFIX = "_PAR_Y"


def strip_version(gene_id: str) -> str:
    """``ENSG00000141510.16`` → ``ENSG00000141510`` (other strings unchanged but for surrounding blanks)."""
    g = gene_id.strip()
    return g.split(".", 1)[0] if ENSEMBL_RE.match(g) else g


def normalise_gene_ids(ids: Sequence[str], gene_id: GeneIdType, *, source: str) -> tuple[list[str], np.ndarray]:
    """Normalised ids and a keep mask (False for GENCODE ``_PAR_Y`` rows, as the GDC route drops them).

    Raises ``InputDataError`` when the ids do not look like the declared type (most of them must).
    """
    if gene_id not in GENE_ID_TYPES:
        raise InputDataError(f"expression matrix {source}: unknown gene id type {gene_id!r}; declare one of "
                             f"{list(GENE_ID_TYPES)}.")
    raw = [str(g).strip() for g in ids]
    n_ens = sum(bool(ENSEMBL_RE.match(g)) for g in raw)
    examples = raw[:3]
    if gene_id == "ensembl" and n_ens < 0.5 * len(raw):
        raise InputDataError(f"expression matrix {source}: declared Ensembl gene ids, but {len(raw) - n_ens} of "
                             f"{len(raw)} do not look like Ensembl ids (e.g. {examples}); declare gene ids as symbol.")
    if gene_id == "symbol" and n_ens > 0.5 * len(raw):
        raise InputDataError(f"expression matrix {source}: declared gene symbols, but {n_ens} of {len(raw)} ids look "
                             f"like Ensembl ids (e.g. {examples}); declare gene ids as ensembl.")
    keep = np.array([not g.endswith(PAR_Y_SUFFIX) for g in raw], bool)
    out = [strip_version(g) if gene_id == "ensembl" else g for g in raw]
    return out, keep


@dataclass(frozen=True)
class GeneTable:
    """Gene annotation: ``gene_id`` unversioned Ensembl ids (unique), ``gene_name`` symbols, ``gene_type`` or None."""

    gene_id: tuple[str, ...]
    gene_name: tuple[str, ...]
    gene_type: tuple[str, ...] | None = None

    def symbol_index(self) -> tuple[dict[str, str], set[str]]:
        """``({symbol: Ensembl id} for symbols naming one gene, {symbols naming several genes})``."""
        ids: dict[str, list[str]] = {}
        for gid, name in zip(self.gene_id, self.gene_name, strict=True):
            if name:
                ids.setdefault(name, []).append(gid)
        unique = {name: g[0] for name, g in ids.items() if len(g) == 1}
        return unique, {name for name, g in ids.items() if len(g) > 1}

    def names_of(self, gene_ids: Sequence[str]) -> list[str]:
        """Symbols of ``gene_ids`` ("" when the table lacks one)."""
        lookup = dict(zip(self.gene_id, self.gene_name, strict=True))
        return [lookup.get(g, "") for g in gene_ids]


def read_gene_table(path: str | Path) -> GeneTable:
    """Read a GDC STAR - Counts file or a TSV/CSV with ``gene_id``, ``gene_name`` (and ``gene_type``).

    Versions are stripped, STAR's ``N_*`` summary rows and GENCODE ``_PAR_Y`` copies dropped. Raises
    ``InputDataError`` naming the file and the missing column.
    """
    p = Path(path)
    if not p.is_file():
        raise InputDataError(f"gene table {p} not found; give a GDC STAR - Counts file or a TSV with gene_id and "
                             "gene_name columns.")
    sep = "," if p.name.lower().removesuffix(".gz").endswith(".csv") else "\t"
    try:
        df = pd.read_csv(p, sep=sep, comment="#", dtype=str, keep_default_na=False)
    except (OSError, UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise InputDataError(f"cannot read gene table {p}: {exc}") from None
    missing = [c for c in ("gene_id", "gene_name") if c not in df.columns]
    if missing:
        raise InputDataError(f"gene table {p} lacks column(s) {missing} (columns: {list(df.columns)[:10]}); give a "
                             "GDC STAR - Counts file or a TSV with gene_id and gene_name.")
    df = df[~df["gene_id"].str.startswith("N_") & ~df["gene_id"].str.endswith(PAR_Y_SUFFIX)]
    df = df.assign(gene_id=[strip_version(g) for g in df["gene_id"]]).drop_duplicates("gene_id")
    types = tuple(df["gene_type"]) if "gene_type" in df.columns else None
    return GeneTable(tuple(df["gene_id"]), tuple(s.strip() for s in df["gene_name"]), types)
