"""Join labels × slides × omics into the modelling cohort (contract §7, ``cohort.tsv``)."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from gliofuse.errors import InputDataError
from gliofuse.io import read_json_

log = logging.getLogger(__name__)

#: why a labelled patient is not in the cohort (``reason`` column of cohort.tsv; several are ``;``-joined)
REASON_NO_OK_SLIDE = "no_ok_slide"
REASON_FEATURES_FAILED = "features_failed"
REASON_NO_OMICS = "no_omics"


def _patient_of(slide_patients: Mapping[str, str], slide_id: str) -> str:
    try:
        return slide_patients[slide_id]
    except KeyError:
        raise InputDataError(f"slide {slide_id!r} has a status file but no row in the slide sheet "
                             "(results/cohort/slides.tsv); rerun the workflow so both come from one slide list.") from None


def _usable(status: dict) -> bool:
    return status.get("status") == "ok" and int(status.get("n_patches") or 0) > 0


def _wsi_ok_slides(slide_status_paths: list[Path]) -> list[str]:
    """Slide ids whose segmentation/patching status is ``ok`` with patches (contract §4)."""
    ok, n_bad = [], 0
    for path in slide_status_paths:
        status = read_json_(path, what="slide status file")
        if _usable(status):
            ok.append(str(status["slide_id"]))
        else:
            n_bad += 1
    if n_bad:
        log.warning("%d slide(s) are not ok (skipped/failed/no patches) and are left out; see results/wsi/status", n_bad)
    return ok


def _feature_ok_slides(feature_status_paths: list[Path], slides: list[str]) -> set[str]:
    """The ``slides`` whose features status (contract §5) is ``ok`` with patches; logs the others."""
    by_slide = {}
    for path in feature_status_paths:
        status = read_json_(path, what="features status file")
        by_slide[str(status.get("slide_id"))] = status
    good, bad = set(), Counter()
    for s in slides:
        st = by_slide.get(s)
        if st is not None and _usable(st):
            good.add(s)
        else:
            bad["no features status" if st is None else str(st.get("status") or "unknown")] += 1
    if bad:
        what = ", ".join(f"{n} {k}" for k, n in sorted(bad.items()))
        log.warning("%d slide(s) with ok patches have no usable features (%s) and are left out; "
                    "see results/features/<encoder>/status", sum(bad.values()), what)
    return good


def cohort_table(*, labels: pd.DataFrame, slide_status_paths: list[Path], omics_patients: list[str],
                 slide_patients: Mapping[str, str], feature_status_paths: list[Path] | None = None) -> pd.DataFrame:
    """Every labelled patient with its usable slides, omics flag, cohort membership and exclusion reason.

    ``slide_patients`` maps each slide id to its patient (the slide sheet, :func:`gliofuse.cohorts.sheet.slide_patients`).

    A slide is usable when its WSI status (contract §4) is ``ok`` with patches and, when
    ``feature_status_paths`` are given (contract §5, ``results/features/<encoder>/status/<slide>.json``),
    its features status is ``ok`` with patches too (a ``failed`` extraction, or no status file, drops it).
    A patient is in the cohort (``in_cohort`` 1) with at least one usable slide and an omics profile;
    otherwise ``reason`` says why: ``no_ok_slide`` (no slide with ok patches), ``features_failed`` (slides
    with ok patches, but none with usable features), ``no_omics`` (``;``-joined when several apply).

    Returns
    -------
    DataFrame sorted by patient_id: patient_id, slide_ids (``;``-joined usable slides), has_omics,
    in_cohort, reason and the label columns.
    """
    wsi_ok = _wsi_ok_slides(slide_status_paths)
    usable = wsi_ok if feature_status_paths is None else sorted(_feature_ok_slides(feature_status_paths, wsi_ok))
    patched: set[str] = {_patient_of(slide_patients, s) for s in wsi_ok}
    slides: dict[str, list[str]] = {}
    for s in usable:
        slides.setdefault(_patient_of(slide_patients, s), []).append(s)
    unlabelled = sorted(set(slides) - set(labels["patient_id"]))
    if unlabelled:
        log.warning("%d patient(s) of the slide sheet have no label row and are left out (check that the sheet's "
                    "patient_id matches the clinical data): %s", len(unlabelled), ", ".join(unlabelled[:10]))
    omics_set = set(omics_patients)
    df = labels.copy()
    df["slide_ids"] = df["patient_id"].map(lambda p: ";".join(sorted(slides.get(p, []))))
    df["has_omics"] = df["patient_id"].isin(omics_set).astype(int)

    def reason(p: str) -> str:
        why = []
        if p not in slides:
            why.append(REASON_FEATURES_FAILED if p in patched else REASON_NO_OK_SLIDE)
        if p not in omics_set:
            why.append(REASON_NO_OMICS)
        return ";".join(why)

    df["reason"] = df["patient_id"].map(reason)
    df["in_cohort"] = (df["reason"] == "").astype(int)
    counts = Counter(r for rs in df["reason"] for r in rs.split(";") if r)
    log.info("cohort: %d of %d labelled patients have usable slides and omics (%d %s, %d %s, %d %s)",
             int(df["in_cohort"].sum()), len(df), counts[REASON_NO_OK_SLIDE], REASON_NO_OK_SLIDE,
             counts[REASON_FEATURES_FAILED], REASON_FEATURES_FAILED, counts[REASON_NO_OMICS], REASON_NO_OMICS)
    if counts[REASON_FEATURES_FAILED]:
        log.warning("%d patient(s) are left out because feature extraction failed on all their slides: %s",
                    counts[REASON_FEATURES_FAILED],
                    ", ".join(df.loc[df["reason"].str.contains(REASON_FEATURES_FAILED), "patient_id"].tolist()[:10]))
    cols = ["patient_id", "slide_ids", "has_omics", "in_cohort", "reason"]
    cols += [c for c in labels.columns if c not in cols]
    return df[cols].sort_values("patient_id").reset_index(drop=True)


def failed_slides(slide_status_paths: list[Path], feature_status_paths: list[Path] | None = None) -> dict[str, str]:
    """``{slide_id: reason}`` of the slides whose WSI status (§4) or features status (§5) is ``failed``."""
    failed: dict[str, str] = {}
    paths = [(p, "slide status file") for p in slide_status_paths]
    paths += [(p, "features status file") for p in feature_status_paths or []]
    for path, what in paths:
        status = read_json_(path, what=what)
        sid = str(status.get("slide_id"))
        if status.get("status") == "failed" and sid not in failed:
            failed[sid] = f"{status.get('stage', '?')}: {status.get('reason') or 'no reason recorded'}"
    return failed


def check_failed_slides(slide_status_paths: list[Path], feature_status_paths: list[Path] | None, *,
                        max_fraction: float) -> dict[str, str]:
    """The failed slides (see :func:`failed_slides`); ``InputDataError`` naming them when they are more than
    ``max_fraction`` of all slides (``data.max_failed_slide_fraction``); fewer are logged and left out."""
    failed = failed_slides(slide_status_paths, feature_status_paths)
    n = max(len(slide_status_paths), 1)
    if not failed:
        return failed
    listing = "\n".join(f"  {sid}: {why}" for sid, why in sorted(failed.items()))
    if len(failed) > max_fraction * n:
        raise InputDataError(
            f"{len(failed)} of {n} slides failed ({len(failed) / n:.0%}, more than data.max_failed_slide_fraction="
            f"{max_fraction:g}):\n{listing}\nRe-download or replace these files (see results/qc/slides.tsv and "
            "results/logs/wsi_patch/<slide>.log), then rerun; or raise data.max_failed_slide_fraction to go on "
            "without them.")
    log.warning("%d of %d slide(s) failed and are left out (data.max_failed_slide_fraction=%g):\n%s",
                len(failed), n, max_fraction, listing)
    return failed


def cohort_members(table: pd.DataFrame) -> pd.DataFrame:
    """The rows of a :func:`cohort_table` that are in the cohort (``in_cohort`` 1)."""
    return table.loc[table["in_cohort"] == 1].reset_index(drop=True)


def build_cohort(*, labels: pd.DataFrame, slide_status_paths: list[Path], omics_patients: list[str],
                 slide_patients: Mapping[str, str], feature_status_paths: list[Path] | None = None) -> pd.DataFrame:
    """Patients with a label row, at least one usable slide and an omics profile (see :func:`cohort_table`).

    Parameters
    ----------
    labels : label table (contract §3).
    slide_status_paths : per-slide status JSON files (contract §4, ``results/wsi/status/<slide>.json``).
    omics_patients : patient ids of the expression matrix.
    slide_patients : ``{slide_id: patient_id}`` of the slide sheet.
    feature_status_paths : per-slide features status JSON files (contract §5); None: not checked.

    Returns
    -------
    The cohort rows of :func:`cohort_table` (patient_id, slide_ids, has_omics, in_cohort = 1, reason = "",
    label columns).
    """
    return cohort_members(cohort_table(labels=labels, slide_status_paths=slide_status_paths,
                                       omics_patients=omics_patients, slide_patients=slide_patients,
                                       feature_status_paths=feature_status_paths))
