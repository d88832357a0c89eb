"""Import a gene × sample expression matrix (TSV/CSV or h5ad) with a declared unit into ``expression.h5`` (§6).

Steps: read the matrix → undo a declared log2(x + p) → normalise gene ids (Ensembl versions stripped) → sum
duplicated ids → convert the unit to the target ``value_column`` exactly (or refuse) → map onto the gene space
→ log2(x + 1) when the target is log-transformed → write with :func:`gliofuse.omics.matrix.write_omics_h5_`.

Gene space: with ``reference`` (the training run's expression.h5) its genes, order, ``value_column`` and
``log_transform``; genes the matrix lacks get the reference's mean (stored scale), up to
``max_missing_fraction``. Without a reference: the matrix's own genes (``omics.gene_types`` kept when the
gene table has types), sorted by Ensembl id, in ``omics.value_column``.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from gliofuse.config import OmicsConfig
from gliofuse.errors import InputDataError
from gliofuse.io import provenance
from gliofuse.omics.gene_ids import GeneIdType, GeneTable, normalise_gene_ids, read_gene_table
from gliofuse.omics.matrix import read_omics_, write_omics_h5_
from gliofuse.omics.matrix_files import read_gene_sample_matrix
from gliofuse.omics.units import (
    VALUE_COLUMN_UNIT,
    convert_linear,
    parse_unit,
    to_linear,
    unit_of_value_column,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GeneSpace:
    """Target genes (unversioned Ensembl ids, in order), their symbols, unit, and the fill of missing genes."""

    genes: tuple[str, ...]
    gene_names: tuple[str, ...]
    value_column: str
    log_transform: bool
    fill: np.ndarray | None = None  # (G,) stored-scale value of a gene the matrix lacks; None: none may lack
    source: str = ""


@dataclass
class ImportReport:
    """What an import did (logged and stored in the provenance)."""

    n_patients: int
    n_genes: int
    unit: str
    conversion: str
    n_duplicate_ids: int
    duplicate_examples: list[str]
    n_unmapped_ids: int
    n_ambiguous_symbols: int
    n_missing_genes: int
    missing_examples: list[str]


def reference_space(path: str | Path) -> GeneSpace:
    """Gene space of a training matrix: its genes, names, unit and per-gene mean (the fill of missing genes)."""
    m = read_omics_(path)
    if m.value_column not in VALUE_COLUMN_UNIT:
        raise InputDataError(f"reference matrix {path}: attribute value_column = {m.value_column!r} is not one of "
                             f"{sorted(VALUE_COLUMN_UNIT)}; give the expression.h5 of a gliofuse run.")
    fill = m.values.astype(np.float64).mean(axis=0) if len(m.patients) else None
    return GeneSpace(m.genes, m.gene_names or ("",) * len(m.genes), m.value_column, m.log_transform, fill,
                     str(path))


def _sum_duplicates(ids: list[str], x: np.ndarray) -> tuple[list[str], np.ndarray, list[str]]:
    """Sum the rows of ``x`` (G, S) that share an id; returns unique ids (first-seen order), rows, duplicated ids."""
    order: dict[str, int] = {}
    for g in ids:
        order.setdefault(g, len(order))
    if len(order) == len(ids):
        return ids, x, []
    out = np.zeros((len(order), x.shape[1]), np.float64)
    np.add.at(out, [order[g] for g in ids], x)
    counts = np.bincount([order[g] for g in ids], minlength=len(order))
    dups = [g for g, i in order.items() if counts[i] > 1]
    return list(order), out, dups


def _to_ensembl(ids: list[str], gene_id: GeneIdType, table: GeneTable | None, *,
                source: str) -> tuple[list[str | None], int]:
    """Ensembl id of each (normalised) id, None when it maps to none or several; also the ambiguous count."""
    if gene_id == "ensembl":
        return list(ids), 0
    if table is None:
        raise InputDataError(
            f"expression matrix {source}: gene ids are symbols; map them with --reference (the training run's "
            "results/omics/expression.h5) or --gene-table (a GDC STAR - Counts file, or a TSV with gene_id and "
            "gene_name).")
    unique, ambiguous = table.symbol_index()
    return [unique.get(g) for g in ids], sum(g in ambiguous for g in ids)


def _own_space(ensembl: list[str | None], table: GeneTable | None, cfg: OmicsConfig) -> GeneSpace:
    """Gene space of a matrix imported without a reference: its mapped genes, sorted, of ``cfg.gene_types``."""
    genes = sorted({g for g in ensembl if g is not None})
    if table is not None and table.gene_type is not None:
        types = dict(zip(table.gene_id, table.gene_type, strict=True))
        genes = [g for g in genes if types.get(g) in cfg.gene_types]
    elif table is None:
        log.warning("no gene table: gene symbols stay empty and omics.gene_types is not applied")
    if not genes:
        raise InputDataError(f"no gene of the matrix is left (omics.gene_types = {cfg.gene_types}); check the gene "
                             "table and the declared gene id type.")
    gene_names = table.names_of(genes) if table is not None else [""] * len(genes)
    return GeneSpace(tuple(genes), tuple(gene_names), cfg.value_column, cfg.log_transform)


def _map_to_space(x: np.ndarray, ensembl: list[str | None], space: GeneSpace, *, source: str,
                  max_missing_fraction: float) -> tuple[np.ndarray, list[str]]:
    """(G_in, S) linear values → (S, G) on the space's genes, on the stored scale; missing genes filled."""
    row = {g: i for i, g in enumerate(ensembl) if g is not None}
    idx = np.array([row.get(g, -1) for g in space.genes])
    missing = [g for g, i in zip(space.genes, idx, strict=True) if i < 0]
    out = x[np.maximum(idx, 0)].T.copy()
    if space.log_transform:
        out = np.log2(out + 1.0)
    if missing:
        frac = len(missing) / len(space.genes)
        if space.fill is None or frac > max_missing_fraction:
            raise InputDataError(
                f"expression matrix {source}: {len(missing)} of {len(space.genes)} genes of the gene space "
                f"{space.source or ''} are missing ({frac:.1%}, more than --max-missing-fraction "
                f"{max_missing_fraction:g}), e.g. {missing[:5]}. Check the declared gene id type, or give a matrix "
                "with every gene the model was trained on.")
        out[:, idx < 0] = space.fill[idx < 0]
    return out, missing


def import_expression_matrix_(matrix: str | Path, *, unit: str, gene_id: GeneIdType, out_h5: str | Path,
                              pseudocount: float | None = None, orientation: str = "genes-in-rows",
                              gene_column: str | None = None, layer: str | None = None,
                              reference: str | Path | None = None, gene_table: str | Path | None = None,
                              cfg: OmicsConfig | None = None, max_missing_fraction: float = 0.1) -> ImportReport:
    """Convert a declared-unit gene × sample matrix into ``out_h5`` (contract §6; samples = patients, sorted).

    Raises ``InputDataError`` naming the file (and row, column or key) for an unreadable matrix, an unknown
    unit, a conversion that is not exact (counts → TPM without gene lengths), wrong gene ids, or too many
    genes of the reference missing.
    """
    cfg = cfg or OmicsConfig()
    src = str(matrix)
    m = read_gene_sample_matrix(matrix, orientation=orientation, gene_column=gene_column, layer=layer)
    u = parse_unit(unit, pseudocount, source=src)
    ids, keep = normalise_gene_ids(m.genes, gene_id, source=src)
    x = to_linear(m.values[keep], u, source=src)
    ids, x, dups = _sum_duplicates([g for g, k in zip(ids, keep, strict=True) if k], x)
    if dups:
        log.warning("%s: %d duplicated gene id(s) summed, e.g. %s", src, len(dups), dups[:5])
    space = reference_space(reference) if reference is not None else None
    table = read_gene_table(gene_table) if gene_table is not None else (
        GeneTable(space.genes, space.gene_names) if space is not None and gene_id == "symbol" else None)
    value_column = space.value_column if space is not None else cfg.value_column
    target = unit_of_value_column(value_column)
    x = convert_linear(x, u.base, target, source=src, value_column=value_column)
    ensembl, n_ambiguous = _to_ensembl(ids, gene_id, table, source=src)
    space = space or _own_space(ensembl, table, cfg)
    values, missing = _map_to_space(x, ensembl, space, source=src, max_missing_fraction=max_missing_fraction)
    order = np.argsort(np.array(m.samples))
    report = ImportReport(
        n_patients=len(m.samples), n_genes=len(space.genes), unit=str(u),
        conversion=f"{u} -> {target}" + (" -> log2(x + 1)" if space.log_transform else ""),
        n_duplicate_ids=len(dups), duplicate_examples=dups[:5], n_unmapped_ids=sum(g is None for g in ensembl),
        n_ambiguous_symbols=n_ambiguous, n_missing_genes=len(missing), missing_examples=missing[:5])
    if missing:
        log.warning("%s: %d gene(s) of %s missing, filled with its mean, e.g. %s", src, len(missing), space.source,
                    missing[:5])
    inputs = {"matrix": matrix, **({"reference": reference} if reference else {}),
              **({"gene_table": gene_table} if gene_table else {})}
    prov = provenance(config=cfg.model_dump(mode="json"), inputs=inputs,
                      extra={"stage": "omics_import", "gene_id": gene_id, **asdict(report)})
    write_omics_h5_(out_h5, values=values[order].astype(np.float32), patients=np.array(m.samples)[order],
                    genes=np.array(space.genes), gene_names=np.array(space.gene_names),
                    value_column=space.value_column, log_transform=space.log_transform, prov=prov)
    log.info("imported %s (%s): %d patients x %d genes -> %s", src, report.conversion, report.n_patients,
             report.n_genes, out_h5)
    return report
