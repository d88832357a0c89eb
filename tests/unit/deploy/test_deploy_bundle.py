"""A bundle exported from a real training run predicts what the training run predicted, and refuses what it
cannot interpret (another encoder, feature dimension, bundle format or model), naming the difference."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pandas as pd
import pytest

from gliofuse.deploy.apply import predict_cohort_
from gliofuse.deploy.bundle import BUNDLE_FORMAT_VERSION, load_bundle_
from gliofuse.deploy.cohort import read_cohort_inputs_
from gliofuse.errors import InputDataError


def _predict(bundle_dir: Path, cohort: Any, out: Path, *, omics: Path | None = None, features: Any = None,
             max_missing: float = 0.1, **kw: Any) -> Any:
    bundle = load_bundle_(bundle_dir)
    wsi_dir = kw.pop("wsi_dir", None)
    inputs = read_cohort_inputs_(bundle, feature_paths=cohort.feature_paths if features is None else features,
                                 omics_path=omics or cohort.omics_path, patients=kw.pop("patients", None),
                                 max_missing_gene_fraction=max_missing, **kw)
    return predict_cohort_(bundle, inputs, out_dir=out, wsi_dir=wsi_dir)


def _wsi_dir(root: Path, feature_paths: list[Path]) -> Path:
    """wsi_patch-like outputs (thumbnail + coords attributes) of the given slides."""
    from PIL import Image

    for path in feature_paths:
        (root / "thumbnails").mkdir(parents=True, exist_ok=True)
        (root / "coords").mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (64, 48), (230, 200, 220)).save(root / "thumbnails" / f"{path.stem}.jpg")
        with h5py.File(root / "coords" / f"{path.stem}.h5", "w") as fh:
            fh.attrs.update({"level0_width": 1024, "level0_height": 768, "patch_size_level0": 256})
    return root


def _assert_members_match(result: Any, captured: dict, columns: list[str]) -> None:
    for fold, expected in captured.items():
        got = result.members[result.members["fold"] == fold].set_index("patient_id")
        exp = expected.set_index("patient_id")
        assert len(exp) > 20 and set(exp.index) <= set(got.index)
        for col in columns:
            np.testing.assert_allclose(got.loc[exp.index, col].to_numpy(float), exp[col].to_numpy(float),
                                       rtol=0, atol=1e-6, err_msg=f"fold {fold} column {col}")


def test_a_fusion_cox_bundle_reproduces_each_fold_and_writes_curves_and_attention(bundle_of: Any, cohort: Any,
                                                                                tmp_path: Path) -> None:
    bundle_dir, captured = bundle_of("abmil_snn_concat", "survival")
    meta = json.loads((bundle_dir / "bundle.json").read_text())
    assert meta["format_version"] == BUNDLE_FORMAT_VERSION and [m["fold"] for m in meta["members"]] == [0, 1]
    assert meta["encoder"] == {"name": "test_encoder", "feature_dim": 37}
    assert all(m["baseline"]["cum_hazard"] for m in meta["members"])
    drawn = cohort.feature_paths[:2]
    result = _predict(bundle_dir, cohort, tmp_path / "out", wsi_dir=_wsi_dir(tmp_path / "wsi", drawn))
    _assert_members_match(result, captured, ["risk"])
    heatmaps = sorted(p.name for p in (tmp_path / "out" / "heatmaps").glob("*.png"))
    assert heatmaps == sorted({f"{p.name[:12]}.png" for p in drawn})  # patients with a thumbnail only
    mean = result.members.groupby("patient_id")["risk"].mean()
    np.testing.assert_allclose(result.predictions.set_index("patient_id")["risk"], mean.loc[result.predictions[
        "patient_id"]].to_numpy(), atol=1e-12)
    surv = pd.read_csv(tmp_path / "out" / "survival.tsv", sep="\t").set_index("patient_id")
    values = surv.to_numpy()
    assert values[:, 0].min() == pytest.approx(1.0) and (np.diff(values, axis=1) <= 1e-12).all()
    assert values[:, -1].max() < 1.0  # the baseline hazard grows over the training times
    risk = result.predictions.set_index("patient_id")["risk"]
    assert np.corrcoef(risk.loc[surv.index], -values[:, -1])[0, 1] > 0  # higher risk, lower survival
    with h5py.File(tmp_path / "out" / "attention.h5") as fh:
        slide = next(iter(fh))
        assert fh[slide].attrs["split"] == "predict"
        assert fh[slide]["attention"].shape[0] == fh[slide]["coords"].shape[0]
    info = json.loads((tmp_path / "out" / "predict_info.json").read_text())
    assert info["n_patients"] == 36 and info["missing_genes"] == [] and info["folds"] == [0, 1]


def test_an_nll_and_a_classification_bundle_reproduce_their_folds(bundle_of: Any, cohort: Any,
                                                                    tmp_path: Path) -> None:
    bundle_dir, captured = bundle_of("snn", "survival", survival_loss="nll", n_bins=3)
    meta = json.loads((bundle_dir / "bundle.json").read_text())
    assert [len(m["bin_edges_days"]) for m in meta["members"]] == [2, 2]
    assert all(m["baseline"] is None for m in meta["members"])
    result = _predict(bundle_dir, cohort, tmp_path / "nll")
    hazard_cols = [c for c in captured[0].columns if c.startswith("hazard_")]
    _assert_members_match(result, {0: captured[0]}, ["risk", *hazard_cols])
    assert result.survival is not None and (result.survival.drop(columns="patient_id").to_numpy() <= 1).all()

    bundle_dir, captured = bundle_of("snn", "grade")
    result = _predict(bundle_dir, cohort, tmp_path / "grade", features=[])
    probs = [c for c in captured[0].columns if c.startswith("prob_")]
    _assert_members_match(result, captured, [*probs, "y_pred"])
    ens = result.predictions[probs].to_numpy()
    np.testing.assert_allclose(ens.sum(axis=1), 1.0, atol=1e-9)
    assert result.survival is None and not (tmp_path / "grade" / "attention.h5").exists()


@pytest.fixture(scope="module")
def fusion_bundle(bundle_of: Any) -> Path:
    return bundle_of("abmil_snn_concat", "survival")[0]


def _feature_copy(src: Path, dst: Path, *, encoder: str | None = None, dim: int | None = None) -> Path:
    with h5py.File(src) as fh:
        feats, coords, attrs = fh["features"][()], fh["coords"][()], dict(fh.attrs)
    dst.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(dst, "w") as fh:
        fh["features"] = feats if dim is None else np.zeros((feats.shape[0], dim), dtype=np.float32)
        fh["coords"] = coords
        fh.attrs.update(attrs)
        if encoder is not None:
            fh.attrs["encoder"] = encoder
        if dim is not None:
            fh.attrs["embed_dim"] = dim
    return dst


def test_loading_refuses_another_encoder_feature_dim_format_or_model(fusion_bundle: Path, cohort: Any,
                                                                      tmp_path: Path) -> None:
    src = cohort.feature_paths[3]
    other = _feature_copy(src, tmp_path / "enc" / src.name, encoder="uni_v2")
    with pytest.raises(InputDataError, match="encoder 'uni_v2'.*trained on encoder 'test_encoder'"):
        _predict(fusion_bundle, cohort, tmp_path / "x", features=[other])
    wide = _feature_copy(src, tmp_path / "dim" / src.name, dim=40)
    with pytest.raises(InputDataError, match="feature dimension 40 .* differs from the bundle's 37"):
        _predict(fusion_bundle, cohort, tmp_path / "x", features=[wide])
    newer = f"format_version 99, but this gliofuse reads bundles of format_version {BUNDLE_FORMAT_VERSION}"
    for key, value, message in [("format_version", 99, newer),
                                ("model", "abmil_snn_concatt", "model 'abmil_snn_concatt' is unknown")]:
        copy = tmp_path / f"bundle_{key}"
        copy.mkdir()
        for f in fusion_bundle.iterdir():
            (copy / f.name).write_bytes(f.read_bytes())
        meta = json.loads((copy / "bundle.json").read_text())
        (copy / "bundle.json").write_text(json.dumps({**meta, key: value}))
        with pytest.raises(InputDataError, match=message):
            load_bundle_(copy)
