"""Registry: names, cards, the create_model merge order and error messages."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from gliofuse.errors import ConfigError
from gliofuse.models import registry
from gliofuse.models.registry import ModelCard, create_model, get_model_card, list_models, register_model

DIMS = {"wsi": 37, "omics": 23}


def test_list_models_is_sorted_and_filters() -> None:
    names = list_models()
    assert names == sorted(names)
    assert {"abmil", "snn", "abmil_snn_concat"} <= set(names)
    assert "snn" not in list_models(modality="wsi")
    assert "abmil" not in list_models(modality="omics")
    assert list_models("abmil*") == [n for n in names if n.startswith("abmil")]
    assert set(list_models(task="survival")) >= {"abmil", "snn", "abmil_snn_concat"}
    assert list_models(task="no_such_task") == []


def test_importing_registry_module_alone_registers_every_family() -> None:
    code = "from gliofuse.models.registry import list_models; print(list_models())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "abmil_snn_concat" in out and "'snn'" in out


def test_card_fields_and_serialisation() -> None:
    card = get_model_card("abmil_snn_concat")
    assert isinstance(card, ModelCard)
    assert card.modalities == ("wsi", "omics")
    assert set(card.tasks) == {"survival", "grade", "diagnosis"}
    assert card.reference
    json.dumps(card.to_dict())
    with pytest.raises(AttributeError):
        card.name = "x"  # type: ignore[misc]


def test_unknown_name_suggests_close_match() -> None:
    with pytest.raises(ConfigError, match=r"'abmill' is not a registered model.*Did you mean 'abmil'.*gliofuse models list"):
        create_model("abmill", input_dims=DIMS)


def test_overrides_win_and_none_is_dropped() -> None:
    model = create_model("abmil", input_dims=DIMS, embed_dim=19, attn_dim=None)
    assert model.embed_dim == 19
    assert model.card is not None and model.card.name == "abmil"
    assert model.card.defaults["embed_dim"] == 128  # card untouched


def test_unknown_override_key_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"model_overrides\.snn: unknown parameter\(s\) \['hiden_dims'\]"):
        create_model("snn", input_dims=DIMS, hiden_dims=[8])


def test_missing_modality_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"needs modalities \['wsi', 'omics'\].*missing \['omics'\]"):
        create_model("abmil_snn_concat", input_dims={"wsi": 37})


def test_unsupported_task_and_duplicate_registration(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))

    @register_model(family="test", modalities=("omics",), tasks=("survival",), reference="none",
                    defaults={"hidden_dims": [5], "dropout": 0.0})
    def tiny_survival_only(*, input_dims, **kw):
        from gliofuse.models.snn import _create_snn

        return _create_snn(input_dims=input_dims, **kw)

    assert "tiny_survival_only" in list_models()
    assert create_model("tiny_survival_only", input_dims=DIMS, tasks="survival").embed_dim == 5
    with pytest.raises(ConfigError, match=r"does not support task\(s\) \['grade'\]"):
        create_model("tiny_survival_only", input_dims=DIMS, tasks=("survival", "grade"))
    with pytest.warns(UserWarning, match="registered twice"):
        register_model(family="test", modalities=("omics",), tasks=("survival",), reference="none")(tiny_survival_only)


def test_register_rejects_unknown_modality() -> None:
    with pytest.raises(ValueError, match="modalities"):
        register_model(family="x", modalities=("rna",), tasks=("survival",), reference="")
