"""An own clinical table (cohort: sheet): parsing, errors naming row and column, labels equal to the TCGA route."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from gliofuse.cli import main
from gliofuse.config import ClinicalColumns, CohortSheetConfig, parse_config
from gliofuse.errors import ConfigError, InputDataError
from gliofuse.labels.clinical_sheet import read_clinical_table_
from gliofuse.labels.tables import (
    build_labels,
    finish_label_table,
    read_label_table_,
    read_molecular_table_,
    shipped_molecular_table,
)
from gliofuse.tasks import DAYS_PER_MONTH

COLUMNS = {"patient_id": "PatID", "survival_time": "OS", "event": "Vital", "idh": "IDH_status", "codel": "1p19q",
           "histologic_grade": "Grade", "cdkn2a": "CDKN2A"}
ROWS = [
    {"PatID": "hospA-01", "OS": "14.5", "Vital": "dead", "IDH_status": "wildtype", "1p19q": "", "Grade": "IV",
     "CDKN2A": ""},
    {"PatID": "hospA-02", "OS": "60", "Vital": "alive", "IDH_status": "Mutant", "1p19q": "codeleted", "Grade": "G3",
     "CDKN2A": "NA"},
    {"PatID": "hospA-03", "OS": "30", "Vital": "1", "IDH_status": "mut", "1p19q": "intact", "Grade": "2",
     "CDKN2A": "deleted"},
    {"PatID": "hospA-04", "OS": "", "Vital": "", "IDH_status": "unknown", "1p19q": "", "Grade": "3", "CDKN2A": ""},
]


def _sheet(**kw) -> CohortSheetConfig:
    columns = {**COLUMNS, **kw.pop("columns", {})}
    return CohortSheetConfig(columns=ClinicalColumns(**columns), **{"time_unit": "months", **kw})


def _csv(path: Path, rows: list[dict]) -> Path:
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def test_markers_give_who2021_classes_and_months_become_days(tmp_path):
    df = read_clinical_table_(_csv(tmp_path / "clin.csv", ROWS), sheet=_sheet(name="hospA"), strict=False)
    t = finish_label_table(df).set_index("patient_id")
    assert t.loc["hospA-01", "who2021_class"] == "glioblastoma_idhwt" and t.loc["hospA-01", "grade"] == 2
    assert t.loc["hospA-02", "who2021_class"] == "oligodendroglioma_idhmut_codel" and t.loc["hospA-02", "who2021_grade"] == 3
    # IDH-mutant astrocytoma with CDKN2A/B homozygous deletion is WHO grade 4 whatever its histology
    assert t.loc["hospA-03", "who2021_class"] == "astrocytoma_idhmut" and t.loc["hospA-03", "who2021_grade"] == 4
    assert t.loc["hospA-04", "diagnosis"] == -1 and np.isnan(t.loc["hospA-04", "time_days"])
    assert t.loc["hospA-01", "time_days"] == pytest.approx(14.5 * DAYS_PER_MONTH)
    assert t.loc[["hospA-01", "hospA-02", "hospA-03"], "event"].tolist() == [1, 0, 1]
    assert (t["project"] == "hospA").all()


def test_diagnosis_and_grade_route(tmp_path):
    rows = [{"id": "a1", "t": "100", "e": "0", "dx": "Astrocytoma", "g": "3"},
            {"id": "a2", "t": "50", "e": "1", "dx": "glioblastoma_idhwt", "g": "4"}]
    sheet = CohortSheetConfig(columns=ClinicalColumns(patient_id="id", survival_time="t", event="e", diagnosis="dx",
                                                      grade="g"))
    t = finish_label_table(read_clinical_table_(_csv(tmp_path / "c.csv", rows), sheet=sheet, strict=False))
    assert t["diagnosis"].tolist() == [0, 2] and t["grade"].tolist() == [1, 2] and t["idh"].tolist() == ["mutant", "wildtype"]
    bad = _csv(tmp_path / "bad.csv", [rows[0], {**rows[1], "g": "2"}])
    with pytest.raises(InputDataError, match=r"bad.csv, row 2 \(line 3\), column 'g' .*grade 2 is not a WHO-2021 grade"):
        read_clinical_table_(bad, sheet=sheet, strict=False)


@pytest.mark.parametrize("edit,columns,row,column,needle", [
    # an unknown unit in the per-row unit column
    (lambda r: [{**x, "unit": "weeks" if i == 2 else "months"} for i, x in enumerate(r)], {"time_unit": "unit"},
     3, "unit", "unknown value 'weeks'"),
    (lambda r: [r[0], {**r[1], "IDH_status": "maybe"}, *r[2:]], {}, 2, "IDH_status", "unknown value 'maybe'"),
    (lambda r: [r[0], {**r[1], "OS": "-3"}, *r[2:]], {}, 2, "OS", "not a non-negative number"),
    (lambda r: [r[0], {**r[1], "Vital": "gone"}, *r[2:]], {}, 2, "Vital", "unknown value 'gone'"),
    (lambda r: [{k: v for k, v in x.items() if k != "Grade"} for x in r], {}, 0, "Grade", "missing"),
    (lambda r: [*r, {**r[1], "OS": "61"}], {}, 5, "OS", "patient hospA-02 has time_days"),
    (lambda r: [r[0], {**r[1], "PatID": "hosp A/2"}, *r[2:]], {}, 2, "PatID", "not a safe id"),
])
def test_bad_values_fail_naming_the_row_and_the_column(tmp_path, edit, columns, row, column, needle):
    path = _csv(tmp_path / "clin.csv", edit([dict(r) for r in ROWS]))
    with pytest.raises(InputDataError) as err:
        read_clinical_table_(path, sheet=_sheet(columns=columns), strict=False)
    msg = str(err.value)
    assert needle in msg and f"column {column!r}" in msg
    assert f"row {row} (" in msg


def test_rows_of_one_patient_that_agree_are_one_patient(tmp_path):
    df = read_clinical_table_(_csv(tmp_path / "c.csv", [*ROWS, ROWS[0]]), sheet=_sheet(), strict=False)
    assert df["patient_id"].tolist() == ["hospA-01", "hospA-02", "hospA-03", "hospA-04"]


def test_column_mapping_is_checked_by_the_config():
    with pytest.raises(ValueError, match="either diagnosis"):
        ClinicalColumns(diagnosis="dx", idh="IDH")
    with pytest.raises(ConfigError, match="time_unit"):
        parse_config({"sheet": {"time_unit": "weeks"}})
    with pytest.raises(ConfigError, match="sheet.slides and sheet.clinical"):
        parse_config({"cohort": "sheet"}).sheet_files()
    with pytest.raises(ConfigError, match="labels.molecular_table"):
        parse_config({"cohort": "sheet", "sheet": {"slides": "s.csv", "clinical": "c.csv"},
                      "labels": {"molecular_table": "m.tsv"}}).sheet_files()
    assert parse_config({"cohort": "sheet", "sheet": {"slides": "s.csv", "clinical": "c.csv"}}).sheet_files() == (
        "s.csv", "c.csv")


def _tcga_as_own_table(mol: pd.DataFrame) -> pd.DataFrame:
    """The shipped Ceccarelli table as a hospital might export it: own column names and vocabulary."""
    idh = mol["IDH/codel subtype"].map({"IDHwt": "wildtype", "IDHmut-codel": "mut", "IDHmut-non-codel": "mut"})
    codel = mol["IDH/codel subtype"].map({"IDHmut-codel": "codeleted", "IDHmut-non-codel": "no", "IDHwt": "no"})
    surv = mol["Overall Survival Status"].map({"1:DECEASED": "Deceased", "0:LIVING": "Living"})
    return pd.DataFrame({"id": mol["Patient ID"], "os_m": mol["Overall Survival (Months)"], "status": surv,
                         "idh": idh.fillna("NA"), "codel": codel.fillna(""), "grade": mol["Neoplasm Histologic Grade"],
                         "tert": mol["TERT promoter status"], "cna": mol["Chr 7 gain/Chr 10 loss"]})


@pytest.mark.parametrize("strict", [False, True])
def test_labels_from_markers_equal_the_tcga_route(tmp_path, strict):
    mol = read_molecular_table_(shipped_molecular_table())
    mol = mol.loc[mol["IDH/codel subtype"] != "NA"].reset_index(drop=True)  # the TCGA route reads IDH from it
    cases = [{"submitter_id": p, "project": {"project_id": "own"}, "demographic": {"vital_status": "Alive"},
              "diagnoses": [{"days_to_last_follow_up": 1.0}]} for p in mol["Patient ID"]]
    tcga = build_labels(cases=cases, molecular=mol, strict=strict, survival_source="molecular_table")
    path = tmp_path / "own.csv"
    _tcga_as_own_table(mol).to_csv(path, index=False)
    sheet = CohortSheetConfig(name="own", time_unit="months", columns=ClinicalColumns(
        patient_id="id", survival_time="os_m", event="status", idh="idh", codel="codel", histologic_grade="grade",
        tert="tert", gain7_loss10="cna"))
    own = finish_label_table(read_clinical_table_(path, sheet=sheet, strict=strict))
    assert len(own) == len(tcga) > 900
    cols = ["patient_id", "idh", "codel", "histologic_grade", "who2021_class", "who2021_grade", "diagnosis", "grade",
            "event"]
    pd.testing.assert_frame_equal(own[cols], tcga[cols], check_dtype=False)
    np.testing.assert_allclose(own["time_days"], tcga["time_days"], rtol=1e-12)
    assert set(own["who2021_class"].dropna()) == {"astrocytoma_idhmut", "oligodendroglioma_idhmut_codel",
                                                  "glioblastoma_idhwt", *(["nec"] if strict else [])}


def test_labels_build_verb_writes_the_label_table_contract(tmp_path):
    clin = _csv(tmp_path / "clin.csv", ROWS)
    cfg = tmp_path / "config.yaml"
    cfg.write_text(yaml.safe_dump({"cohort": "sheet", "sheet": {"slides": "slides.csv", "clinical": str(clin),
                                                                "time_unit": "months", "columns": COLUMNS}}))
    out = tmp_path / "labels.tsv"
    assert main(["labels", "build", "--config", str(cfg), "--clinical", str(clin), "--out", str(out)]) == 0
    labels = read_label_table_(out)
    assert labels["patient_id"].tolist() == ["hospA-01", "hospA-02", "hospA-03", "hospA-04"]
    assert labels["diagnosis"].tolist() == [2, 1, 0, -1]
