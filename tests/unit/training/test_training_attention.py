"""``fold_<k>/attention.h5`` (docs/data-contracts.md §10): the test patients' per-patch attention, full bags."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pandas as pd
import pytest
import torch

from gliofuse.data.bags import group_feature_files_
from gliofuse.data.datasets import PatientBagDataset
from gliofuse.report.attention import read_attention_
from gliofuse.training.fold import train_fold_
from gliofuse.training.predict import predict


def _train(make_config: Any, inp: Any, out: Path, *, model: str = "abmil_snn_concat", task: str = "survival",
           **training: Any) -> pd.DataFrame:
    train_fold_(cfg=make_config(**{"epochs": 1, **training}), model_name=model, task=task,
                split_path=inp.split_paths[0], labels_path=inp.labels_path, omics_path=inp.omics_path,
                feature_paths=inp.feature_paths, out_dir=out)
    return pd.read_csv(out / "predictions.tsv", sep="\t", dtype={"patient_id": str})


def _test_slides(inp: Any) -> dict[str, Path]:
    """Feature files (stem -> path) of the fold-0 test patients that are usable (status ok, N > 0)."""
    import json

    test = set(json.loads(inp.split_paths[0].read_text())["test"])
    by_patient, _ = group_feature_files_(inp.feature_paths)
    return {i.path.stem: i.path for p in test for i in by_patient[p]}


def _read(path: Path) -> dict[str, dict[str, Any]]:
    with h5py.File(path, "r") as fh:
        return {k: {"coords": fh[k]["coords"][()], "attention": fh[k]["attention"][()], **dict(fh[k].attrs)}
                for k in fh}


def test_attention_file_has_one_group_per_test_slide(fold_inputs: Any, tmp_path: Path, make_config: Any) -> None:
    out = tmp_path / "patient"
    _train(make_config, fold_inputs, out)
    groups = _read(out / "attention.h5")
    slides = _test_slides(fold_inputs)
    assert set(groups) == set(slides) and len(slides) > len({s[:12] for s in slides})  # some with 2 slides
    per_patient: dict[str, float] = defaultdict(float)
    for slide_id, g in groups.items():
        with h5py.File(slides[slide_id], "r") as fh:
            np.testing.assert_array_equal(g["coords"], fh["coords"][()])  # the features file's rows
        assert g["coords"].dtype == np.int64 and g["coords"].shape == (len(g["attention"]), 2)
        assert g["patient_id"] == slide_id[:12] and g["split"] == "test"
        assert (g["attention"] >= 0).all()
        per_patient[g["patient_id"]] += float(g["attention"].sum())
    # bag_level patient: one distribution over all slides of a patient
    np.testing.assert_allclose(list(per_patient.values()), 1.0, atol=1e-5)
    # the report reads it (test rows only)
    table = read_attention_(out / "attention.h5")
    assert set(table["split"]) == {"test"} and set(table["slide_id"]) == set(slides)

    # byte-reproducible: a second identical run writes the same attention and predictions
    again = tmp_path / "again"
    _train(make_config, fold_inputs, again)
    for name in ("attention.h5", "predictions.tsv"):
        assert (again / name).read_bytes() == (out / name).read_bytes(), name

    # bag_level slide: each slide is its own bag
    slide = tmp_path / "slide"
    _train(make_config, fold_inputs, slide, bag_level="slide")
    for g in _read(slide / "attention.h5").values():
        assert g["attention"].sum() == pytest.approx(1.0, abs=1e-5)


def test_models_without_attention_write_no_file(fold_inputs: Any, tmp_path: Path, make_config: Any) -> None:
    out = tmp_path / "snn"
    out.mkdir()
    (out / "attention.h5").write_bytes(b"stale")
    _train(make_config, fold_inputs, out, model="snn")
    assert not (out / "attention.h5").exists()


def test_predict_collects_padding_free_attention_per_item(fold_inputs: Any) -> None:
    from gliofuse.models.registry import create_model

    by_patient, dim = group_feature_files_(fold_inputs.feature_paths)
    patients = sorted(by_patient)[:7]
    ds = PatientBagDataset(patient_ids=patients, slide_files=by_patient, omics=None, bag_level="slide")
    torch.manual_seed(0)
    model = create_model("abmil", input_dims={"wsi": dim}, embed_dim=8, attn_dim=4)
    head = torch.nn.Linear(8, 1)
    collected: list[np.ndarray | None] = []
    predict(model, {"survival": head}, ds, batch_size=3, device=torch.device("cpu"), attention=collected)
    assert len(collected) == len(ds) > len(patients)  # one entry per slide item
    for i, att in enumerate(collected):
        assert att is not None and att.dtype == np.float32 and att.shape == (ds.items[i][1][0].n_patches,)
        with torch.no_grad():
            alone = model.eval()(_one(ds, i)).attention
        np.testing.assert_allclose(att, alone[0].numpy(), atol=1e-6)
    # without attention from the model: None per item
    snn = create_model("snn", input_dims={"omics": 3})
    ds_omics = PatientBagDataset(patient_ids=patients, slide_files=None, omics=np.ones((7, 3), dtype=np.float32))
    none: list[np.ndarray | None] = []
    predict(snn, {"survival": torch.nn.Linear(snn.embed_dim, 1)}, ds_omics, batch_size=4,
            device=torch.device("cpu"), attention=none)
    assert none == [None] * 7


def _one(ds: PatientBagDataset, index: int) -> Any:
    from gliofuse.data.collate import collate_bags

    return collate_bags([ds.inference_view()[index]])


def test_subspace_fusion_writes_the_deformable_reading_map(tmp_path: Path, make_config: Any,
                                                           fold_factory: Any) -> None:
    inp = fold_factory.make_subspace_inputs(tmp_path / "inputs", n_patients=24)
    out = tmp_path / "sf"
    df = _train(make_config, inp, out, model="subspace_fusion", survival_loss="nll", n_bins=3)
    assert [c for c in df.columns if c.startswith("hazard_")][-1] == "hazard_inf"
    groups = _read(out / "attention.h5")
    assert set(groups) == set(_test_slides(inp))
    per_patient: dict[str, float] = defaultdict(float)
    for g in groups.values():
        per_patient[g["patient_id"]] += float(g["attention"].sum())
    np.testing.assert_allclose(list(per_patient.values()), 1.0, atol=1e-5)
