"""train_fold_: learning, the §8 output contract, resumability and input validation."""

from __future__ import annotations

import functools
import json
import logging
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pandas as pd
import pytest
import torch

from gliofuse.errors import ConfigError, InputDataError
from gliofuse.evaluation.metrics import classification_metrics, concordance_index
from gliofuse.tasks import DIAGNOSIS_CLASSES, get_task
from gliofuse.training.fold import train_fold_


def _run(make_config: Any, inp: Any, out_dir: Path, *, model: str = "abmil_snn_concat", task: str = "survival",
         fold: int = 0, split_path: Path | None = None, labels_path: Path | None = None,
         omics: Path | None | str = "default", feature_paths: list[Path] | None = None,
         **training: Any) -> pd.DataFrame:
    train_fold_(cfg=make_config(**training), model_name=model, task=task,
                split_path=split_path or inp.split_paths[fold], labels_path=labels_path or inp.labels_path,
                omics_path=inp.omics_path if omics == "default" else omics,  # type: ignore[arg-type]
                feature_paths=inp.feature_paths if feature_paths is None else feature_paths, out_dir=out_dir)
    return pd.read_csv(out_dir / "predictions.tsv", sep="\t", dtype={"patient_id": str})


RunFold = Callable[..., pd.DataFrame]


@pytest.fixture(scope="session")
def run(make_config: Any) -> RunFold:
    """``run(inputs, out_dir, model=..., task=..., **training)`` -> predictions.tsv as a DataFrame."""
    return functools.partial(_run, make_config)


@pytest.fixture(scope="module")
def learn_inputs(tmp_path_factory: pytest.TempPathFactory, fold_factory: Any) -> Any:
    return fold_factory.make_fold_inputs(tmp_path_factory.mktemp("learn"), n_patients=45, n_folds=3, seed=0)


@pytest.fixture(scope="module")
def survival_run(learn_inputs: Any, tmp_path_factory: pytest.TempPathFactory,
                 run: RunFold) -> tuple[pd.DataFrame, Path]:
    out = tmp_path_factory.mktemp("surv") / "fold_0"
    return run(learn_inputs, out, task="survival", epochs=20), out


@pytest.fixture(scope="module")
def diagnosis_run(learn_inputs: Any, tmp_path_factory: pytest.TempPathFactory,
                  run: RunFold) -> tuple[pd.DataFrame, Path]:
    out = tmp_path_factory.mktemp("diag") / "fold_0"
    return run(learn_inputs, out, task="diagnosis", epochs=20), out


def _split(path: Path) -> dict[str, list[str]]:
    return json.loads(path.read_text())


def test_survival_model_learns(survival_run: tuple[pd.DataFrame, Path]) -> None:
    df, _ = survival_run
    test = df[df["split"] == "test"]
    assert concordance_index(test["event"], test["time_days"], test["risk"]) > 0.7


def test_classification_model_learns(diagnosis_run: tuple[pd.DataFrame, Path]) -> None:
    df, _ = diagnosis_run
    test = df[df["split"] == "test"]
    probs = test[[f"prob_{c}" for c in DIAGNOSIS_CLASSES]].to_numpy()
    assert classification_metrics(test["y_true"], probs)["accuracy"] > 0.5  # chance: 1/3


def test_survival_predictions_follow_contract(survival_run: tuple[pd.DataFrame, Path], learn_inputs: Any) -> None:
    df, out = survival_run
    assert list(df.columns) == get_task("survival").prediction_columns
    assert set(df["model"]) == {"abmil_snn_concat"} and set(df["task"]) == {"survival"} and set(df["fold"]) == {0}
    split = _split(learn_inputs.split_paths[0])
    assert df["patient_id"].is_unique
    for name in ("train", "val", "test"):
        assert sorted(df.loc[df["split"] == name, "patient_id"]) == split[name]
    assert set(df["event"]) <= {0, 1} and np.isfinite(df["risk"]).all()
    labels = pd.read_csv(learn_inputs.labels_path, sep="\t").set_index("patient_id")
    np.testing.assert_allclose(df["time_days"], labels.loc[df["patient_id"], "time_days"], rtol=1e-5)
    history = pd.read_csv(out / "history.tsv", sep="\t")
    assert list(history.columns[:3]) == ["epoch", "train_loss", "val_loss"] and len(history) >= 1
    assert {"val_metric", "train_task_loss", "train_aux_loss", "lr", "seconds"} <= set(history.columns)
    gc = pd.read_csv(out / "gc_dynamics.tsv", sep="\t")
    assert gc.empty and {"epoch", "step", "task", "cos", "adjusted"} <= set(gc.columns)  # no policy: header only
    assert not (out / "last.pt").exists()  # the resume file is removed once the fold is done
    for name in ("predictions.tsv", "history.tsv", "gc_dynamics.tsv"):
        prov = json.loads((out / f"{name}.prov.json").read_text())
        assert prov["extra"]["model"] == "abmil_snn_concat" and prov["extra"]["fold"] == 0


def test_classification_predictions_follow_contract(diagnosis_run: tuple[pd.DataFrame, Path]) -> None:
    df, _ = diagnosis_run
    spec = get_task("diagnosis")
    assert list(df.columns) == spec.prediction_columns
    probs = df[spec.prob_columns].to_numpy()
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-4)
    assert (df["y_pred"] == probs.argmax(axis=1)).all()
    assert set(df["y_true"]) <= {0, 1, 2}


def test_checkpoint_records_card_task_and_train_only_omics_stats(survival_run: tuple[pd.DataFrame, Path],
                                                                 learn_inputs: Any) -> None:
    _, out = survival_run
    ckpt = torch.load(out / "checkpoint.pt", weights_only=False)
    assert ckpt["card"]["name"] == "abmil_snn_concat" and ckpt["task"] == "survival" and ckpt["fold"] == 0
    assert ckpt["gliofuse_version"] and ckpt["model_state"] and ckpt["head_state"]
    # omics preprocessing is fit on the training partition only (no leakage)
    train = _split(learn_inputs.split_paths[0])["train"]
    with h5py.File(learn_inputs.omics_path) as fh:
        patients = [p.decode() for p in fh["patients"][...]]
        values = fh["values"][...].astype(np.float64)
    rows = values[[patients.index(p) for p in train]]
    pre = ckpt["omics_preprocessing"]
    np.testing.assert_allclose(pre["mean"], rows[:, pre["gene_index"]].mean(axis=0), rtol=1e-5)
    assert len(pre["gene_index"]) == 19  # training.n_top_genes of small_config


def test_rerun_is_skipped_and_config_change_retrains(fold_inputs: Any, tmp_path: Path, run: RunFold,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    out = tmp_path / "fold_1"
    run(fold_inputs, out, model="snn", fold=1, epochs=1)
    stamp = (out / "predictions.tsv").stat().st_mtime_ns
    with caplog.at_level(logging.INFO, logger="gliofuse.training"):
        run(fold_inputs, out, model="snn", fold=1, epochs=1)
    assert "skipping" in caplog.text
    assert (out / "predictions.tsv").stat().st_mtime_ns == stamp
    run(fold_inputs, out, model="snn", fold=1, epochs=2)
    assert len(pd.read_csv(out / "history.tsv", sep="\t")) == 2


def test_unimodal_models_need_only_their_modality(fold_inputs: Any, tmp_path: Path, run: RunFold) -> None:
    df = run(fold_inputs, tmp_path / "abmil", model="abmil", task="grade", omics=None, epochs=1)
    assert set(df["split"]) == {"train", "val", "test"}
    df = run(fold_inputs, tmp_path / "snn", model="snn", task="diagnosis", feature_paths=[], epochs=1)
    assert len(df) == len(fold_inputs.patients)
    with pytest.raises(ConfigError, match="reads omics but no omics matrix"):
        run(fold_inputs, tmp_path / "x", model="abmil_snn_concat", omics=None)


def test_missing_class_labels_are_dropped(tmp_path: Path, caplog: pytest.LogCaptureFixture,
                                         fold_factory: Any, run: RunFold) -> None:
    inp = fold_factory.make_fold_inputs(tmp_path / "in", n_patients=21, n_missing_diagnosis=4, seed=3)
    with caplog.at_level(logging.INFO, logger="gliofuse.training"):
        df = run(inp, tmp_path / "out", model="snn", task="diagnosis", epochs=1)
    assert len(df) == 21 - 4
    assert "dropped 4 of 21 patients" in caplog.text


def test_split_with_leakage_is_rejected(fold_inputs: Any, tmp_path: Path, run: RunFold) -> None:
    split = _split(fold_inputs.split_paths[0])
    split["test"] = sorted([*split["test"], split["train"][0]])
    bad = tmp_path / "fold_0.json"
    bad.write_text(json.dumps(split))
    with pytest.raises(InputDataError, match=r"in both 'train' and 'test' \(leakage\)"):
        run(fold_inputs, tmp_path / "out", split_path=bad)


def test_split_patient_without_label_features_or_omics(fold_inputs: Any, tmp_path: Path, run: RunFold) -> None:
    split = _split(fold_inputs.split_paths[0])
    split["test"] = sorted([*split["test"], "TCGA-99-9999"])
    bad = tmp_path / "fold_0.json"
    bad.write_text(json.dumps(split))
    with pytest.raises(InputDataError, match=r"no usable slide feature file.*TCGA-99-9999"):
        run(fold_inputs, tmp_path / "out", split_path=bad)
    labels = pd.read_csv(fold_inputs.labels_path, sep="\t")
    extra = labels.iloc[[0]].assign(patient_id="TCGA-99-9999")
    lab = tmp_path / "labels_extra.tsv"
    pd.concat([labels, extra]).to_csv(lab, sep="\t", index=False)
    with pytest.raises(InputDataError, match=r"no profile in the omics matrix.*TCGA-99-9999"):
        run(fold_inputs, tmp_path / "out", model="snn", split_path=bad, feature_paths=[], labels_path=lab)
    labels = labels[labels["patient_id"] != split["train"][0]]
    lab = tmp_path / "labels.tsv"
    labels.to_csv(lab, sep="\t", index=False)
    with pytest.raises(InputDataError, match=rf"no row in the label table.*{split['train'][0]}"):
        run(fold_inputs, tmp_path / "out", labels_path=lab)


def test_bad_split_file_and_unknown_names(fold_inputs: Any, tmp_path: Path, run: RunFold) -> None:
    bad = tmp_path / "fold_0.json"
    bad.write_text(json.dumps({"fold": 0, "train": []}))
    with pytest.raises(InputDataError, match=r"lacks key\(s\)"):
        run(fold_inputs, tmp_path / "out", split_path=bad)
    with pytest.raises(ConfigError, match="Did you mean 'abmil_snn_concat'"):
        run(fold_inputs, tmp_path / "out", model="abmil_snn_concta")
    with pytest.raises(ConfigError, match="unknown task 'stage'"):
        run(fold_inputs, tmp_path / "out", task="stage")


def test_features_with_inconsistent_dimension(fold_inputs: Any, tmp_path: Path, fold_factory: Any,
                                              run: RunFold) -> None:
    feats = tmp_path / "features"
    shutil.copytree(fold_inputs.feature_paths[0].parent, feats)
    paths = sorted(feats.glob("*.h5"))
    fold_factory.write_feature_file(paths[0], np.zeros((3, 5)))
    with pytest.raises(InputDataError, match="disagree on the feature dimension"):
        run(fold_inputs, tmp_path / "out", feature_paths=paths)


def test_early_stopping_keeps_best_epoch(fold_inputs: Any, tmp_path: Path, run: RunFold) -> None:
    out = tmp_path / "es"
    run(fold_inputs, out, model="snn", task="survival", epochs=40, patience=2, lr=5e-2)
    history = pd.read_csv(out / "history.tsv", sep="\t")
    ckpt = torch.load(out / "checkpoint.pt", weights_only=False)
    assert len(history) < 40  # stopped early
    assert ckpt["best_epoch"] == int(history.loc[history["val_loss"].idxmin(), "epoch"])
    assert len(history) - ckpt["best_epoch"] == 2
