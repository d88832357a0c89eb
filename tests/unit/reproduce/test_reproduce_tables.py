"""Loaders of the published TCGA-GBMLGG tables: counts and label coding checked against the folders' READMEs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from gliofuse.errors import InputDataError
from gliofuse.reproduce.tables import (
    load_mcat_,
    load_pathomic_fusion_,
    mcat_bin_edges,
    mcat_patients_,
    signature_features,
)
from gliofuse.tasks import DAYS_PER_MONTH


def _table_dir(shared_data: Path, folder: str, table: str) -> Path:
    """``shared_data/folder``; fails (never skips) when its main table is missing."""
    path = shared_data / folder
    if not (path / table).exists():
        pytest.fail(f"{path}/{table} is missing: the published {folder} tables are needed")
    return path


@pytest.fixture(scope="module")
def pf_dir(shared_data: Path) -> Path:
    return _table_dir(shared_data, "pathomic_fusion_gbmlgg", "all_dataset.csv")


@pytest.fixture(scope="module")
def mcat_dir(shared_data: Path) -> Path:
    return _table_dir(shared_data, "mcat_porpoise_gbmlgg", "tcga_gbmlgg_all_clean.csv.zip")


@pytest.fixture(scope="module")
def pf(pf_dir: Path):
    return load_pathomic_fusion_(pf_dir)


@pytest.fixture(scope="module")
def mcat(mcat_dir: Path):
    return load_mcat_(mcat_dir)


def test_pf_counts_and_label_coding(pf, pf_dir: Path) -> None:
    assert len(pf.patients) == 769 and list(pf.patients) == sorted(pf.patients)
    assert pf.features.shape == (769, 80)
    assert pf.feature_names[:2] == ("codeletion", "idh mutation")
    # censored = 1 means alive: 388 deaths, 381 censored, and deaths are exactly the 'Deceased' patients
    assert int(pf.event.sum()) == 388 and int((pf.event == 0).sum()) == 381
    grade = pd.read_csv(pf_dir / "grade_data.csv").set_index("TCGA ID").loc[list(pf.patients)]
    np.testing.assert_array_equal(pf.event == 1, (grade["Vital status"] == "Deceased").to_numpy())
    # grade 2/3/4 -> 0/1/2 with 181/205/350 and 33 missing
    assert np.bincount(pf.grade[pf.grade >= 0]).tolist() == [181, 205, 350]
    assert int((pf.grade == -1).sum()) == 33
    # 'Survival months' holds days: median ~523, max 6423
    assert np.median(pf.time_days) == pytest.approx(523, abs=1)
    assert pf.time_days.max() == pytest.approx(6423)
    assert int(pf.weight.sum()) == 1506  # ROIs (Region count)
    # 72 patients lack the molecular subtype; they are exactly those missing idh mutation and codeletion
    assert int((~pf.usable).sum()) == 72
    np.testing.assert_array_equal(~pf.usable, np.isnan(pf.features[:, :2]).all(axis=1))
    assert int(pf.task_mask("survival").sum()) == 697
    assert int(pf.task_mask("grade").sum()) == 664


def test_pf_splits_are_the_15_randomisations(pf) -> None:
    assert [s.index for s in pf.splits] == list(range(1, 16))
    everyone = set(pf.patients)
    for s in pf.splits:
        assert (len(s.train), len(s.test)) == (616, 153)
        assert not set(s.train) & set(s.test)
        assert set(s.train) | set(s.test) == everyone
    assert pf.splits[0].test != pf.splits[1].test


def test_mcat_counts_folds_and_coding(mcat, mcat_dir: Path) -> None:
    assert len(mcat.patients) == 569
    # censorship = 1 means censored: 187 events, 382 censored per patient
    assert int(mcat.event.sum()) == 187 and int((mcat.event == 0).sum()) == 382
    sizes = [(len(s.train), len(s.test)) for s in mcat.splits]
    assert sizes == [(455, 114)] * 4 + [(456, 113)]  # the README's "455/114 per fold" is off by one for fold 4
    vals = [set(s.test) for s in mcat.splits]
    assert set().union(*vals) == set(mcat.patients) and sum(map(len, vals)) == 569  # val folds partition
    for s in mcat.splits:
        assert not set(s.train) & set(s.test)
    # months -> days
    assert mcat.time_days.min() / DAYS_PER_MONTH == pytest.approx(0.03, abs=0.005)
    assert mcat.time_days.max() / DAYS_PER_MONTH == pytest.approx(211.0, abs=0.05)
    # signature genes: 1573 of the 1590 genomic columns; IDH1 is in this signatures.csv (Oncogenes)
    assert mcat.features.shape == (569, 1573)
    assert {"IDH1_mut", "IDH1_rnaseq"} <= set(mcat.feature_names)
    no_idh = load_mcat_(mcat_dir, exclude_genes=["IDH1"])
    assert no_idh.features.shape[1] == 1571 and not any(c.startswith("IDH1_") for c in no_idh.feature_names)
    cnv_mut = load_mcat_(mcat_dir, feature_types=["cnv", "mut"])
    assert all(c.endswith(("_cnv", "_mut")) for c in cnv_mut.feature_names) and cnv_mut.features.shape[1] < 50


def test_mcat_bins_match_the_published_edges(mcat) -> None:
    edges = mcat_bin_edges(mcat.time_days / DAYS_PER_MONTH, mcat.event)
    np.testing.assert_allclose(edges[1:-1], [9.365, 16.82, 32.815], atol=1e-3)
    assert edges[0] < mcat.time_days.min() / DAYS_PER_MONTH < edges[1]
    assert edges[-1] > mcat.time_days.max() / DAYS_PER_MONTH


def test_pf_patients_with_rnaseq(pf, mcat_dir: Path) -> None:
    with_rna = mcat_patients_(mcat_dir)
    assert len(with_rna) == 569
    assert len(set(pf.patients) & with_rna) == 490


def test_signature_features_filters_by_gene_family() -> None:
    sig = pd.DataFrame({"Oncogenes": ["EGFR", "IDH1", None], "Kinases": ["EGFR", "CDK4", "MET"]})
    cols = ["EGFR_cnv", "IDH1_mut", "TP53_mut", "CDK4_rnaseq", "MET_other", "age"]
    assert signature_features(cols, sig) == ["EGFR_cnv", "IDH1_mut", "CDK4_rnaseq"]
    assert signature_features(cols, sig, exclude_genes=["IDH1"]) == ["EGFR_cnv", "CDK4_rnaseq"]


def test_missing_table_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(InputDataError, match="all_dataset.csv"):
        load_pathomic_fusion_(tmp_path)
    with pytest.raises(InputDataError, match="tcga_gbmlgg_all_clean"):
        load_mcat_(tmp_path)
