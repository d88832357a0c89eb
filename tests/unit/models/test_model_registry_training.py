"""Every registered model builds with the demo's input sizes and overrides, and trains one harness epoch."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import torch
import yaml

from gliofuse.config import parse_config
from gliofuse.models.registry import create_model, get_model_card, list_models
from gliofuse.omics.genesets import GROUPS
from gliofuse.training.fold import train_fold_

REPO = Path(__file__).resolve().parents[3]
# the demo: test_resnet features (96-d), 256 top genes; gene-set sizes as matched on the demo's gene list
DEMO_SETS = {"tumour": 33, "microenvironment": 36, "mcat.tumor_suppressor_genes": 82, "mcat.oncogenes": 328,
             "mcat.protein_kinases": 513, "mcat.cell_differentiation_markers": 443,
             "mcat.transcription_factors": 1536, "mcat.cytokines_and_growth_factors": 452}
DEMO_DIMS = {"wsi": 96, "omics": 256, **{f"omics:{k}": v for k, v in DEMO_SETS.items()}}
TINY = {"gene_sets": ["tumour", "microenvironment"], "dim": 8, "heads": 2, "ff_dim": 8, "path_dim": 8,
        "path_heads": 2, "omics_dim": 8, "mlp_hidden": 8, "snn_hidden_dims": [8, 8], "rna_dim": 4, "attn_dim": 8,
        "omics_hidden_dims": [8, 8], "fusion_dim": 8, "hidden_dims": [8, 8], "embed_dim": 8, "wsi_embed_dim": 8,
        "gene_hidden_dims": [8, 8], "grid_size": 8, "dim_head": 4, "offset_groups": 2, "downsample": 2,
        "offset_kernel": 3, "cpb_hidden": 4}


def _demo_training() -> Any:
    cfg = yaml.safe_load((REPO / "config.yaml").read_text())
    return parse_config(cfg).training


def test_demo_config_names_registered_models_with_valid_overrides() -> None:
    training = _demo_training()
    assert set(training.models) <= set(list_models())
    assert set(GROUPS["mcat"]) <= set(training.gene_sets)  # the MCAT / M2F genomic tokens are built
    for name in training.models:
        card = get_model_card(name)
        torch.manual_seed(0)
        model = create_model(name, input_dims=DEMO_DIMS, tasks=training.for_model(name).tasks,
                             **training.model_overrides.get(name, {}))
        assert model.embed_dim > 0 and card.reference


def test_full_comparison_config_trains_every_registered_model() -> None:
    """config/full_comparison.yaml, merged over config.yaml as `--configfile` does, names every model and
    ablation of the registry, each with overrides that build."""
    from snakemake.utils import update_config

    merged = yaml.safe_load((REPO / "config.yaml").read_text())
    update_config(merged, yaml.safe_load((REPO / "config" / "full_comparison.yaml").read_text()))
    training = parse_config(merged).training
    assert sorted(training.models) == list_models()
    jobs = training.jobs()
    assert {m for m, _ in jobs} == set(list_models())
    for name in training.models:
        torch.manual_seed(0)
        create_model(name, input_dims=DEMO_DIMS, tasks=training.for_model(name).tasks,
                     **training.model_overrides.get(name, {}))


def _fold_factory() -> Any:
    name = "gliofuse_tests_fold_factory"
    if name not in sys.modules:
        path = REPO / "tests" / "unit" / "training" / "fold_factory.py"
        spec = importlib.util.spec_from_file_location(name, path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> Any:
    return _fold_factory().make_subspace_inputs(tmp_path_factory.mktemp("cohort"), n_patients=24, d=11)


@pytest.mark.parametrize("name", list_models())
def test_every_registered_model_trains_one_step_in_the_harness(name: str, cohort: Any, tmp_path: Path) -> None:
    torch.set_num_threads(1)
    defaults = get_model_card(name).defaults
    overrides = {k: v for k, v in TINY.items() if k in defaults}
    cfg = parse_config({"seed": 3, "training": {
        "models": [name], "tasks": ["survival"], "epochs": 1, "batch_size": 64, "max_patches": 6, "n_top_genes": 9,
        "device": "cpu", "model_overrides": {name: overrides}}})
    train_fold_(cfg=cfg, model_name=name, task="survival", split_path=cohort.split_paths[0],
                labels_path=cohort.labels_path, omics_path=cohort.omics_path, feature_paths=cohort.feature_paths,
                out_dir=tmp_path)
    pred = pd.read_csv(tmp_path / "predictions.tsv", sep="\t")
    assert len(pred) > 0 and pred["risk"].notna().all()
    history = pd.read_csv(tmp_path / "history.tsv", sep="\t")
    assert len(history) == 1 and history["train_loss"].notna().all()
