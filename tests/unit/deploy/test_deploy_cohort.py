"""A new cohort's inputs: genes missing up to predict.max_missing_gene_fraction are filled with the training mean
and reported, more are refused; a patient missing a modality the model reads is refused by name (or left out
with drop_incomplete); the CLI exports and applies a bundle."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest

from gliofuse.cli import main
from gliofuse.deploy.apply import predict_cohort_
from gliofuse.deploy.bundle import load_bundle_
from gliofuse.deploy.cohort import model_gene_index, read_cohort_inputs_
from gliofuse.errors import InputDataError


def _matrix(cohort: Any) -> tuple[np.ndarray, list[str], list[str], list[str]]:
    with h5py.File(cohort.omics_path) as fh:
        return (fh["values"][()], [p.decode() for p in fh["patients"][()]], [g.decode() for g in fh["genes"][()]],
                [g.decode() for g in fh["gene_names"][()]])


@pytest.fixture
def write(factory: Any) -> Any:
    def write_(path: Path, values: np.ndarray, patients: list[str], genes: list[str], names: list[str]) -> Path:
        factory.write_omics(path, values, patients, genes, names)
        return path

    return write_


@pytest.fixture(scope="module")
def grade_bundle(bundle_of: Any) -> Path:
    return bundle_of("snn", "grade")[0]


def _inputs(bundle_dir: Path, cohort: Any, omics: Path, *, features: Any = (), max_missing: float = 0.1,
            **kw: Any) -> Any:
    bundle = load_bundle_(bundle_dir)
    return bundle, read_cohort_inputs_(bundle, feature_paths=list(features), omics_path=omics, patients=None,
                                       max_missing_gene_fraction=max_missing, **kw)


def test_a_few_missing_genes_are_filled_with_each_fold_models_training_mean(grade_bundle: Path, cohort: Any, write: Any,
                                                                            tmp_path: Path) -> None:
    values, patients, genes, names = _matrix(cohort)
    bundle = load_bundle_(grade_bundle)
    needed = model_gene_index(bundle)
    gone = int(needed[0])
    keep = [i for i in range(len(genes)) if i != gone]
    short = write(tmp_path / "short.h5", values[:, keep], patients, [genes[i] for i in keep],
                   [names[i] for i in keep])
    _, inputs = _inputs(grade_bundle, cohort, short)
    assert inputs.missing_genes == [names[gone]] and inputs.n_model_genes == len(needed)
    result = predict_cohort_(bundle, inputs, out_dir=tmp_path / "out")
    info = json.loads((tmp_path / "out" / "predict_info.json").read_text())
    assert info["missing_genes"] == [names[gone]] and info["missing_gene_fraction"] == pytest.approx(1 / len(needed))
    # the same as giving that gene at fold 0's training mean (z = 0 in fold 0's normaliser)
    member = bundle.members[0]
    at_mean = values.copy()
    at_mean[:, gone] = member.omics.mean[list(member.omics.gene_index).index(gone)]
    full = write(tmp_path / "at_mean.h5", at_mean, patients, genes, names)
    _, ref_inputs = _inputs(grade_bundle, cohort, full)
    ref = predict_cohort_(bundle, ref_inputs, out_dir=tmp_path / "ref")
    fold0 = result.members[result.members["fold"] == 0]
    ref0 = ref.members[ref.members["fold"] == 0]
    np.testing.assert_allclose(fold0["prob_G2"], ref0["prob_G2"], atol=1e-9)
    plain = predict_cohort_(bundle, _inputs(grade_bundle, cohort, cohort.omics_path)[1], out_dir=tmp_path / "plain")
    assert not np.allclose(plain.members["prob_G2"], result.members["prob_G2"], atol=1e-7)  # the gene mattered


def test_too_many_missing_genes_are_refused_naming_the_count(grade_bundle: Path, cohort: Any, write: Any,
                                                               tmp_path: Path) -> None:
    values, patients, genes, names = _matrix(cohort)
    needed = model_gene_index(load_bundle_(grade_bundle))
    gone = set(needed[:3].tolist())
    keep = [i for i in range(len(genes)) if i not in gone]
    short = write(tmp_path / "short.h5", values[:, keep], patients, [genes[i] for i in keep],
                   [names[i] for i in keep])
    with pytest.raises(InputDataError, match=rf"3 of the {len(needed)} genes .* missing .*max_missing_gene_fraction"
                                             rf" = 0.1\), e.g. {names[min(gone)]}"):
        _inputs(grade_bundle, cohort, short)
    assert _inputs(grade_bundle, cohort, short, max_missing=0.5)[1].missing_genes  # a looser setting accepts it
    # other gene ids with the training symbols still match
    renamed = write(tmp_path / "renamed.h5", values, patients, [f"X{g}" for g in genes], names)
    assert _inputs(grade_bundle, cohort, renamed)[1].missing_genes == []


def test_a_fusion_model_refuses_a_patient_without_rna_or_slides_by_name(bundle_of: Any, cohort: Any, write: Any,
                                                                        tmp_path: Path) -> None:
    bundle_dir = bundle_of("abmil_snn_concat", "survival")[0]
    values, patients, genes, names = _matrix(cohort)
    no_rna = patients[4]
    partial = write(tmp_path / "partial.h5", np.delete(values, 4, axis=0), patients[:4] + patients[5:], genes,
                     names)
    with pytest.raises(InputDataError, match=rf"1 patient\(s\) lack .*{no_rna}: RNA \(no expression profile\)"):
        _inputs(bundle_dir, cohort, partial, features=cohort.feature_paths)
    bundle, inputs = _inputs(bundle_dir, cohort, partial, features=cohort.feature_paths, drop_incomplete=True)
    assert no_rna not in inputs.patients and len(inputs.patients) == 35
    result = predict_cohort_(bundle, inputs, out_dir=tmp_path / "out")
    assert len(result.predictions) == 35 and no_rna not in set(result.predictions["patient_id"])
    info = json.loads((tmp_path / "out" / "predict_info.json").read_text())
    assert info["excluded_patients"] == {no_rna: ["RNA (no expression profile)"]}
    no_slide = patients[7]
    files = [p for p in cohort.feature_paths if not p.name.startswith(no_slide)]
    with pytest.raises(InputDataError, match=rf"{no_slide}: slides \(no usable feature file\)"):
        _inputs(bundle_dir, cohort, cohort.omics_path, features=files)
    with pytest.raises(InputDataError, match="reads slides: give feature files"):
        _inputs(bundle_dir, cohort, cohort.omics_path, features=[])


def test_the_cli_exports_every_model_and_applies_a_bundle(bundle_of: Any, train_run: Any, cohort: Any,
                                                          make_config: Any, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture) -> None:
    import yaml

    root, _ = train_run("snn", "grade")
    cfg = tmp_path / "training.yaml"
    cfg.write_text(yaml.safe_dump(make_config(epochs=1).model_dump(mode="json")))
    rc = main(["bundle", "export", "--config", str(cfg), "--checkpoints",
               *map(str, sorted(root.glob("snn/grade/fold_*/checkpoint.pt"))), "--omics", str(cohort.omics_path),
               "--out-root", str(tmp_path / "models")])
    assert rc == 0
    bundle = tmp_path / "models" / "snn" / "grade" / "bundle"
    assert sorted(p.name for p in bundle.iterdir()) == ["bundle.json", "fold_0.pt", "fold_1.pt", "genes.tsv"]
    rc = main(["predict", "--bundle", str(bundle), "--omics", str(cohort.omics_path), "--patients",
               *cohort.patients[:3], "--out-dir", str(tmp_path / "pred")])
    assert rc == 0
    lines = (tmp_path / "pred" / "predictions.tsv").read_text().splitlines()
    assert lines[0].split("\t")[:5] == ["patient_id", "model", "task", "n_models", "y_pred"] and len(lines) == 4
    other = make_config(epochs=2)  # not the config the folds were trained with
    cfg.write_text(yaml.safe_dump(other.model_dump(mode="json")))
    rc = main(["bundle", "export", "--config", str(cfg), "--checkpoints",
               str(root / "snn" / "grade" / "fold_0" / "checkpoint.pt"), "--out-root", str(tmp_path / "m2")])
    assert rc == 1 and "trained with another training config" in capsys.readouterr().err
