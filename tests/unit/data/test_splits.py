import json

import numpy as np
import pandas as pd
import pytest

from gliofuse.data.cohort import build_cohort
from gliofuse.data.splits import (
    REPEAT_KEYS,
    SPLIT_KEYS,
    Split,
    check_repeats,
    check_split,
    derive_repeat_seed,
    make_splits,
    read_split_,
    write_splits_,
)
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


# --- repeated cross-validation (data.n_repeats) ---
def _repeated(n_repeats=3, seed=5, n=41):
    return make_splits(_cohort(n=n), n_folds=4, val_fraction=0.15, stratify_by="diagnosis", seed=seed,
                       n_repeats=n_repeats)


def test_each_repeat_partitions_the_cohort_without_leakage():
    cohort = set(_cohort()["patient_id"])
    splits = _repeated()
    assert [s.fold for s in splits] == list(range(12))
    check_repeats(splits, source="mem")
    for repeat in range(3):
        folds = [s for s in splits if s.repeat == repeat]
        assert [s.fold_in_repeat for s in folds] == [0, 1, 2, 3]
        tests = [set(s.test) for s in folds]
        assert set().union(*tests) == cohort and sum(len(t) for t in tests) == len(cohort)
        for s in folds:
            check_split(s, source="mem")
            assert set(s.train).isdisjoint(s.val) and set(s.train).isdisjoint(s.test) and set(s.val).isdisjoint(s.test)
            assert set(s.train) | set(s.val) | set(s.test) == cohort


def test_repeat_zero_is_the_unrepeated_split_and_repeats_differ():
    single = make_splits(_cohort(), n_folds=4, val_fraction=0.15, stratify_by="diagnosis", seed=5)
    splits = _repeated()
    first = splits[:4]
    assert [(s.train, s.val, s.test) for s in first] == [(s.train, s.val, s.test) for s in single]
    assert [s.to_json() for s in single] == [{k: v for k, v in s.to_json().items() if k not in REPEAT_KEYS}
                                             for s in first]
    tests = {r: [s.test for s in splits if s.repeat == r] for r in range(3)}
    assert tests[0] != tests[1] and tests[1] != tests[2] and tests[0] != tests[2]
    seeds = [s.effective_repeat_seed for s in splits[::4]]
    assert seeds[0] == 5 and len(set(seeds)) == 3
    assert seeds == [derive_repeat_seed(5, r) for r in range(3)]


def test_unrepeated_split_json_has_exactly_the_original_keys():
    s = make_splits(_cohort(), n_folds=3, val_fraction=0.1, stratify_by="grade", seed=1)[0]
    assert list(s.to_json()) == list(SPLIT_KEYS)


def test_repeated_splits_are_reproducible_and_roundtrip_with_their_seeds(tmp_path):
    splits = _repeated(n_repeats=2)
    assert splits == _repeated(n_repeats=2)
    paths = [tmp_path / f"fold_{i}.json" for i in range(8)]
    write_splits_(splits, out_paths=paths)
    raw = json.loads(paths[6].read_text())
    assert (raw["repeat"], raw["n_repeats"], raw["fold_in_repeat"], raw["fold"]) == (1, 2, 2, 6)
    assert raw["repeat_seed"] == derive_repeat_seed(5, 1) and raw["seed"] == 5
    assert [read_split_(p) for p in paths] == splits
    # the saved repeat seed redraws the repeat's folds
    again = make_splits(_cohort(), n_folds=4, val_fraction=0.15, stratify_by="diagnosis", seed=raw["repeat_seed"])
    assert [s.test for s in again] == [s.test for s in splits[4:]]


def test_inconsistent_repeat_keys_are_rejected(tmp_path):
    split = _repeated(n_repeats=2)[5]
    raw = split.to_json()
    path = tmp_path / "fold_5.json"
    path.write_text(json.dumps({**raw, "fold_in_repeat": 2}))
    with pytest.raises(InputDataError, match="fold = repeat \\* n_folds \\+ fold_in_repeat"):
        read_split_(path)
    path.write_text(json.dumps({k: v for k, v in raw.items() if k != "repeat_seed"}))
    with pytest.raises(InputDataError, match="lacks \\['repeat_seed'\\]"):
        read_split_(path)


def test_check_repeats_rejects_overlapping_test_sets_and_missing_folds():
    splits = _repeated(n_repeats=2)
    with pytest.raises(InputDataError, match="expected folds 0..7"):
        check_repeats(splits[:-1], source="mem")
    a, b = splits[4], splits[5]
    leaky = Split(fold=b.fold, n_folds=4, seed=5, stratify_by="diagnosis", train=b.train, val=b.val,
                  test=(*b.test, a.test[0]), repeat=1, n_repeats=2, repeat_seed=b.repeat_seed)
    with pytest.raises(InputDataError, match="test sets of two folds of repeat 1"):
        check_repeats([*splits[:5], leaky, *splits[6:]], source="mem")
