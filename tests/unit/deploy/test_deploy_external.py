"""An external cohort with its own slide and patient ids: `gliofuse external predict` (every bundle, patients from the
slide sheet) writes what `gliofuse predict --slides` writes on the same inputs, and the same values as the bundle
applied to the original (TCGA-named) files; a feature file missing from the sheet is refused by name."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pandas as pd
import pytest

from gliofuse.cli import main
from gliofuse.config import PredictConfig
from gliofuse.data.bags import patient_id_from_path
from gliofuse.deploy.external import predict_external_
from gliofuse.errors import InputDataError

N_PATIENTS = 6


def _external_site(cohort: Any, factory: Any, root: Path) -> tuple[Path, list[Path], Path, dict[str, str]]:
    """The first patients' feature files as hospital slides of hospital patients, with sheet and matrix."""
    old = sorted({patient_id_from_path(p) for p in cohort.feature_paths})[:N_PATIENTS]
    rename = {p: f"H{k}" for k, p in enumerate(old)}
    rows, copies = [], []
    for src in sorted(cohort.feature_paths):
        pid = patient_id_from_path(src)
        if pid in rename:
            slide = f"hosp_{rename[pid]}_{len([r for r in rows if r[0] == rename[pid]])}"
            dst = root / "features" / f"{slide}.h5"
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, dst)
            rows.append((rename[pid], slide, f"slides/{slide}.svs"))
            copies.append(dst)
    sheet = root / "slides.csv"
    pd.DataFrame(rows, columns=["patient_id", "slide_id", "slide_path"]).to_csv(sheet, index=False)
    with h5py.File(cohort.omics_path) as fh:
        values = fh["values"][()]
        patients = [p.decode() for p in fh["patients"][()]]
        genes = [g.decode() for g in fh["genes"][()]]
    idx = [patients.index(p) for p in old]
    omics = root / "expression.h5"
    factory.write_omics(omics, values[idx], [rename[p] for p in old], genes)
    return sheet, copies, omics, rename


def test_external_predict_equals_predict_on_the_same_inputs_and_on_the_original_files(
        bundle_of: Any, cohort: Any, factory: Any, tmp_path: Path) -> None:
    bundle, _ = bundle_of("abmil_snn_concat", "survival")
    sheet, features, omics, rename = _external_site(cohort, factory, tmp_path / "site")
    [written] = predict_external_(bundles=[bundle], slides=sheet, feature_paths=features, omics_path=omics,
                                  out_root=tmp_path / "external", settings=PredictConfig())
    assert written == tmp_path / "external" / "abmil_snn_concat" / "survival" / "predictions.tsv"
    rc = main(["predict", "--bundle", str(bundle), "--features", *map(str, features), "--omics", str(omics),
               "--slides", str(sheet), "--out-dir", str(tmp_path / "predict")])
    assert rc == 0
    for name in ("predictions.tsv", "members.tsv", "survival.tsv"):
        assert (written.parent / name).read_bytes() == (tmp_path / "predict" / name).read_bytes(), name
    ext = pd.read_csv(written, sep="\t")
    assert sorted(ext["patient_id"]) == sorted(rename.values())  # every patient of the sheet, by its own id
    rc = main(["predict", "--bundle", str(bundle), "--features", *map(str, cohort.feature_paths), "--omics",
               str(cohort.omics_path), "--patients", *rename, "--out-dir", str(tmp_path / "original")])
    assert rc == 0
    orig = pd.read_csv(tmp_path / "original" / "predictions.tsv", sep="\t")
    orig["patient_id"] = orig["patient_id"].map(rename)
    merged = ext.merge(orig, on="patient_id", suffixes=("_ext", "_orig"))
    assert len(merged) == N_PATIENTS
    np.testing.assert_allclose(merged["risk_ext"], merged["risk_orig"], rtol=1e-5)


def test_a_feature_file_missing_from_the_sheet_is_refused_by_name(bundle_of: Any, cohort: Any, factory: Any,
                                                                  tmp_path: Path) -> None:
    bundle, _ = bundle_of("abmil_snn_concat", "survival")
    sheet, features, omics, _ = _external_site(cohort, factory, tmp_path / "site")
    stray = features[0].with_name("not_in_sheet.h5")
    shutil.copyfile(features[0], stray)
    with pytest.raises(InputDataError, match="not_in_sheet.h5.*not in the slide sheet"):
        predict_external_(bundles=[bundle], slides=sheet, feature_paths=[*features, stray], omics_path=omics,
                          out_root=tmp_path / "external", settings=PredictConfig())


def test_training_reads_each_feature_files_patient_from_the_slide_sheet(train_run: Any, cohort: Any, make_config: Any,
                                                                        tmp_path: Path) -> None:
    """Hospital slide names (not TCGA barcodes) train the same fold as the TCGA-named files, given the sheet."""
    from gliofuse.training.fold import train_fold_

    root, _ = train_run("abmil", "survival")
    mapping, renamed = {}, []
    for k, src in enumerate(sorted(cohort.feature_paths)):  # the same sort order as the original names
        dst = tmp_path / "features" / f"hosp_{k:03d}.h5"
        dst.parent.mkdir(exist_ok=True)
        shutil.copyfile(src, dst)
        mapping[dst.stem] = patient_id_from_path(src)
        renamed.append(dst)
    out = tmp_path / "fold_0"
    train_fold_(cfg=make_config(epochs=1), model_name="abmil", task="survival", split_path=cohort.split_paths[0],
                labels_path=cohort.labels_path, omics_path=None, feature_paths=renamed, out_dir=out,
                slide_patients=mapping)
    mine = pd.read_csv(out / "predictions.tsv", sep="\t")
    ref = pd.read_csv(root / "abmil" / "survival" / "fold_0" / "predictions.tsv", sep="\t")
    assert mine["patient_id"].tolist() == ref["patient_id"].tolist()
    np.testing.assert_allclose(mine["risk"], ref["risk"], rtol=1e-5)
