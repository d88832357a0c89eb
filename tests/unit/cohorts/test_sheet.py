"""The slide sheet (gliofuse.cohorts.sheet): reading, the errors naming row and column, the workflow's copy."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import yaml

from gliofuse.cli import main
from gliofuse.cohorts.sheet import (
    SAFE_ID_PATTERN,
    SHEET_COLUMNS,
    read_slide_sheet_,
    slide_patients,
    tcga_patient_id,
    tcga_slide_sheet,
)
from gliofuse.errors import InputDataError
from tests.conftest import REPO


def _files(folder: Path, *names: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for n in names:
        (folder / n).write_bytes(b"slide")


def _write(path: Path, rows: list[dict], sep: str = ",") -> Path:
    pd.DataFrame(rows).to_csv(path, sep=sep, index=False)
    return path


ROWS = [
    {"patient_id": "P1", "slide_id": "hospA_001", "slide_path": "slides/hospA_001.tiff"},
    {"patient_id": "P1", "slide_id": "hospA_002", "slide_path": "slides/hospA_002.ndpi"},
    {"patient_id": "P2", "slide_id": "hospA_003", "slide_path": "slides/hospA_003.svs"},
]


@pytest.fixture
def cohort(tmp_path: Path) -> Path:
    _files(tmp_path / "slides", "hospA_001.tiff", "hospA_002.ndpi", "hospA_003.svs")
    return tmp_path


def test_reads_a_csv_sheet_resolving_paths_against_its_folder(cohort):
    df = read_slide_sheet_(_write(cohort / "slides.csv", ROWS))
    assert list(df.columns) == list(SHEET_COLUMNS)
    assert df["slide_path"].tolist() == [str(cohort / r["slide_path"]) for r in ROWS]
    assert slide_patients(df) == {"hospA_001": "P1", "hospA_002": "P1", "hospA_003": "P2"}
    tsv = read_slide_sheet_(_write(cohort / "slides.tsv", ROWS, sep="\t"))
    assert tsv.equals(df)


@pytest.mark.parametrize("edit,row,column,needle", [
    (lambda rows: [{k: v for k, v in r.items() if k != "slide_path"} for r in rows], 0, "slide_path", "missing"),
    (lambda rows: [*rows, {**rows[0], "slide_path": "slides/hospA_002.ndpi"}], 4, "slide_id", "duplicate slide id"),
    (lambda rows: [rows[0], {**rows[1], "slide_path": "slides/nope.svs"}, rows[2]], 2, "slide_path", "does not exist"),
    (lambda rows: [rows[0], rows[1], {**rows[2], "slide_id": "../etc/x"}], 3, "slide_id", "not a safe id"),
    (lambda rows: [rows[0], {**rows[1], "patient_id": "patient 1"}, rows[2]], 2, "patient_id", "not a safe id"),
    (lambda rows: [rows[0], {**rows[1], "slide_id": "hospA_009", "slide_path": "slides/hospA_001.tiff"}, rows[2]],
     2, "slide_path", "also the file of row 1"),
    (lambda rows: [rows[0], {**rows[1], "patient_id": ""}, rows[2]], 2, "patient_id", "empty"),
])
def test_a_bad_sheet_fails_naming_the_row_and_the_column(cohort, edit, row, column, needle):
    path = _write(cohort / "slides.csv", edit([dict(r) for r in ROWS]))
    with pytest.raises(InputDataError) as err:
        read_slide_sheet_(path)
    msg = str(err.value)
    assert needle in msg
    assert f"row {row}" in msg if row else "row 0 (header line 1)" in msg
    assert repr(column) in msg or column in msg


def test_a_missing_file_passes_when_files_are_not_checked(cohort):
    rows = [ROWS[0], {**ROWS[1], "slide_path": "slides/nope.svs"}]
    assert len(read_slide_sheet_(_write(cohort / "slides.csv", rows), check_files=False)) == 2


def test_tcga_sheet_takes_the_patient_from_the_barcode_and_refuses_other_names(tmp_path):
    df = tcga_slide_sheet([tmp_path / "TCGA-02-0001-01Z-00-DX1.ABC.svs", tmp_path / "TCGA-02-0001-01Z-00-DX2.D.svs"])
    assert df["patient_id"].tolist() == ["TCGA-02-0001", "TCGA-02-0001"]
    assert tcga_patient_id("TCGA-DU-6404-01A-01-TS1") == "TCGA-DU-6404"
    with pytest.raises(InputDataError, match="hospA_001.*not named by a TCGA barcode"):
        tcga_slide_sheet([tmp_path / "hospA_001.svs"])


def test_cohort_sheet_verb_writes_a_copy_that_reads_back_to_the_same_files(cohort, tmp_path):
    sheet = _write(cohort / "slides.csv", ROWS)
    out = tmp_path / "results" / "cohort" / "slides.tsv"
    assert main(["cohort", "sheet", "--sheet", str(sheet), "--out", str(out)]) == 0
    copy = read_slide_sheet_(out)
    assert [Path(p).resolve() for p in copy["slide_path"]] == [(cohort / r["slide_path"]).resolve() for r in ROWS]
    assert not any(Path(p).is_absolute() for p in pd.read_csv(out, sep="\t")["slide_path"])
    bad = _write(cohort / "bad.csv", [*ROWS, ROWS[0]])
    assert main(["cohort", "sheet", "--sheet", str(bad), "--out", str(tmp_path / "x.tsv")]) == 1
    assert not (tmp_path / "x.tsv").exists()


def test_the_json_schema_uses_the_package_id_pattern():
    schema = yaml.safe_load((REPO / "workflow" / "schemas" / "slides.schema.yaml").read_text())
    assert schema["required"] == list(SHEET_COLUMNS)
    for col in ("patient_id", "slide_id"):
        assert schema["properties"][col]["pattern"] == f"^{SAFE_ID_PATTERN}$"


def test_cohort_check_verb_reports_both_files_and_patients_without_clinical_rows(cohort, tmp_path, capsys):
    sheet = _write(cohort / "slides.csv", ROWS)
    clinical = cohort / "clinical.csv"
    clinical.write_text("PatID,days,dead\nP1,100,1\n")
    cfg = tmp_path / "config.yaml"
    cfg.write_text(yaml.safe_dump({"cohort": "sheet", "sheet": {"slides": str(sheet), "clinical": str(clinical),
               "columns": {"patient_id": "PatID", "survival_time": "days", "event": "dead"}}}))
    assert main(["cohort", "check", "--config", str(cfg)]) == 0
    out = capsys.readouterr().out
    assert "3 slides of 2 patients" in out and "1 patients; survival 1" in out
    assert "1 patient(s) with slides but no clinical row (left out): ['P2']" in out
    cfg.write_text(yaml.safe_dump({"cohort": "sheet", "sheet": {"slides": str(sheet)}}))
    assert main(["cohort", "check", "--config", str(cfg)]) == 2  # ConfigError: sheet.clinical unset
