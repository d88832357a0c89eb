import json

import numpy as np
import pandas as pd
import pytest

from gliofuse.data.cohort import build_cohort
from gliofuse.data.splits import Split, check_split, make_splits, read_split_, write_splits_
from gliofuse.errors import InputDataError


def _cohort(n=41, seed=0):
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"patient_id": [f"TCGA-AA-{i:04d}" for i in range(n)],
                         "diagnosis": rng.choice([0, 1, 2], size=n, p=[0.3, 0.2, 0.5]),
                         "grade": rng.choice([0, 1, 2], size=n), "event": rng.integers(0, 2, n)})


def test_splits_partition_patients_without_leakage():
    cohort = _cohort()
    splits = make_splits(cohort, n_folds=5, val_fraction=0.2, stratify_by="diagnosis", seed=3)
    tests = [set(s.test) for s in splits]
    assert set().union(*tests) == set(cohort["patient_id"])
    assert sum(len(t) for t in tests) == len(cohort)
    for s in splits:
        check_split(s, source="mem")
        assert set(s.train) | set(s.val) | set(s.test) == set(cohort["patient_id"])
        assert len(s.val) > 0


def test_splits_are_stratified_and_deterministic():
    cohort = _cohort(n=100)
    a = make_splits(cohort, n_folds=5, val_fraction=0.1, stratify_by="diagnosis", seed=7)
    b = make_splits(cohort, n_folds=5, val_fraction=0.1, stratify_by="diagnosis", seed=7)
    c = make_splits(cohort, n_folds=5, val_fraction=0.1, stratify_by="diagnosis", seed=8)
    assert a == b and a != c
    diag = cohort.set_index("patient_id")["diagnosis"]
    overall = diag.value_counts(normalize=True)
    for s in a:
        frac = diag.loc[list(s.test)].value_counts(normalize=True)
        assert (frac - overall).abs().max() < 0.1


def test_too_few_patients_names_the_key():
    with pytest.raises(InputDataError, match="data.n_folds=5"):
        make_splits(_cohort(n=7), n_folds=5, val_fraction=0.1, stratify_by="diagnosis", seed=0)


def test_leaky_split_file_is_rejected(tmp_path):
    s = Split(fold=0, n_folds=2, seed=0, stratify_by="none", train=("A", "B"), val=(), test=("B",))
    (tmp_path / "f.json").write_text(json.dumps(s.to_json()))
    with pytest.raises(InputDataError, match="in both 'train' and 'test'"):
        read_split_(tmp_path / "f.json")


def test_split_roundtrip(tmp_path):
    splits = make_splits(_cohort(), n_folds=3, val_fraction=0.1, stratify_by="grade", seed=1)
    paths = [tmp_path / f"fold_{k}.json" for k in range(3)]
    write_splits_(splits, out_paths=paths)
    assert [read_split_(p) for p in paths] == splits


def test_cohort_requires_ok_slide_and_omics(tmp_path):
    labels = pd.DataFrame({"patient_id": ["TCGA-AA-0001", "TCGA-AA-0002", "TCGA-AA-0003"], "diagnosis": [0, 1, 2]})
    st = []
    for sid, status, n in [("TCGA-AA-0001-01Z-00-DX1.X", "ok", 5), ("TCGA-AA-0001-01Z-00-DX2.Y", "ok", 3),
                           ("TCGA-AA-0002-01Z-00-DX1.Z", "skipped", 0), ("TCGA-AA-0003-01Z-00-DX1.W", "ok", 4)]:
        p = tmp_path / f"{sid}.json"
        p.write_text(json.dumps({"slide_id": sid, "status": status, "n_patches": n}))
        st.append(p)
    cohort = build_cohort(labels=labels, slide_status_paths=st, omics_patients=["TCGA-AA-0001", "TCGA-AA-0002"],
                          slide_patients={p.stem: p.stem[:12] for p in st})
    assert cohort["patient_id"].tolist() == ["TCGA-AA-0001"]
    assert cohort["slide_ids"].iloc[0] == "TCGA-AA-0001-01Z-00-DX1.X;TCGA-AA-0001-01Z-00-DX2.Y"
