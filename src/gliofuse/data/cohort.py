"""Join labels × slides × omics into the modelling cohort (contract §7, ``cohort.tsv``)."""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

from gliofuse.io import read_json_

log = logging.getLogger(__name__)


def patient_of_slide(slide_id: str) -> str:
    """TCGA patient barcode (first 12 characters) of a slide or sample barcode."""
    return slide_id[:12]


def build_cohort(*, labels: pd.DataFrame, slide_status_paths: list[Path], omics_patients: list[str]) -> pd.DataFrame:
    """Patients with a label row, at least one ``ok`` slide and an omics profile.

    Parameters
    ----------
    labels : label table (contract §3).
    slide_status_paths : per-slide status JSON files (contract §4, ``results/wsi/status/<slide>.json``).
    omics_patients : patient ids of the expression matrix.

    Returns
    -------
    DataFrame with patient_id, slide_ids (``;``-joined ok slides), has_omics and the label columns.
    """
    ok: dict[str, list[str]] = {}
    n_bad = 0
    for path in slide_status_paths:
        status = read_json_(path, what="slide status file")
        if status.get("status") == "ok" and int(status.get("n_patches", 0)) > 0:
            ok.setdefault(patient_of_slide(status["slide_id"]), []).append(status["slide_id"])
        else:
            n_bad += 1
    if n_bad:
        log.warning("%d slide(s) are not ok (skipped/failed/no patches) and are left out; see results/wsi/status", n_bad)
    omics_set = set(omics_patients)
    df = labels.copy()
    df["slide_ids"] = df["patient_id"].map(lambda p: ";".join(sorted(ok.get(p, []))))
    df["has_omics"] = df["patient_id"].isin(omics_set).astype(int)
    keep = (df["slide_ids"] != "") & (df["has_omics"] == 1)
    log.info("cohort: %d of %d labelled patients have ok slides and omics (%d without slides, %d without omics)",
             int(keep.sum()), len(df), int((df["slide_ids"] == "").sum()), int((df["has_omics"] == 0).sum()))
    cols = ["patient_id", "slide_ids", "has_omics"] + [c for c in labels.columns if c != "patient_id"]
    return df.loc[keep, cols].sort_values("patient_id").reset_index(drop=True)
