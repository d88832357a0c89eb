"""Cohort membership from WSI and features status (contract §7) and the ``gliofuse data splits`` verb."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest

from gliofuse.cli import main
from gliofuse.cohorts.sheet import tcga_patient_id
from gliofuse.data.cohort import (
    build_cohort,
    check_failed_slides,
    cohort_members,
    cohort_table,
    failed_slides,
)
from gliofuse.data.splits import read_split_
from gliofuse.errors import InputDataError
from gliofuse.labels.tables import LABEL_COLUMNS


def _status(folder: Path, slide_id: str, status: str, n: int, **extra) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    p = folder / f"{slide_id}.json"
    p.write_text(json.dumps({"slide_id": slide_id, "status": status, "n_patches": n, **extra}))
    return p


def _slide(patient: str, k: int = 1) -> str:
    return f"{patient}-01Z-00-DX{k}.{k:04X}"


P_GOOD, P_MIXED, P_FAILED, P_SKIPPED, P_NO_OMICS = (f"TCGA-AA-000{i}" for i in range(1, 6))
# (slide, wsi status, wsi patches, features status or None for no features status file)
SLIDES = [
    (_slide(P_GOOD), "ok", 5, "ok"),
    (_slide(P_MIXED, 1), "ok", 4, "failed"),
    (_slide(P_MIXED, 2), "ok", 3, "ok"),
    (_slide(P_FAILED), "ok", 6, "failed"),
    (_slide(P_SKIPPED), "skipped", 0, "skipped"),
    (_slide(P_NO_OMICS), "ok", 2, "ok"),
]


@pytest.fixture
def statuses(tmp_path: Path) -> tuple[list[Path], list[Path]]:
    wsi, feats = [], []
    for sid, st, n, fst in SLIDES:
        wsi.append(_status(tmp_path / "wsi", sid, st, n))
        if fst is not None:
            feats.append(_status(tmp_path / "feat", sid, fst, n if fst == "ok" else 0, encoder="test_resnet",
                                 reason="too many unreadable patches" if fst == "failed" else ""))
    return wsi, feats


def _labels(patients: list[str]) -> pd.DataFrame:
    n = len(patients)
    return pd.DataFrame({"patient_id": patients, "diagnosis": [i % 3 for i in range(n)],
                         "event": [i % 2 for i in range(n)]})


PATIENTS = [P_GOOD, P_MIXED, P_FAILED, P_SKIPPED, P_NO_OMICS]
OMICS = [P_GOOD, P_MIXED, P_FAILED, P_SKIPPED]
PATIENT_OF = {sid: tcga_patient_id(sid) for sid, *_ in SLIDES}


def _sheet(path: Path, slide_ids: list[str], patient_of=tcga_patient_id) -> Path:
    """A slide sheet (the file paths are not read by ``data splits``)."""
    pd.DataFrame({"patient_id": [patient_of(s) for s in slide_ids], "slide_id": slide_ids,
                  "slide_path": [f"slides/{s}.svs" for s in slide_ids]}).to_csv(path, sep="\t", index=False)
    return path


def test_the_patient_of_a_slide_comes_from_the_sheet_not_the_slide_name(statuses, caplog):
    wsi, _ = statuses
    own = {sid: ("patient_b" if sid == _slide(P_GOOD) else PATIENT_OF[sid]) for sid in PATIENT_OF}
    table = cohort_table(labels=_labels([*PATIENTS, "patient_b"]), slide_status_paths=wsi,
                         omics_patients=[*OMICS, "patient_b"], slide_patients=own).set_index("patient_id")
    assert table.loc["patient_b", "slide_ids"] == _slide(P_GOOD) and table.loc["patient_b", "in_cohort"] == 1
    assert table.loc[P_GOOD, "reason"] == "no_ok_slide"  # its only slide belongs to patient_b in the sheet
    with caplog.at_level(logging.WARNING, logger="gliofuse.data.cohort"):
        cohort_table(labels=_labels(PATIENTS), slide_status_paths=wsi, omics_patients=OMICS, slide_patients=own)
    assert "1 patient(s) of the slide sheet have no label row and are left out" in caplog.text
    assert "patient_b" in caplog.text
    with pytest.raises(InputDataError, match=f"slide '{_slide(P_GOOD)}' has a status file but no row in the slide"):
        cohort_table(labels=_labels(PATIENTS), slide_status_paths=wsi, omics_patients=OMICS,
                     slide_patients={k: v for k, v in PATIENT_OF.items() if k != _slide(P_GOOD)})


def test_failed_features_drop_the_slide_and_a_patient_without_another(statuses, caplog):
    wsi, feats = statuses
    with caplog.at_level(logging.INFO, logger="gliofuse.data.cohort"):
        table = cohort_table(labels=_labels(PATIENTS), slide_status_paths=wsi, omics_patients=OMICS, slide_patients=PATIENT_OF,
                             feature_status_paths=feats)
    t = table.set_index("patient_id")
    assert list(table["patient_id"]) == sorted(PATIENTS)
    assert t.loc[P_MIXED, "slide_ids"] == _slide(P_MIXED, 2)  # the good slide is kept, the failed one dropped
    assert t.loc[P_MIXED, "in_cohort"] == 1 and t.loc[P_MIXED, "reason"] == ""
    assert t.loc[P_FAILED, "slide_ids"] == "" and t.loc[P_FAILED, "in_cohort"] == 0
    assert t.loc[P_FAILED, "reason"] == "features_failed"
    assert t.loc[P_SKIPPED, "reason"] == "no_ok_slide"
    assert t.loc[P_NO_OMICS, "reason"] == "no_omics" and t.loc[P_NO_OMICS, "slide_ids"] == _slide(P_NO_OMICS)
    assert list(table.columns[:5]) == ["patient_id", "slide_ids", "has_omics", "in_cohort", "reason"]
    assert {"diagnosis", "event"} <= set(table.columns)
    assert cohort_members(table)["patient_id"].tolist() == [P_GOOD, P_MIXED]
    log = caplog.text
    assert "2 slide(s) with ok patches have no usable features (2 failed)" in log
    assert "1 features_failed" in log and "1 no_ok_slide" in log and "1 no_omics" in log
    assert f"feature extraction failed on all their slides: {P_FAILED}" in log


def test_without_features_status_only_the_wsi_status_counts(statuses):
    wsi, _ = statuses
    cohort = build_cohort(labels=_labels(PATIENTS), slide_status_paths=wsi, omics_patients=OMICS, slide_patients=PATIENT_OF)
    assert cohort["patient_id"].tolist() == [P_GOOD, P_MIXED, P_FAILED]
    assert cohort.set_index("patient_id").loc[P_MIXED, "slide_ids"] == f"{_slide(P_MIXED, 1)};{_slide(P_MIXED, 2)}"
    assert (cohort["in_cohort"] == 1).all() and (cohort["reason"] == "").all()


def test_a_slide_without_features_status_is_not_usable(statuses):
    wsi, feats = statuses
    feats = [p for p in feats if p.stem != _slide(P_GOOD)]
    table = cohort_table(labels=_labels(PATIENTS), slide_status_paths=wsi, omics_patients=OMICS, slide_patients=PATIENT_OF,
                         feature_status_paths=feats).set_index("patient_id")
    assert table.loc[P_GOOD, "in_cohort"] == 0 and table.loc[P_GOOD, "reason"] == "features_failed"


def test_several_reasons_are_joined(statuses):
    wsi, feats = statuses
    table = cohort_table(labels=_labels(PATIENTS), slide_status_paths=wsi, omics_patients=[P_GOOD], slide_patients=PATIENT_OF,
                         feature_status_paths=feats).set_index("patient_id")
    assert table.loc[P_FAILED, "reason"] == "features_failed;no_omics"
    assert table.loc[P_SKIPPED, "reason"] == "no_ok_slide;no_omics"


def _label_table(path: Path, patients: list[str]) -> Path:
    n = len(patients)
    df = pd.DataFrame({c: [""] * n for c in LABEL_COLUMNS})
    df["patient_id"] = patients
    df["project"] = "TCGA-LGG"
    df["time_days"] = [100.0 + 10 * i for i in range(n)]
    df["event"] = [i % 2 for i in range(n)]
    df["diagnosis"] = [i % 3 for i in range(n)]
    df["grade"] = [i % 3 for i in range(n)]
    df.to_csv(path, sep="\t", index=False)
    return path


def _expression(path: Path, patients: list[str]) -> Path:
    with h5py.File(path, "w") as f:
        f["values"] = np.ones((len(patients), 3), dtype=np.float32)
        f["patients"] = np.array(patients, dtype="S")
        f["genes"] = np.array(["ENSG1", "ENSG2", "ENSG3"], dtype="S")
        f["gene_names"] = np.array(["A", "B", "C"], dtype="S")
    return path


def test_data_splits_verb_leaves_out_failed_features(tmp_path, statuses):
    wsi, feats = statuses
    extra = [f"TCGA-BB-{i:04d}" for i in range(1, 8)]  # enough patients for 2 folds
    for p in extra:
        wsi.append(_status(tmp_path / "wsi", _slide(p), "ok", 3))
        feats.append(_status(tmp_path / "feat", _slide(p), "ok", 3))
    labels = _label_table(tmp_path / "labels.tsv", PATIENTS + extra)
    omics = _expression(tmp_path / "expression.h5", OMICS + extra)
    cfg = tmp_path / "config.yaml"
    cfg.write_text("seed: 3\ndata: {n_folds: 2, val_fraction: 0.2, stratify_by: none}\n")
    out = tmp_path / "splits"
    folds = [out / "fold_0.json", out / "fold_1.json"]
    sheet = _sheet(tmp_path / "slides.tsv", [p.stem for p in wsi])
    args = ["data", "splits", "--config", str(cfg), "--labels", str(labels), "--omics", str(omics),
            "--slides", str(sheet), "--slide-status", *map(str, wsi), "--out-cohort", str(out / "cohort.tsv"), "--out-folds", *map(str, folds)]

    assert main([*args, "--feature-status", *map(str, feats)]) == 0
    cohort = pd.read_csv(out / "cohort.tsv", sep="\t", dtype={"reason": str}, keep_default_na=False)
    members = set(cohort.loc[cohort["in_cohort"] == 1, "patient_id"])
    assert members == {P_GOOD, P_MIXED, *extra}
    assert cohort.set_index("patient_id").loc[P_FAILED, "reason"] == "features_failed"
    in_splits = set().union(*(set(read_split_(f).test) for f in folds))
    assert in_splits == members  # the test sets partition the cohort members only

    assert main(args) == 0  # without --feature-status the failed slide's patient stays in
    cohort = pd.read_csv(out / "cohort.tsv", sep="\t")
    assert P_FAILED in set(cohort.loc[cohort["in_cohort"] == 1, "patient_id"])
    assert P_FAILED in set().union(*(set(read_split_(f).test) for f in folds))


UNREADABLE = "unreadable: slide file slides/x.svs is empty (0 bytes); re-download it"


def test_failed_slides_name_the_stage_and_reason(statuses):
    wsi, feats = statuses
    wsi.append(_status(wsi[0].parent, _slide(P_GOOD, 2), "failed", 0, reason=UNREADABLE, stage="wsi_patch"))
    got = failed_slides(wsi, feats)
    assert set(got) == {_slide(P_GOOD, 2), _slide(P_MIXED, 1), _slide(P_FAILED)}
    assert got[_slide(P_GOOD, 2)] == f"wsi_patch: {UNREADABLE}"
    assert got[_slide(P_FAILED)].endswith("too many unreadable patches")
    assert failed_slides(wsi[:1]) == {}


def test_check_failed_slides_stops_above_the_fraction(statuses, caplog):
    wsi, feats = statuses  # 2 of 6 slides failed (features)
    with caplog.at_level(logging.WARNING, logger="gliofuse.data.cohort"):
        assert len(check_failed_slides(wsi, feats, max_fraction=0.5)) == 2
    assert "2 of 6 slide(s) failed and are left out" in caplog.text and _slide(P_FAILED) in caplog.text
    with pytest.raises(InputDataError, match=r"2 of 6 slides failed \(33%, more than data.max_failed_slide_fraction=0.3\)") as e:
        check_failed_slides(wsi, feats, max_fraction=0.3)
    assert _slide(P_FAILED) in str(e.value) and _slide(P_MIXED, 1) in str(e.value)
    assert "raise data.max_failed_slide_fraction" in str(e.value) and "Re-download" in str(e.value)
    assert check_failed_slides(wsi, None, max_fraction=0.0) == {}  # no WSI failure, features not given


def test_data_splits_verb_drops_a_patient_whose_slide_is_unreadable(tmp_path):
    patients = [f"TCGA-CC-{i:04d}" for i in range(1, 9)]
    wsi, feats = [], []
    for p in patients:
        bad = p == patients[0]
        wsi.append(_status(tmp_path / "wsi", _slide(p), "failed" if bad else "ok", 0 if bad else 3,
                           reason=UNREADABLE if bad else "", stage="wsi_patch"))
        feats.append(_status(tmp_path / "feat", _slide(p), "skipped" if bad else "ok", 0 if bad else 3))
    labels = _label_table(tmp_path / "labels.tsv", patients)
    omics = _expression(tmp_path / "expression.h5", patients)
    out = tmp_path / "splits"
    folds = [out / "fold_0.json", out / "fold_1.json"]
    cfg = tmp_path / "config.yaml"
    sheet = _sheet(tmp_path / "slides.tsv", [p.stem for p in wsi])

    def run(max_fraction: float) -> int:
        cfg.write_text(f"seed: 3\ndata: {{n_folds: 2, stratify_by: none, max_failed_slide_fraction: {max_fraction}}}\n")
        return main(["data", "splits", "--config", str(cfg), "--labels", str(labels), "--omics", str(omics),
                     "--slides", str(sheet), "--slide-status", *map(str, wsi), "--feature-status", *map(str, feats),
                     "--out-cohort", str(out / "cohort.tsv"), "--out-folds", *map(str, folds)])

    assert run(0.1) == 1 and not (out / "cohort.tsv").exists()  # 1 of 8 > 10 %: stop, nothing written
    assert run(0.2) == 0
    cohort = pd.read_csv(out / "cohort.tsv", sep="\t", keep_default_na=False).set_index("patient_id")
    assert cohort.loc[patients[0], "in_cohort"] == 0 and cohort.loc[patients[0], "reason"] == "no_ok_slide"
    assert set().union(*(set(read_split_(f).test) for f in folds)) == set(patients[1:])


def test_data_splits_verb_writes_k_times_r_repeated_folds(tmp_path):
    patients = [f"TCGA-DD-{i:04d}" for i in range(1, 11)]
    wsi = [_status(tmp_path / "wsi", _slide(p), "ok", 3) for p in patients]
    feats = [_status(tmp_path / "feat", _slide(p), "ok", 3) for p in patients]
    labels = _label_table(tmp_path / "labels.tsv", patients)
    omics = _expression(tmp_path / "expression.h5", patients)
    cfg = tmp_path / "config.yaml"
    cfg.write_text("seed: 3\ndata: {n_folds: 2, n_repeats: 3, val_fraction: 0.2, stratify_by: none}\n")
    out = tmp_path / "splits"
    sheet = _sheet(tmp_path / "slides.tsv", [p.stem for p in wsi])
    args = ["data", "splits", "--config", str(cfg), "--labels", str(labels), "--omics", str(omics),
            "--slides", str(sheet), "--slide-status", *map(str, wsi), "--feature-status", *map(str, feats), "--out-cohort",
            str(out / "cohort.tsv"), "--out-folds"]
    assert main([*args, *(str(out / f"fold_{i}.json") for i in range(2))]) == 2  # k files for k x r folds
    folds = [out / f"fold_{i}.json" for i in range(6)]
    assert main([*args, *map(str, folds)]) == 0
    splits = [read_split_(f) for f in folds]
    assert [(s.repeat, s.fold_in_repeat) for s in splits] == [(0, 0), (0, 1), (1, 0), (1, 1), (2, 0), (2, 1)]
    for r in range(3):
        tests = [set(s.test) for s in splits if s.repeat == r]
        assert tests[0].isdisjoint(tests[1]) and tests[0] | tests[1] == set(patients)
    assert len({s.effective_repeat_seed for s in splits}) == 3 and splits[0].effective_repeat_seed == 3
