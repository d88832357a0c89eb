"""Named gene sets shipped with gliofuse, matched by symbol against an expression matrix's ``gene_names``.

Names (provenance in ``src/gliofuse/omics/data/README.md``):

* ``all``: every gene of the matrix (no file; matches all columns);
* ``tumour`` / ``microenvironment``: hand-curated marker genes of glioma cells vs the tumour
  microenvironment, and their programs ``tumour.proliferation``, ``tumour.oncogenic_drivers``,
  ``tumour.glial_lineage``, ``tumour.hypoxia``, ``microenvironment.myeloid``, ``microenvironment.lymphoid``,
  ``microenvironment.vascular``, ``microenvironment.stromal``;
* ``mcat.<family>``: the six MCAT/PORPOISE gene families (``tumor_suppressor_genes``, ``oncogenes``,
  ``protein_kinases``, ``cell_differentiation_markers``, ``transcription_factors``,
  ``cytokines_and_growth_factors``).

Groups (``gene_set_group``): ``tme`` = (tumour, microenvironment), ``mcat`` = the six MCAT families
(the "genomic tokens" of MCAT-style co-attention models).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from functools import lru_cache
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd

from gliofuse.errors import ConfigError, InputDataError

log = logging.getLogger(__name__)

ALL = "all"
TME_FILE = "tme_gene_sets.tsv"
MCAT_FILE = "mcat_signatures.tsv"
MCAT_FAMILIES: tuple[str, ...] = (
    "tumor_suppressor_genes", "oncogenes", "protein_kinases", "cell_differentiation_markers",
    "transcription_factors", "cytokines_and_growth_factors",
)
GROUPS: dict[str, tuple[str, ...]] = {
    "tme": ("tumour", "microenvironment"),
    "mcat": tuple(f"mcat.{f}" for f in MCAT_FAMILIES),
}


def data_file(name: str) -> Path:
    """Path of a shipped gene-set file."""
    p = Path(str(resources.files("gliofuse.omics") / "data" / name))
    if not p.exists():
        raise InputDataError(f"shipped gene-set file {p} is missing; restore it with `git checkout src/gliofuse/omics/data`.")
    return p


def _unique(genes: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(genes))


@lru_cache(maxsize=1)
def _sets() -> dict[str, tuple[str, ...]]:
    out: dict[str, list[str]] = {}
    tme = pd.read_csv(data_file(TME_FILE), sep="\t", dtype=str, keep_default_na=False)
    for gset, program, gene in zip(tme["gene_set"], tme["program"], tme["gene_name"], strict=True):
        out.setdefault(gset, []).append(gene)
        out.setdefault(f"{gset}.{program}", []).append(gene)
    mcat = pd.read_csv(data_file(MCAT_FILE), sep="\t", dtype=str, keep_default_na=False)
    for family, gene in zip(mcat["family"], mcat["gene_name"], strict=True):
        out.setdefault(f"mcat.{family}", []).append(gene)
    return {k: _unique(v) for k, v in out.items()}


def available_gene_sets() -> list[str]:
    """Every gene-set name, ``all`` first."""
    return [ALL, *sorted(_sets())]


def gene_set(name: str) -> tuple[str, ...]:
    """Gene symbols of a shipped set (not ``all``, which depends on the matrix).

    Raises
    ------
    ConfigError
        Unknown name (the message lists the available ones).
    """
    sets = _sets()
    if name not in sets:
        raise ConfigError(f"unknown gene set {name!r}; available: {available_gene_sets()}.")
    return sets[name]


def gene_set_group(group: str) -> tuple[str, ...]:
    """Names of a group of sets: ``tme`` or ``mcat``."""
    if group not in GROUPS:
        raise ConfigError(f"unknown gene-set group {group!r}; available: {sorted(GROUPS)}.")
    return GROUPS[group]


def match_gene_set(name: str, gene_names: Sequence[str], *, min_genes: int = 1) -> np.ndarray:
    """Column indices (sorted, int64) of the matrix genes whose symbol is in set ``name``.

    ``all`` returns every column. Symbols are matched exactly (HGNC case); a symbol that occurs in
    several columns (e.g. PAR_Y copies) matches all of them. The number of set genes absent from the
    matrix is logged.

    Raises
    ------
    InputDataError
        Fewer than ``min_genes`` genes of the set are in the matrix.
    """
    names = np.asarray([str(g) for g in gene_names], dtype=object)
    if name == ALL:
        idx = np.arange(names.size, dtype=np.int64)
    else:
        wanted = set(gene_set(name))
        idx = np.flatnonzero(np.fromiter((g in wanted for g in names), dtype=bool, count=names.size)).astype(np.int64)
        missing = len(wanted - set(names[idx]))
        if missing:
            log.info("gene set %s: %d of %d genes in the matrix (%d absent)", name, len(wanted) - missing,
                     len(wanted), missing)
    if idx.size < min_genes:
        raise InputDataError(
            f"gene set {name!r}: only {idx.size} of its genes are in the expression matrix (need {min_genes}). "
            "Check omics.gene_types and that gene_names holds HGNC symbols."
        )
    return idx


def match_gene_sets(names: Iterable[str], gene_names: Sequence[str], *, min_genes: int = 1) -> dict[str, np.ndarray]:
    """``{name: column indices}`` for several sets (see ``match_gene_set``)."""
    return {n: match_gene_set(n, gene_names, min_genes=min_genes) for n in names}


def read_gene_names_(path: Path) -> list[str]:
    """The ``gene_names`` dataset (symbols) of an expression matrix ``results/omics/expression.h5``."""
    import h5py

    if not Path(path).exists():
        raise InputDataError(f"expression matrix not found: {path}. Run the omics_matrix rule.")
    with h5py.File(path, "r") as f:
        if "gene_names" not in f:
            raise InputDataError(f"expression matrix {path} lacks dataset 'gene_names' (contract §6). Rebuild it.")
        return [g.decode() for g in f["gene_names"][()]]
