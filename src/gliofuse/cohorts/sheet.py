"""The slide sheet: one row per slide with ``patient_id``, ``slide_id`` and ``slide_path`` (contract §0).

The one reader and writer of the sheet. A user's sheet (``cohort: sheet``, ``sheet.slides``) is checked at
Snakefile parse time; the demo and the GDC routes write the same sheet from their TCGA-named slides
(``results/cohort/slides.tsv``), so the rules downstream read one contract whatever the source.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path

import pandas as pd

from gliofuse.errors import InputDataError
from gliofuse.io import provenance, write_table_

SHEET_COLUMNS: tuple[str, ...] = ("patient_id", "slide_id", "slide_path")
"""Required columns of a slide sheet, in the order the workflow's copy is written."""

SAFE_ID_PATTERN = r"[A-Za-z0-9][A-Za-z0-9._-]*"
"""Slide and patient ids: a letter or digit, then letters, digits, ``.``, ``_`` or ``-`` (no path separator,
no space). Also the workflow's ``slide`` wildcard constraint."""

_SAFE_ID = re.compile(rf"^{SAFE_ID_PATTERN}$")
_TCGA_PATIENT = re.compile(r"^TCGA-[A-Z0-9]{2}-[A-Z0-9]{4}")


def read_sheet_frame_(path: str | os.PathLike[str], *, what: str) -> pd.DataFrame:
    """A CSV (``.csv``) or tab-separated (any other suffix) table as strings, empty cells kept as ``""``."""
    p = Path(path)
    if not p.is_file():
        raise InputDataError(f"{what} not found: {p}. Fix the path in the config (relative paths are read from the "
                             "working directory).")
    sep = "," if p.suffix.lower() == ".csv" else "\t"
    df = pd.read_csv(p, sep=sep, dtype=str, keep_default_na=False)
    df.columns = [str(c).strip() for c in df.columns]
    return df.apply(lambda col: col.str.strip())


def row_ref(path: str | os.PathLike[str], i: int, column: str) -> str:
    """``<file>, row <n> (line <n+1>), column '<column>'`` for the data row at 0-based index ``i``."""
    return f"{path}, row {i + 1} (line {i + 2}), column {column!r}"


def check_safe_id(value: str, *, where: str) -> str:
    """``value`` if it is a safe id (:data:`SAFE_ID_PATTERN`), else ``InputDataError`` naming ``where``."""
    if not _SAFE_ID.match(value):
        raise InputDataError(f"{where}: {value!r} is not a safe id (a letter or digit, then letters, digits, '.', "
                             "'_' or '-'; no spaces or path separators). Rename it in the sheet.")
    return value


def _resolve(raw: str, base: Path) -> str:
    p = Path(raw).expanduser()
    return os.path.normpath(p if p.is_absolute() else base / p)


def read_slide_sheet_(path: str | os.PathLike[str], *, check_files: bool = True) -> pd.DataFrame:
    """Read and validate a slide sheet (CSV or TSV; columns :data:`SHEET_COLUMNS`, others ignored).

    ``slide_path`` may name any slide format OpenSlide reads; a relative path is resolved against the sheet's
    folder. Raises ``InputDataError`` naming the row and the column for a missing column, an empty cell, an
    unsafe id, a duplicate slide id or file, and (``check_files``) a file that does not exist.

    Returns
    -------
    DataFrame (n_slides rows): patient_id, slide_id, slide_path (resolved, normalised), in sheet order.
    """
    p = Path(path)
    df = read_sheet_frame_(p, what="slide sheet")
    missing = [c for c in SHEET_COLUMNS if c not in df.columns]
    if missing:
        raise InputDataError(f"slide sheet {p}, row 0 (header line 1), column(s) {missing}: missing. A slide sheet "
                             f"needs the columns {list(SHEET_COLUMNS)}; it has {list(df.columns)}.")
    if df.empty:
        raise InputDataError(f"slide sheet {p} has no rows; list one slide per row.")
    seen_ids: dict[str, int] = {}
    seen_paths: dict[str, int] = {}
    paths = []
    for i, rec in enumerate(df[list(SHEET_COLUMNS)].to_dict("records")):
        for col in SHEET_COLUMNS:
            if not rec[col]:
                raise InputDataError(f"slide sheet {row_ref(p, i, col)}: empty. Every row needs {list(SHEET_COLUMNS)}.")
        check_safe_id(rec["patient_id"], where=f"slide sheet {row_ref(p, i, 'patient_id')}")
        sid = check_safe_id(rec["slide_id"], where=f"slide sheet {row_ref(p, i, 'slide_id')}")
        if sid in seen_ids:
            raise InputDataError(f"slide sheet {row_ref(p, i, 'slide_id')}: duplicate slide id {sid!r} (also row "
                                 f"{seen_ids[sid] + 1}). Slide ids must be unique.")
        seen_ids[sid] = i
        resolved = _resolve(rec["slide_path"], p.parent)
        if resolved in seen_paths:
            raise InputDataError(f"slide sheet {row_ref(p, i, 'slide_path')}: {resolved} is also the file of row "
                                 f"{seen_paths[resolved] + 1}. List each slide file once.")
        seen_paths[resolved] = i
        if check_files and not Path(resolved).exists():
            raise InputDataError(f"slide sheet {row_ref(p, i, 'slide_path')}: file {resolved} does not exist "
                                 f"(relative paths are resolved against the sheet's folder {p.parent}).")
        paths.append(resolved)
    out = df[["patient_id", "slide_id"]].copy()
    out["slide_path"] = paths
    return out.reset_index(drop=True)


def tcga_patient_id(slide_id: str) -> str:
    """TCGA patient barcode (``TCGA-XX-XXXX``, the first 12 characters) of a TCGA slide or sample barcode."""
    if not _TCGA_PATIENT.match(slide_id):
        raise InputDataError(f"slide {slide_id!r} is not named by a TCGA barcode (TCGA-XX-XXXX-...); the demo and "
                             "GDC routes need TCGA names. List other slides in a slide sheet (cohort: sheet).")
    return slide_id[:12]


def tcga_slide_sheet(slide_paths: Iterable[str | os.PathLike[str]]) -> pd.DataFrame:
    """The slide sheet of TCGA-named slide files (GDC layout ``slides/<slide_id>.svs``), sorted by slide id."""
    rows = [{"patient_id": tcga_patient_id(Path(s).stem), "slide_id": Path(s).stem, "slide_path": os.fspath(s)}
            for s in slide_paths]
    if not rows:
        raise InputDataError("no slide files given; the cohort has no slides.")
    df = pd.DataFrame(rows, columns=list(SHEET_COLUMNS)).sort_values("slide_id").reset_index(drop=True)
    dup = df.loc[df["slide_id"].duplicated(), "slide_id"].tolist()
    if dup:
        raise InputDataError(f"slide files with the same slide id: {dup[:5]}.")
    return df


def write_slide_sheet_(df: pd.DataFrame, out: str | os.PathLike[str], *, inputs: Mapping[str, object]) -> None:
    """Write a validated sheet as TSV with each ``slide_path`` relative to the output's folder (so that
    :func:`read_slide_sheet_` reads it back to the same files), with its provenance sidecar."""
    base = Path(out).parent
    rel = df.copy()
    rel["slide_path"] = [os.path.relpath(Path(s).absolute(), base.absolute()) for s in df["slide_path"]]
    write_table_(out, rel[list(SHEET_COLUMNS)], prov=provenance(config={}, inputs=dict(inputs)))


def slide_patients(df: pd.DataFrame) -> dict[str, str]:
    """``{slide_id: patient_id}`` of a slide sheet."""
    return dict(zip(df["slide_id"], df["patient_id"], strict=True))
