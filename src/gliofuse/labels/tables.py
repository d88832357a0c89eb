"""The patient label table (docs/data-contracts.md §3): survival + WHO-2021 diagnosis and grade."""

from __future__ import annotations

import logging
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd

from gliofuse.config import CohortSheetConfig
from gliofuse.errors import InputDataError
from gliofuse.io import provenance, read_json_, write_table_
from gliofuse.labels.clinical import cases_from_envelope, survival_table
from gliofuse.labels.clinical_sheet import read_clinical_table_
from gliofuse.labels.who2021 import who2021_from_molecular
from gliofuse.tasks import DIAGNOSIS_CLASSES

log = logging.getLogger(__name__)

LABEL_COLUMNS: tuple[str, ...] = (
    "patient_id", "project", "time_days", "event", "idh", "codel", "histologic_grade", "who2021_class",
    "who2021_grade", "diagnosis", "grade", "age_years", "sex",
)
MOLECULAR_REQUIRED: tuple[str, ...] = ("Patient ID", "IDH status", "IDH/codel subtype", "Neoplasm Histologic Grade")


def shipped_molecular_table() -> Path:
    """Path of the shipped Ceccarelli-2016 (cBioPortal lgggbm_tcga_pub) label subset."""
    return Path(str(resources.files("gliofuse.labels") / "data" / "lgggbm_tcga_pub_labels.tsv"))


def read_molecular_table_(path: Path) -> pd.DataFrame:
    """Read a molecular label TSV in the cBioPortal lgggbm_tcga_pub schema (strings, ``NA`` kept)."""
    if not path.exists():
        raise InputDataError(f"molecular label table not found: {path}. Set labels.molecular_table to an existing TSV.")
    df = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False, comment=None)
    missing = [c for c in MOLECULAR_REQUIRED if c not in df.columns]
    if missing:
        raise InputDataError(
            f"molecular label table {path} lacks column(s) {missing}. It must follow the cBioPortal "
            "lgggbm_tcga_pub clinical-data schema (see docs/data-contracts.md §1)."
        )
    return df


def build_labels(*, cases: list[dict], molecular: pd.DataFrame, strict: bool, survival_source: str,
                 cases_source: str = "cases.json") -> pd.DataFrame:
    """Join survival (GDC cases) and WHO-2021 labels (molecular table) into the label table.

    Patients are those of the GDC cases; molecular labels missing for a patient leave its class
    columns empty (-1 for the integer task columns).
    """
    surv = survival_table(cases, source=cases_source)
    who = who2021_from_molecular(molecular, strict=strict)
    df = surv.merge(who, on="patient_id", how="left")
    if survival_source == "molecular_table":
        df["time_days"] = df["os_days"]
        df["event"] = df["os_event"]
    return finish_label_table(df)


def finish_label_table(df: pd.DataFrame) -> pd.DataFrame:
    """The label table (contract §3) from survival + WHO-2021 columns: adds the task columns ``diagnosis``
    and ``grade`` (class indices, -1 = unknown), blanks non-positive times, logs label counts per task.

    ``df`` holds one row per patient with patient_id, project, time_days, event, age_years, sex, idh, codel,
    histologic_grade, who2021_class, who2021_grade (missing: NaN/None).
    """
    df = df.copy()
    diag_index = {c: i for i, c in enumerate(DIAGNOSIS_CLASSES)}
    df["diagnosis"] = df["who2021_class"].map(diag_index).fillna(-1).astype(int)
    df["grade"] = df["who2021_grade"].map({2: 0, 3: 1, 4: 2}).fillna(-1).astype(int)
    for c in ("event", "histologic_grade", "who2021_grade"):
        df[c] = df[c].astype("Int64")
    df.loc[df["time_days"].notna() & (df["time_days"] <= 0), "time_days"] = np.nan
    n_no_mol = int(df["idh"].isna().sum())
    if n_no_mol:
        log.warning("%d of %d patients have no IDH label (no molecular row, marker or diagnosis)", n_no_mol, len(df))
    counts = df["who2021_class"].fillna("missing").value_counts().to_dict()
    log.info("WHO-2021 classes: %s", counts)
    n_surv = int((df["time_days"].notna() & df["event"].notna()).sum())
    log.info("patients with a label per task (others are left out of that task only): survival %d, diagnosis %d, "
             "grade %d, of %d", n_surv, int((df["diagnosis"] >= 0).sum()), int((df["grade"] >= 0).sum()), len(df))
    return df[list(LABEL_COLUMNS)].sort_values("patient_id").reset_index(drop=True)


def build_label_table_(*, cases_path: Path, molecular_path: Path, strict: bool, survival_source: str,
                       out_path: Path, config: dict) -> pd.DataFrame:
    """Read GDC cases JSON + molecular TSV, build the label table and write it with provenance."""
    cases = cases_from_envelope(read_json_(cases_path, what="GDC cases file"), source=str(cases_path))
    if not cases:
        raise InputDataError(f"GDC cases file {cases_path} has no hits; check the download (gdc stage).")
    molecular = read_molecular_table_(molecular_path)
    df = build_labels(cases=cases, molecular=molecular, strict=strict, survival_source=survival_source,
                      cases_source=str(cases_path))
    write_table_(out_path, df, prov=provenance(config=config, inputs={"cases": cases_path, "molecular": molecular_path}))
    return df


def build_label_table_from_clinical_(*, clinical_path: Path, sheet: CohortSheetConfig, strict: bool, out_path: Path,
                                     config: dict) -> pd.DataFrame:
    """Read a cohort's own clinical table (``sheet.clinical``), derive the labels and write the label table."""
    df = finish_label_table(read_clinical_table_(clinical_path, sheet=sheet, strict=strict))
    write_table_(out_path, df, prov=provenance(config=config, inputs={"clinical": clinical_path}))
    return df


LABEL_DTYPES = {"patient_id": str, "project": str, "idh": str, "codel": str, "who2021_class": str, "sex": str}


def read_label_table_(path: Path) -> pd.DataFrame:
    """Read and validate the label table (contract §3)."""
    from gliofuse.io import read_table_

    df = read_table_(path, required=LABEL_COLUMNS, what="label table", dtype=LABEL_DTYPES)
    if df["patient_id"].duplicated().any():
        dup = df.loc[df["patient_id"].duplicated(), "patient_id"].tolist()[:5]
        raise InputDataError(f"label table {path} has duplicate patient_id values, e.g. {dup}. Rebuild it with labels_build.")
    bad = df["event"].dropna()
    if not bad.isin([0, 1]).all():
        raise InputDataError(f"label table {path}: column 'event' must be 0/1 (1 = death observed), got {sorted(bad.unique())[:5]}.")
    return df
