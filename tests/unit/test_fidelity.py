"""docs/fidelity.md is generated from the presets, and the zhang2024 preset sets the original's values."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from gliofuse.config import TrainingConfig, parse_config
from gliofuse.fidelity import ABSENT, MAIN_PRESETS, ROWS, render_markdown, setting_value
from gliofuse.presets import PRESET_NAMES, VARIANTS, preset_settings

ROOT = Path(__file__).resolve().parents[2]


def _merge(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    out = dict(a)
    for k, v in b.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def test_fidelity_doc_is_in_sync() -> None:
    assert (ROOT / "docs/fidelity.md").read_text() == render_markdown(), \
        "regenerate: python -m gliofuse.fidelity docs/fidelity.md"


@pytest.mark.parametrize("row", [r for r in ROWS if r.key and r.original is not None and not r.preset_departs],
                         ids=lambda r: r.component)
def test_zhang2024_sets_the_originals_value(row: Any) -> None:
    value = setting_value(TrainingConfig(preset="zhang2024"), row.key)
    assert value == row.original, f"{row.key}: preset {value!r}, original {row.original!r}"


def test_default_differs_where_the_table_says_why() -> None:
    default = TrainingConfig()
    for row in ROWS:
        if row.key and "." not in row.key and row.original is not None and row.why == "same":
            assert setting_value(default, row.key) == row.original, row.component


@pytest.mark.parametrize("name", PRESET_NAMES)
def test_preset_file_or_key_overrides_the_demo_config(name: str) -> None:
    """config.yaml + one preset key gives exactly the preset, whatever config.yaml's training keys say."""
    demo = yaml.safe_load((ROOT / "config.yaml").read_text())
    training = parse_config(_merge(demo, {"training": {"preset": name}})).training
    expected = TrainingConfig(**preset_settings(name))
    skip = {"preset", "n_top_genes", "device", "amp", "amp_dtype", "resume", "keep_epoch_checkpoints",
            "folds_per_job"}
    assert training.folds_per_job == demo["training"]["folds_per_job"]  # how the jobs run stays the config's
    assert {k: v for k, v in training.model_dump().items() if k not in skip} == \
        {k: v for k, v in expected.model_dump().items() if k not in skip}
    if name not in VARIANTS:
        preset_file = yaml.safe_load((ROOT / f"config/presets/{name}.yaml").read_text())
        assert parse_config(_merge(demo, preset_file)).training == training


def test_leaky_variants_change_only_the_bins() -> None:
    for name, (base, changes, _) in VARIANTS.items():
        a, b = TrainingConfig(preset=name).model_dump(), TrainingConfig(preset=base).model_dump()
        assert {k for k in a if a[k] != b[k]} == set(changes) | {"preset"}
    assert TrainingConfig(preset="zhang2024").bin_edges == "train"
    assert TrainingConfig(preset="zhang2024_global_bins").bin_edges == [233.5, 511.0, 929.0]


def test_chen_presets_read_the_reproduction_protocols() -> None:
    from gliofuse.config import MCATValidationConfig, PFValidationConfig

    pf, mcat = PFValidationConfig(), MCATValidationConfig()
    c20, c21 = TrainingConfig(preset="chen2020"), TrainingConfig(preset="chen2021")
    assert (c20.lr, c20.weight_decay, c20.epochs, c20.l1, c20.scheduler) == (pf.lr, pf.weight_decay, pf.epochs,
                                                                              pf.l1, pf.scheduler)
    assert (c21.lr, c21.weight_decay, c21.epochs, c21.survival_loss) == (mcat.lr, mcat.weight_decay, mcat.epochs,
                                                                          mcat.survival_loss)
    assert c21.patience == c21.epochs and c21.model_overrides["mcat"] == {"snn_activation": "elu",
                                                                          "post_pool_fc": True}
    assert setting_value(c21, "subspace_fusion.gc_mode") is ABSENT


def test_presets_listed_in_the_doc() -> None:
    text = render_markdown()
    assert all(f"`{n}`" in text for n in (*MAIN_PRESETS, *VARIANTS))
