"""The TCGA cohort query: diagnostic slides, RNA-seq STAR - Counts files and clinical cases.

``query_cohort_`` writes, under a data root, ``metadata/files_slides.json``, ``metadata/files_rnaseq.json``,
``metadata/cases.json`` (GDC search envelopes holding every hit) and ``metadata/manifest.tsv``
(+ ``.prov.json``). With a user-supplied manifest the cohort query is skipped: the manifest's files are
the cohort, and their metadata are read from JSON files beside the manifest or fetched by file id.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gliofuse.errors import InputDataError
from gliofuse.gdc.client import GdcClient, GdcError
from gliofuse.gdc.manifest import (
    ManifestRow,
    UnsafeFileNameError,
    check_file_id,
    read_manifest_,
    safe_file_name,
    write_manifest_,
)
from gliofuse.io import provenance, read_json_, sidecar_path, write_json_

log = logging.getLogger(__name__)

FILES_SLIDES_JSON = "metadata/files_slides.json"
FILES_RNASEQ_JSON = "metadata/files_rnaseq.json"
CASES_JSON = "metadata/cases.json"
MANIFEST_TSV = "metadata/manifest.tsv"
QUERY_OUTPUTS: tuple[str, ...] = (FILES_SLIDES_JSON, FILES_RNASEQ_JSON, CASES_JSON, MANIFEST_TSV)

_FILE_FIELDS = [
    "file_id", "file_name", "file_size", "md5sum", "data_format", "data_type", "data_category",
    "experimental_strategy", "access", "state", "cases.case_id", "cases.submitter_id", "cases.project.project_id",
    "cases.samples.sample_type", "cases.samples.submitter_id",
]
SLIDE_FIELDS: list[str] = list(_FILE_FIELDS)
RNASEQ_FIELDS: list[str] = [*_FILE_FIELDS, "analysis.workflow_type"]
CASE_FIELDS: list[str] = [
    "case_id", "submitter_id", "project.project_id",
    "demographic.vital_status", "demographic.days_to_death", "demographic.age_at_index", "demographic.sex_at_birth",
    "diagnoses.age_at_diagnosis", "diagnoses.days_to_last_follow_up", "diagnoses.primary_diagnosis",
    "diagnoses.tumor_grade", "diagnoses.morphology", "follow_ups.days_to_follow_up",
]
CASE_EXPAND: list[str] = ["demographic"]
"""``expand=demographic`` returns whichever sex field the data release has (``sex_at_birth`` or the
older ``gender``, removed in data dictionary v4.0.3) without naming a field the API may reject."""
ID_CHUNK = 500


def in_(field: str, values: Iterable[Any]) -> dict[str, Any]:
    """GDC filter ``{"op": "in", "content": {"field": field, "value": [...]}}``."""
    return {"op": "in", "content": {"field": field, "value": list(values)}}


def and_(*ops: Mapping[str, Any]) -> dict[str, Any]:
    """GDC filter conjunction."""
    return {"op": "and", "content": [dict(o) for o in ops]}


def slide_filters(projects: Sequence[str]) -> dict[str, Any]:
    """Open-access diagnostic (FFPE, DX) slides in SVS format of ``projects``."""
    return and_(
        in_("cases.project.project_id", projects), in_("data_type", ["Slide Image"]),
        in_("experimental_strategy", ["Diagnostic Slide"]), in_("data_format", ["SVS"]), in_("access", ["open"]),
    )


def rnaseq_filters(projects: Sequence[str]) -> dict[str, Any]:
    """Open-access RNA-seq STAR - Counts gene expression files of ``projects``."""
    return and_(
        in_("cases.project.project_id", projects), in_("data_category", ["Transcriptome Profiling"]),
        in_("data_type", ["Gene Expression Quantification"]), in_("analysis.workflow_type", ["STAR - Counts"]),
        in_("access", ["open"]),
    )


def case_filters(projects: Sequence[str]) -> dict[str, Any]:
    """All cases of ``projects``."""
    return in_("project.project_id", projects)


def envelope(hits: list[dict[str, Any]]) -> dict[str, Any]:
    """A GDC search envelope holding every hit on one page."""
    n = len(hits)
    return {"data": {"hits": hits, "pagination": {"count": n, "total": n, "size": max(n, 10), "from": 0, "sort": "",
                                                  "page": 1, "pages": 1}}, "warnings": {}}


@dataclass
class CohortMetadata:
    """What the query found: file hits per kind, case hits and the manifest rows."""

    slides: list[dict[str, Any]]
    rnaseq: list[dict[str, Any]]
    cases: list[dict[str, Any]]
    rows: list[ManifestRow]


def _patient(hit: Mapping[str, Any]) -> str | None:
    cases = hit.get("cases") or []
    if cases and isinstance(cases[0], Mapping):
        return cases[0].get("submitter_id")
    return None


def _row(hit: Mapping[str, Any], kind: str) -> ManifestRow:
    fid = hit.get("file_id") or hit.get("id")
    fid = check_file_id(fid)
    name = safe_file_name(hit.get("file_name"), file_id=fid)
    md5, size = hit.get("md5sum"), hit.get("file_size")
    if not isinstance(md5, str) or size is None:
        raise GdcError(f"GDC file {fid} ({name}) has no md5sum/file_size in the /files response; request both fields.")
    patient = _patient(hit)
    if not patient:
        raise GdcError(f"GDC file {fid} ({name}) has no cases[0].submitter_id; request cases.submitter_id.")
    return ManifestRow(id=fid, filename=name, md5=md5.lower(), size=int(size), state=str(hit.get("state") or ""),
                       kind=kind, patient_id=patient)


def _dedupe(hits: Iterable[dict[str, Any]], key: str) -> list[dict[str, Any]]:
    seen: dict[str, dict[str, Any]] = {}
    for h in hits:
        seen.setdefault(str(h.get(key) or h.get("id")), h)
    return list(seen.values())


def _finish(slides: list[dict[str, Any]], rnaseq: list[dict[str, Any]], cases: list[dict[str, Any]],
            *, max_patients: int | None) -> CohortMetadata:
    slides = _dedupe(slides, "file_id")
    rnaseq = _dedupe(rnaseq, "file_id")
    cases = _dedupe(cases, "case_id")
    rows_s = [_row(h, "slide") for h in slides]
    rows_r = [_row(h, "rnaseq") for h in rnaseq]
    if max_patients is not None:
        keep = set(sorted({r.patient_id for r in rows_s})[:max_patients])
        log.info("gdc.max_patients = %d: keeping %d patients", max_patients, len(keep))
        slides = [h for h, r in zip(slides, rows_s, strict=True) if r.patient_id in keep]
        rnaseq = [h for h, r in zip(rnaseq, rows_r, strict=True) if r.patient_id in keep]
        cases = [c for c in cases if c.get("submitter_id") in keep]
        rows_s = [r for r in rows_s if r.patient_id in keep]
        rows_r = [r for r in rows_r if r.patient_id in keep]
    dup = sorted(n for n, k in Counter(r.filename for r in rows_s).items() if k > 1)
    if dup:
        raise GdcError(f"several GDC slide files share the file name {dup[:3]}; slide ids must be unique.")
    slides.sort(key=lambda h: h["file_name"])
    rnaseq.sort(key=lambda h: (_patient(h) or "", h["file_name"]))
    cases.sort(key=lambda h: str(h.get("submitter_id")))
    return CohortMetadata(slides=slides, rnaseq=rnaseq, cases=cases, rows=rows_s + rows_r)


def query_cohort(client: GdcClient, *, projects: Sequence[str], page_size: int = 500,
                 max_patients: int | None = None) -> CohortMetadata:
    """Query slides, STAR - Counts files and cases of ``projects`` (all pages).

    Raises
    ------
    GdcError
        API failure, or no diagnostic slide found.
    UnsafeFileNameError
        A returned file name is not a plain file name (the message names the file id).
    """
    projects = list(projects)
    slides = client.query_all("files", filters=slide_filters(projects), fields=SLIDE_FIELDS, page_size=page_size,
                              sort="file_name:asc")
    log.info("GDC: %d diagnostic slides for %s", len(slides), projects)
    if not slides:
        raise GdcError(f"the GDC returned no open diagnostic SVS slide for projects {projects}; check gdc.projects.")
    rnaseq = client.query_all("files", filters=rnaseq_filters(projects), fields=RNASEQ_FIELDS, page_size=page_size,
                              sort="file_name:asc")
    log.info("GDC: %d STAR - Counts files", len(rnaseq))
    cases = client.query_all("cases", filters=case_filters(projects), fields=CASE_FIELDS, expand=CASE_EXPAND,
                             page_size=page_size, sort="submitter_id:asc")
    log.info("GDC: %d cases", len(cases))
    return _finish(slides, rnaseq, cases, max_patients=max_patients)


def _beside(manifest: Path) -> dict[str, Path] | None:
    names = {"slides": "files_slides.json", "rnaseq": "files_rnaseq.json", "cases": "cases.json"}
    paths = {k: manifest.parent / v for k, v in names.items()}
    return paths if all(p.exists() for p in paths.values()) else None


def _hits(path: Path, what: str) -> list[dict[str, Any]]:
    payload = read_json_(path, what=what)
    try:
        hits = payload["data"]["hits"] if isinstance(payload, dict) else payload
    except (KeyError, TypeError):
        raise InputDataError(f"{what} {path} is not a GDC search envelope ({{'data': {{'hits': [...]}}}}).") from None
    if not isinstance(hits, list):
        raise InputDataError(f"{what} {path}: data.hits must be a list.")
    return hits


def metadata_for_manifest(client: GdcClient | None, manifest: Path, *, page_size: int = 500) -> CohortMetadata:
    """Metadata of the files a user manifest lists (no cohort query).

    JSON files written by ``gliofuse gdc query`` beside the manifest (``files_slides.json``,
    ``files_rnaseq.json``, ``cases.json``) are used when all three exist (no network needed); otherwise
    ``/files`` is queried by file id and ``/cases`` by the case ids of those files.
    """
    rows = read_manifest_(manifest)
    by_id = {r.id: r for r in rows}
    local = _beside(manifest)
    if local is not None:
        log.info("user manifest %s: reading metadata beside it", manifest)
        file_hits = _hits(local["slides"], "GDC slide metadata") + _hits(local["rnaseq"], "GDC RNA-seq metadata")
        case_hits = _hits(local["cases"], "GDC cases metadata")
        file_hits = [h for h in file_hits if (h.get("file_id") or h.get("id")) in by_id]
    else:
        if client is None:
            raise InputDataError(f"user manifest {manifest} has no metadata beside it and no GDC client was given.")
        ids = sorted(by_id)
        file_hits = []
        for i in range(0, len(ids), ID_CHUNK):
            chunk = ids[i:i + ID_CHUNK]
            file_hits += client.query_all("files", filters=in_("file_id", chunk), page_size=page_size,
                                          fields=sorted(set(SLIDE_FIELDS) | set(RNASEQ_FIELDS)))
        case_ids = sorted({c.get("case_id") for h in file_hits for c in (h.get("cases") or []) if c.get("case_id")})
        case_hits = []
        for i in range(0, len(case_ids), ID_CHUNK):
            case_hits += client.query_all("cases", filters=in_("case_id", case_ids[i:i + ID_CHUNK]), fields=CASE_FIELDS,
                                          expand=CASE_EXPAND, page_size=page_size)
    found = {(h.get("file_id") or h.get("id")): h for h in file_hits}
    missing = sorted(set(by_id) - set(found))
    if missing:
        raise InputDataError(
            f"{len(missing)} file(s) of the manifest {manifest} have no GDC metadata, e.g. {missing[:3]} "
            "(withdrawn from the GDC, or a typo in the manifest)."
        )
    slides = [found[r.id] for r in rows if r.kind == "slide"]
    rnaseq = [found[r.id] for r in rows if r.kind == "rnaseq"]
    patients = {_patient(h) for h in slides + rnaseq}
    cases = [c for c in case_hits if c.get("submitter_id") in patients]
    meta = _finish(slides, rnaseq, cases, max_patients=None)
    for r in meta.rows:
        user = by_id[r.id]
        if user.md5 != r.md5 or user.size != r.size:
            log.warning("manifest %s: file %s has md5/size %s/%d but the GDC metadata say %s/%d; the manifest wins",
                        manifest, r.id, user.md5, user.size, r.md5, r.size)
        if user.filename != r.filename:
            raise InputDataError(f"manifest {manifest}: file {r.id} is named {user.filename!r} there but "
                                 f"{r.filename!r} in the GDC metadata.")
    meta.rows = [ManifestRow(id=r.id, filename=r.filename, md5=by_id[r.id].md5, size=by_id[r.id].size,
                             state=by_id[r.id].state or r.state, kind=r.kind, patient_id=r.patient_id)
                 for r in meta.rows]
    return meta


def write_cohort_metadata_(out_dir: Path, meta: CohortMetadata, *, prov: Mapping[str, Any]) -> None:
    """Write the three metadata envelopes, the manifest and its provenance sidecar under ``out_dir``."""
    root = Path(out_dir)
    write_json_(root / FILES_SLIDES_JSON, envelope(meta.slides))
    write_json_(root / FILES_RNASEQ_JSON, envelope(meta.rnaseq))
    write_json_(root / CASES_JSON, envelope(meta.cases))
    write_manifest_(root / MANIFEST_TSV, meta.rows)
    write_json_(sidecar_path(root / MANIFEST_TSV), dict(prov))


def query_cohort_(*, client: GdcClient, out_dir: Path, projects: Sequence[str], config: Mapping[str, Any],
                  page_size: int = 500, max_patients: int | None = None,
                  user_manifest: Path | None = None) -> CohortMetadata:
    """Run the cohort query (or read a user manifest) and write the metadata and manifest under ``out_dir``.

    Parameters
    ----------
    client : GDC client (its token, if any, is never written).
    out_dir : data root; files go to ``metadata/``.
    projects : GDC project ids (e.g. ``TCGA-GBM``, ``TCGA-LGG``).
    config : the config snapshot recorded (hashed) in the provenance sidecar.
    page_size : hits per page.
    max_patients : keep only the first N patients with a slide (sorted barcodes); None: all.
    user_manifest : a manifest TSV that fixes the file list (skips the cohort query).
    """
    status: dict[str, Any] = {}
    local_only = user_manifest is not None and _beside(Path(user_manifest)) is not None
    if not local_only:
        status = client.status()
        log.info("GDC %s: status %s, data release %s", client.api_url, status.get("status"),
                 status.get("data_release", status.get("tag")))
    if user_manifest is not None:
        meta = metadata_for_manifest(None if local_only else client, Path(user_manifest), page_size=page_size)
        inputs = {"user_manifest": user_manifest}
    else:
        meta = query_cohort(client, projects=projects, page_size=page_size, max_patients=max_patients)
        inputs = {}
    n_slide = sum(r.kind == "slide" for r in meta.rows)
    n_rna = sum(r.kind == "rnaseq" for r in meta.rows)
    extra = {
        "api_url": client.api_url, "projects": list(projects), "authenticated": bool(client.token),
        "gdc_status": {k: status[k] for k in ("status", "tag", "version", "commit", "data_release") if k in status},
        "source": "user_manifest" if user_manifest is not None else "query",
        "filters": {"slides": slide_filters(projects), "rnaseq": rnaseq_filters(projects),
                    "cases": case_filters(projects)},
        "n_slides": n_slide, "n_rnaseq": n_rna, "n_cases": len(meta.cases),
        "n_patients_with_slides": len({r.patient_id for r in meta.rows if r.kind == "slide"}),
        "total_bytes": sum(r.size for r in meta.rows),
    }
    prov = provenance(config=dict(config), inputs=inputs, extra=extra)
    write_cohort_metadata_(Path(out_dir), meta, prov=prov)
    log.info("GDC cohort: %d slides, %d STAR files, %d cases, %.1f GB to download -> %s", n_slide, n_rna,
             len(meta.cases), extra["total_bytes"] / 1e9, Path(out_dir) / MANIFEST_TSV)
    return meta


__all__ = [
    "CASE_FIELDS", "QUERY_OUTPUTS", "RNASEQ_FIELDS", "SLIDE_FIELDS", "CohortMetadata", "UnsafeFileNameError",
    "and_", "in_", "metadata_for_manifest", "query_cohort", "query_cohort_",
]
