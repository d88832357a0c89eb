"""Expression units of an imported gene × sample matrix and the exact conversions between them.

Units: ``counts`` (reads per gene), ``tpm``, ``fpkm``, ``fpkm_uq``, and ``log2_<unit>`` = log2(x + p) with a
declared pseudocount p. Per sample, TPM, FPKM and FPKM-UQ are all proportional to counts / gene length
(FPKM divides by the million mapped reads, FPKM-UQ by the upper-quartile count, TPM by the sum of the
length-normalised counts), so FPKM and FPKM-UQ become TPM exactly by rescaling each sample to sum to 1e6
(over every gene of the matrix). Counts need gene lengths to become any of them, and TPM cannot go back
to FPKM (it lost the read depth): those conversions are refused.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gliofuse.errors import InputDataError

BASE_UNITS = ("counts", "tpm", "fpkm", "fpkm_uq")
LOG_PREFIX = "log2_"
#: the unit of each omics.value_column (GDC STAR - Counts column)
VALUE_COLUMN_UNIT = {"unstranded": "counts", "tpm_unstranded": "tpm", "fpkm_unstranded": "fpkm",
                     "fpkm_uq_unstranded": "fpkm_uq"}
#: relative size of negative values (after undoing a log) still read as rounding of zero
NEGATIVE_TOLERANCE = 1e-4
TPM_TOTAL = 1e6


@dataclass(frozen=True)
class Unit:
    """A declared expression unit: ``base`` (one of ``BASE_UNITS``), log2(x + ``pseudocount``) when ``log2``."""

    base: str
    log2: bool = False
    pseudocount: float = 0.0

    def __str__(self) -> str:
        return f"log2({self.base} + {self.pseudocount:g})" if self.log2 else self.base


def parse_unit(unit: str, pseudocount: float | None = None, *, source: str = "") -> Unit:
    """``"tpm"``, ``"log2_fpkm"``, ... → :class:`Unit`; a log unit needs ``pseudocount`` (> 0), a linear one none.

    Raises ``InputDataError`` naming ``source`` (the matrix) and the accepted units.
    """
    where = f"expression matrix {source}: " if source else ""
    name = unit.strip().lower()
    log2 = name.startswith(LOG_PREFIX)
    base = name[len(LOG_PREFIX):] if log2 else name
    accepted = [*BASE_UNITS, *(LOG_PREFIX + b for b in BASE_UNITS)]
    if base not in BASE_UNITS:
        raise InputDataError(f"{where}unknown unit {unit!r}; declare one of {accepted} "
                             "(log2_<unit> = log2(x + pseudocount), with the pseudocount declared).")
    if log2:
        if pseudocount is None or not np.isfinite(pseudocount) or pseudocount <= 0:
            raise InputDataError(f"{where}unit {unit!r} is log2(x + p): declare the pseudocount p > 0 "
                                 f"(--pseudocount, usually 1), got {pseudocount!r}.")
        return Unit(base, True, float(pseudocount))
    if pseudocount is not None:
        raise InputDataError(f"{where}a pseudocount ({pseudocount:g}) was declared for the linear unit {unit!r}; "
                             f"declare the unit as {LOG_PREFIX}{base} if the values are log2(x + {pseudocount:g}).")
    return Unit(base)


def unit_of_value_column(value_column: str) -> str:
    """The base unit of an ``omics.value_column``; raises ``InputDataError`` for an unknown column."""
    try:
        return VALUE_COLUMN_UNIT[value_column]
    except KeyError:
        raise InputDataError(f"omics.value_column {value_column!r} has no known unit; use one of "
                             f"{sorted(VALUE_COLUMN_UNIT)}.") from None


def to_linear(values: np.ndarray, unit: Unit, *, source: str) -> np.ndarray:
    """Undo a declared log2(x + p): ``2 ** y - p`` (float64); check that the values are non-negative.

    A value below ``-NEGATIVE_TOLERANCE * p`` after undoing the log means the pseudocount (or the log base)
    was declared wrong; such values, or negative linear values, raise ``InputDataError``.
    """
    x = np.asarray(values, np.float64)
    if unit.log2:
        x = np.exp2(x) - unit.pseudocount
        floor = -NEGATIVE_TOLERANCE * unit.pseudocount
        if (x < floor).any():
            raise InputDataError(
                f"expression matrix {source}: declared {unit}, but {int((x < floor).sum())} value(s) lie below "
                f"log2({unit.pseudocount:g}) = {np.log2(unit.pseudocount):.4g}, so x would be negative. Check the "
                "declared pseudocount and that the values are log2 (not ln or log10).")
        return np.maximum(x, 0.0)
    if (x < 0).any():
        raise InputDataError(f"expression matrix {source}: declared {unit} but {int((x < 0).sum())} value(s) are "
                             "negative; if the matrix is log-transformed declare log2_<unit> with its pseudocount.")
    return x


def convert_linear(values: np.ndarray, src: str, dst: str, *, source: str, value_column: str) -> np.ndarray:
    """Convert (G, S) linear values (genes × samples) from base unit ``src`` to ``dst``, exactly.

    Same unit: unchanged. ``fpkm``/``fpkm_uq`` → ``tpm``: each sample rescaled to sum to 1e6 over the G genes
    (give every gene the quantifier reported, not a subset). Anything else raises ``InputDataError`` naming the
    unit, ``value_column`` and the fix.
    """
    if src == dst:
        return values
    if dst == "tpm" and src in ("fpkm", "fpkm_uq"):
        totals = values.sum(axis=0, keepdims=True)
        if (totals <= 0).any():
            bad = int((totals <= 0).sum())
            raise InputDataError(f"expression matrix {source}: {bad} sample(s) have no expression (all {src} are "
                                 "0); drop them or fix the matrix.")
        return values / totals * TPM_TOTAL
    if src == "counts":
        fix = ("Give the matrix as TPM, FPKM or FPKM-UQ (quantifiers such as STAR in the GDC pipeline, RSEM or "
               "salmon write them with their gene lengths), or use a model trained on counts "
               "(omics.value_column: unstranded).")
        raise InputDataError(f"expression matrix {source}: unit 'counts' cannot be converted to {dst} "
                             f"(omics.value_column = {value_column}) without gene lengths. {fix}")
    raise InputDataError(
        f"expression matrix {source}: unit {src!r} cannot be converted to {dst} (omics.value_column = "
        f"{value_column}): {src} does not determine {dst} without the raw counts. Give the matrix in {dst} (or counts for a "
        f"counts model), or use a model trained on tpm_unstranded, which FPKM and FPKM-UQ convert to exactly.")
