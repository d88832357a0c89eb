"""The GDC manifest TSV and where each listed file goes in the data root.

Columns (docs/data-contracts.md §1a): ``id filename md5 size state`` (the GDC Data Transfer Tool
manifest, so ``gdc-client download -m`` accepts the file) followed by ``kind`` (``slide`` / ``rnaseq``)
and ``patient_id``. Layout: slides go to ``slides/<filename>`` (slide id = file name without ``.svs``),
STAR - Counts files to ``rnaseq/<id>/<filename>``.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import pandas as pd

from gliofuse.errors import InputDataError
from gliofuse.io import write_text_atomic_

MANIFEST_COLUMNS: tuple[str, ...] = ("id", "filename", "md5", "size", "state", "kind", "patient_id")
REQUIRED_COLUMNS: tuple[str, ...] = ("id", "filename", "md5", "size")
KINDS: tuple[str, ...] = ("slide", "rnaseq")
SLIDE_SUFFIX = ".svs"
RNASEQ_SUFFIX = ".rna_seq.augmented_star_gene_counts.tsv"
UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
MD5_RE = re.compile(r"^[0-9a-f]{32}$")
MAX_NAME_BYTES = 255


class UnsafeFileNameError(InputDataError):
    """A file name from the GDC (or a manifest) could escape the data root or is not a plain name."""


def safe_file_name(name: object, *, file_id: str) -> str:
    """Return ``name`` if it is a plain file name, else raise ``UnsafeFileNameError`` naming ``file_id``.

    Refused: non-strings, empty names, ``.``/``..`` and names containing ``..``, path separators
    (``/`` and ``\\``), absolute or drive paths, control characters (including NUL, CR, LF, TAB),
    leading ``-`` or ``~`` and names over 255 bytes.
    """
    def refuse(why: str) -> UnsafeFileNameError:
        return UnsafeFileNameError(
            f"GDC file {file_id}: refusing file name {str(name)[:80]!r} ({why}). The API returned a name that "
            "is not a plain file name; report it to the GDC help desk or remove the file from the manifest."
        )

    if not isinstance(name, str) or not name:
        raise refuse("empty or not a string")
    if any(unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp") for ch in name):
        raise refuse("control character")
    if "/" in name or "\\" in name:
        raise refuse("path separator")
    if name in (".", "..") or ".." in name:
        raise refuse("'..'")
    if re.match(r"^[A-Za-z]:", name) or PurePosixPath(name).is_absolute():
        raise refuse("absolute path")
    if name[0] in "-~" or name != name.strip():
        raise refuse("leading '-', '~' or surrounding white space")
    if len(name.encode("utf-8")) > MAX_NAME_BYTES:
        raise refuse(f"longer than {MAX_NAME_BYTES} bytes")
    return name


def check_file_id(file_id: object) -> str:
    """Return ``file_id`` if it is a lower-case UUID (the GDC file id), else raise ``UnsafeFileNameError``."""
    if not isinstance(file_id, str) or not UUID_RE.match(file_id):
        raise UnsafeFileNameError(f"GDC file id {str(file_id)[:80]!r} is not a UUID; refusing to use it as a folder name.")
    return file_id


def kind_from_name(name: str) -> str | None:
    """``slide`` for ``*.svs``, ``rnaseq`` for STAR - Counts files, None otherwise."""
    if name.lower().endswith(SLIDE_SUFFIX):
        return "slide"
    if name.endswith(RNASEQ_SUFFIX):
        return "rnaseq"
    return None


def relative_path(*, kind: str, file_id: str, filename: str) -> Path:
    """Path of a file relative to the data root (the demo/GDC layout), after checking id and name."""
    filename = safe_file_name(filename, file_id=file_id)
    if kind == "slide":
        if not filename.lower().endswith(SLIDE_SUFFIX):
            raise UnsafeFileNameError(f"GDC file {file_id}: slide file name {filename!r} does not end in .svs.")
        return Path("slides") / filename
    if kind == "rnaseq":
        return Path("rnaseq") / check_file_id(file_id) / filename
    raise InputDataError(f"GDC file {file_id}: unknown kind {kind!r}; expected one of {KINDS}.")


@dataclass(frozen=True)
class ManifestRow:
    """One file of the manifest."""

    id: str
    filename: str
    md5: str
    size: int
    state: str
    kind: str
    patient_id: str

    @property
    def relpath(self) -> Path:
        return relative_path(kind=self.kind, file_id=self.id, filename=self.filename)

    @property
    def slide_id(self) -> str:
        return self.filename[: -len(SLIDE_SUFFIX)]


def _check_row(row: ManifestRow, *, source: str) -> ManifestRow:
    check_file_id(row.id)
    safe_file_name(row.filename, file_id=row.id)
    if not MD5_RE.match(row.md5):
        raise InputDataError(f"{source}: file {row.id} has md5 {row.md5!r}, expected 32 lower-case hex digits.")
    if row.size < 0:
        raise InputDataError(f"{source}: file {row.id} has negative size {row.size}.")
    if row.kind not in KINDS:
        raise InputDataError(f"{source}: file {row.id} has kind {row.kind!r}; expected one of {KINDS}.")
    row.relpath  # noqa: B018 - validates the layout path
    return row


def manifest_frame(rows: Iterable[ManifestRow]) -> pd.DataFrame:
    """Rows as a DataFrame in manifest column order, sorted by kind then file name."""
    df = pd.DataFrame([r.__dict__ for r in rows], columns=list(MANIFEST_COLUMNS))
    return df.sort_values(["kind", "filename", "id"]).reset_index(drop=True)


def write_manifest_(path: Path, rows: Iterable[ManifestRow]) -> None:
    """Write the manifest TSV atomically."""
    df = manifest_frame(rows)
    write_text_atomic_(path, df.to_csv(sep="\t", index=False, lineterminator="\n"))


def read_manifest_(path: Path) -> list[ManifestRow]:
    """Read and validate a manifest TSV.

    Accepts a plain GDC Data Transfer Tool manifest (``id filename md5 size state``): ``kind`` is then
    inferred from the file name (``.svs`` slides, STAR - Counts files) and ``patient_id`` from slide
    names (empty for RNA-seq until the metadata are fetched).

    Raises
    ------
    InputDataError
        Missing file or column, bad md5/size, unknown kind, duplicate id or duplicate target path.
    UnsafeFileNameError
        A file name that is not a plain name, or an id that is not a UUID.
    """
    p = Path(path)
    if not p.exists():
        raise InputDataError(f"GDC manifest not found: {p}. Run `gliofuse gdc query` or fix gdc.manifest.")
    df = pd.read_csv(p, sep="\t", dtype=str, keep_default_na=False)
    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    if missing:
        raise InputDataError(
            f"GDC manifest {p} lacks column(s) {missing}; expected the tab-separated columns {list(MANIFEST_COLUMNS)} "
            "(the first four are required)."
        )
    rows: list[ManifestRow] = []
    for i, rec in enumerate(df.to_dict("records")):
        fid, name = rec["id"].strip(), rec["filename"]
        kind = (rec.get("kind") or "").strip() or kind_from_name(name)
        if kind is None:
            raise InputDataError(
                f"GDC manifest {p}, line {i + 2}: file {fid} ({name!r}) is neither a slide (.svs) nor a STAR - Counts "
                "file; add a 'kind' column (slide/rnaseq) or drop the row."
            )
        patient = (rec.get("patient_id") or "").strip()
        if not patient and kind == "slide":
            patient = name[:12]
        try:
            size = int(rec["size"])
        except ValueError:
            raise InputDataError(f"GDC manifest {p}, line {i + 2}: size {rec['size']!r} is not an integer.") from None
        row = ManifestRow(id=fid, filename=name, md5=rec["md5"].strip().lower(), size=size,
                          state=(rec.get("state") or "").strip(), kind=kind, patient_id=patient)
        rows.append(_check_row(row, source=str(p)))
    dup_ids = sorted(k for k, n in Counter(r.id for r in rows).items() if n > 1)
    if dup_ids:
        raise InputDataError(f"GDC manifest {p} lists file id(s) more than once: {dup_ids[:5]}.")
    dup_paths = sorted(str(k) for k, n in Counter(r.relpath for r in rows).items() if n > 1)
    if dup_paths:
        raise InputDataError(f"GDC manifest {p}: several files would be written to {dup_paths[:3]}.")
    return rows


def slide_ids(rows: Iterable[ManifestRow]) -> list[str]:
    """Sorted slide ids (file name without ``.svs``) of the manifest's slides."""
    return sorted(r.slide_id for r in rows if r.kind == "slide")
