"""Ablations inherit their parent's training settings and model overrides (issue 14, item 1)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from gliofuse.ablations import ABLATIONS
from gliofuse.config import TrainingConfig, parse_config
from gliofuse.models.registry import get_model_card, list_models, resolve_model_params

ROOT = Path(__file__).resolve().parents[3]
REGISTERED_ABLATIONS = [n for n in list_models() if get_model_card(n).ablation_of]


def _perturbed(value: Any) -> Any:
    """A valid value different from ``value`` (same type), or ``value`` where none is obvious."""
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + 1
    if isinstance(value, float):
        return value * 0.5 if value else 0.125
    if isinstance(value, list) and value and all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        return [v + 1 for v in value]
    return value


def _effective(training: TrainingConfig, name: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(training settings, model params) the fold of ``name`` trains with."""
    settings = training.for_model(name).model_dump(mode="json", exclude={"model_training", "model_overrides",
                                                                          "models"})
    inherited, own = training.model_overrides_for(name)
    return settings, resolve_model_params(name, inherited, **own)


def test_every_registered_ablation_is_in_the_torch_free_table() -> None:
    assert sorted(REGISTERED_ABLATIONS) == sorted(ABLATIONS)
    for name in REGISTERED_ABLATIONS:
        assert ABLATIONS[name].parent == get_model_card(name).ablation_of


@pytest.mark.parametrize("name", REGISTERED_ABLATIONS)
def test_ablation_trains_with_its_parents_settings(name: str) -> None:
    parent = ABLATIONS[name].parent
    parent_overrides = {k: _perturbed(v) for k, v in get_model_card(parent).defaults.items()}
    training = TrainingConfig(
        models=[parent, name], tasks=["survival", "grade"], model_overrides={parent: parent_overrides},
        model_training={parent: {"lr": 1.7e-3, "epochs": 7, "optimizer": "adam", "weight_decay": 0.1,
                                 "tasks": ["survival"], "multitask": True, "monitor": "metric"}})
    p_settings, p_params = _effective(training, parent)
    a_settings, a_params = _effective(training, name)
    switched = set(ABLATIONS[name].training)
    differ = {k for k in p_settings if p_settings[k] != a_settings[k]}
    assert differ == switched, f"{name}: settings differ from {parent}'s in {sorted(differ)}"
    assert a_settings["lr"] == 1.7e-3 and a_settings["epochs"] == 7
    # every model parameter the ablation shares with its parent takes the parent's (overridden) value
    shared = {k: p_params[k] for k in a_params}
    assert a_params == shared, f"{name}: model params differ from {parent}'s"
    assert any(a_params[k] != get_model_card(name).defaults[k] for k in a_params)


def test_explicit_ablation_keys_win_key_by_key() -> None:
    training = TrainingConfig(
        models=["subspace_fusion", "subspace_fusion_no_gc"],
        model_overrides={"subspace_fusion": {"dim": 16, "heads": 2}, "subspace_fusion_no_gc": {"heads": 4}},
        model_training={"subspace_fusion": {"lr": 2e-3, "epochs": 5}, "subspace_fusion_no_gc": {"epochs": 9}})
    eff = training.for_model("subspace_fusion_no_gc")
    assert (eff.lr, eff.epochs) == (2e-3, 9)
    inherited, own = training.model_overrides_for("subspace_fusion_no_gc")
    params = resolve_model_params("subspace_fusion_no_gc", inherited, **own)
    assert (params["dim"], params["heads"]) == (16, 4)


def test_ablated_training_switch_stays_off() -> None:
    training = TrainingConfig(models=["m2f", "m2f_single_task"], tasks=["survival", "grade"],
                              model_training={"m2f": {"multitask": True, "lr": 2e-3}})
    assert training.for_model("m2f").multitask is True
    assert training.for_model("m2f_single_task").multitask is False
    assert training.for_model("m2f_single_task").lr == 2e-3


@pytest.mark.parametrize("configfile", ["config/full_comparison.yaml"])
def test_full_comparison_ablations_match_their_parents(configfile: str) -> None:
    """The shipped comparison (config.yaml merged with the file, as Snakemake does) is not confounded."""
    def merge(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
        out = dict(a)
        for k, v in b.items():
            out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
        return out

    data = merge(yaml.safe_load((ROOT / "config.yaml").read_text()), yaml.safe_load((ROOT / configfile).read_text()))
    training = parse_config(data).training
    for name in training.models:
        if name not in ABLATIONS:
            continue
        parent = ABLATIONS[name].parent
        p_settings, p_params = _effective(training, parent)
        a_settings, a_params = _effective(training, name)
        differ = {k for k in p_settings if p_settings[k] != a_settings[k]}
        assert differ <= set(ABLATIONS[name].training), f"{name} vs {parent}: {sorted(differ)}"
        assert a_params == {k: p_params[k] for k in a_params}, name


@pytest.mark.parametrize("preset", ["zhang2024", "wang2024", "lu2022"])
def test_preset_ablations_match_their_parents(preset: str) -> None:
    training = TrainingConfig(preset=preset)
    ablations = [m for m in training.models if m in ABLATIONS]
    assert ablations, f"{preset} trains no ablation"
    for name in ablations:
        parent = ABLATIONS[name].parent
        p = training.for_model(parent).model_dump(exclude={"model_training", "models"})
        a = training.for_model(name).model_dump(exclude={"model_training", "models"})
        assert {k for k in p if p[k] != a[k]} == set(ABLATIONS[name].training), name
        inherited, _ = training.model_overrides_for(name)
        assert inherited == training.model_overrides.get(parent, {})
