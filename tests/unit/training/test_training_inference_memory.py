"""Memory of large bags at inference (issue 16 item 5): the patch budget of an inference batch and the model
cards' inference bag cap for self-attention over every patch."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from gliofuse.config import TrainingConfig
from gliofuse.data.datasets import PatientBagDataset
from gliofuse.features.store import inspect_feature_file_
from gliofuse.models.attention import SELF_ATTENTION_MAX_PATCHES
from gliofuse.models.registry import create_model, get_model_card, list_models
from gliofuse.training.assemble import inference_patch_cap
from gliofuse.training.predict import predict
from gliofuse.training.sampling import patch_budget_batches


def test_patch_budget_batches() -> None:
    sizes = [3, 3, 3, 10, 2, 2]
    assert patch_budget_batches(sizes, 4, 8) == [[0, 1], [2], [3], [4, 5]]
    assert patch_budget_batches(sizes, 4, None) == [[0, 1, 2, 3], [4, 5]]
    for batch in patch_budget_batches(sizes, 3, 9):
        assert len(batch) == 1 or len(batch) * max(sizes[i] for i in batch) <= 9


def _bags(tmp_path: Path, fold_factory: Any, sizes: list[int], d: int = 6) -> PatientBagDataset:
    rng = np.random.default_rng(0)
    files = {}
    for k, n in enumerate(sizes):
        path = tmp_path / f"TCGA-AA-{k:04d}-01Z-00-DX1.h5"
        fold_factory.write_feature_file(path, rng.standard_normal((n, d)))
        files[path.stem[:12]] = [inspect_feature_file_(path)]
    return PatientBagDataset(patient_ids=list(files), slide_files=files, omics=None, max_patches=4)


@pytest.mark.parametrize("model_name", ["abmil", "transmil"])
def test_predict_under_a_patch_budget_matches_full_batches(model_name: str, tmp_path: Path, fold_factory: Any,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """A budget splits the inference batches (no batch over it unless one bag is) and changes no output."""
    ds = _bags(tmp_path, fold_factory, [5, 30, 2, 7, 3])
    small = {"abmil": {"embed_dim": 8, "attn_dim": 4}, "transmil": {"dim": 8, "heads": 2}}[model_name]
    torch.manual_seed(0)
    model = create_model(model_name, input_dims={"wsi": 6}, **small)
    heads = {"survival": nn.Linear(model.embed_dim, 1)}
    seen: list[tuple[int, int]] = []
    import gliofuse.training.predict as predict_module

    real_loader = predict_module.make_loader

    def recording_loader(*args: Any, **kwargs: Any) -> Any:
        for batch in real_loader(*args, **kwargs):
            seen.append(tuple(batch.wsi.shape[:2]))
            yield batch

    monkeypatch.setattr(predict_module, "make_loader", recording_loader)
    whole = predict(model, heads, ds, batch_size=8, device=torch.device("cpu"))["survival"]
    assert seen == [(5, 30)]
    seen.clear()
    ds.inference_batch_patches = 14
    budgeted = predict(model, heads, ds, batch_size=8, device=torch.device("cpu"))["survival"]
    assert seen == [(1, 5), (1, 30), (2, 7), (1, 3)]  # 2 x 30 > 14: alone; 2 x 7 fits; 3 x 7 does not
    assert torch.allclose(whole, budgeted, atol=1e-6)


def test_self_attention_models_cap_inference_bags() -> None:
    """Models with self-attention over every patch (TransMIL, Path-GPTOmic) cap their inference bags unless
    training.inference_max_patches says otherwise; linear-memory models keep every patch."""
    capped = {n for n in list_models(modality="wsi") if get_model_card(n).max_inference_patches is not None}
    assert capped == {"transmil", *list_models("path_gptomic*")}
    default = TrainingConfig()
    assert inference_patch_cap("transmil", default) == SELF_ATTENTION_MAX_PATCHES
    assert inference_patch_cap("abmil", default) is None
    assert inference_patch_cap("mcat", default) is None
    assert inference_patch_cap("transmil", TrainingConfig(inference_max_patches=100000)) == 100000


def test_a_fold_gives_its_inference_datasets_the_cap_and_the_batch_budget(fold_inputs: Any, make_config: Any,
                                                                          tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """``train_fold_`` -> ``assemble_fold``: transmil's val/test datasets (and the training set's inference view) use
    the card's cap, training samples ``max_patches``, and inference batches get ``batch_size x max_patches``."""
    import gliofuse.training.assemble as assemble_module
    from gliofuse.training.fold import train_fold_

    runs: list[Any] = []
    real = assemble_module.assemble_fold

    def capturing(*args: Any, **kwargs: Any) -> Any:
        runs.append(real(*args, **kwargs))
        return runs[-1]

    monkeypatch.setattr(assemble_module, "assemble_fold", capturing)
    cfg = make_config(epochs=1, model_overrides={"transmil": {"dim": 8, "heads": 2}})
    train_fold_(cfg=cfg, model_name="transmil", task="survival", split_path=fold_inputs.split_paths[0],
                labels_path=fold_inputs.labels_path, omics_path=fold_inputs.omics_path,
                feature_paths=fold_inputs.feature_paths, out_dir=tmp_path / "fold_0")
    (run,) = runs
    t = cfg.training.for_model("transmil")
    assert run.datasets["train"].max_patches == t.max_patches
    for ds in run.datasets.values():
        assert ds.inference_view().max_patches == SELF_ATTENTION_MAX_PATCHES
        assert ds.inference_batch_patches == t.batch_size * t.max_patches
