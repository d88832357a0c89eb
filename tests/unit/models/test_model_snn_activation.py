"""The SNN's activation option: SELU by default (unchanged), ELU as in Pathomic Fusion's MaxNet and MCAT's SNN."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from gliofuse.errors import ConfigError
from gliofuse.models.registry import create_model, get_model_card, resolve_model_params
from gliofuse.models.snn import SNNEncoder


def _activations(model: nn.Module) -> list[type[nn.Module]]:
    return [type(m) for m in model.modules() if isinstance(m, nn.SELU | nn.ELU)]


def test_default_stays_selu_and_elu_swaps_every_block() -> None:
    assert get_model_card("snn").defaults["activation"] == "selu"
    torch.manual_seed(0)
    selu = create_model("snn", input_dims={"omics": 7}, hidden_dims=[6, 5, 4], dropout=0.25)
    torch.manual_seed(0)
    elu = create_model("snn", input_dims={"omics": 7}, hidden_dims=[6, 5, 4], dropout=0.25, activation="elu")
    assert _activations(selu) == [nn.SELU] * 3
    assert _activations(elu) == [nn.ELU] * 3
    for block in elu.encoder:  # Linear -> ELU -> AlphaDropout, as PF's MaxNet / MCAT's SNN_Block
        assert [type(m) for m in block] == [nn.Linear, nn.ELU, nn.AlphaDropout]
        assert block[2].p == 0.25
    # same LeCun-normal init and parameters: only the non-linearity differs
    for (k, a), (_, b) in zip(selu.state_dict().items(), elu.state_dict().items(), strict=True):
        assert torch.equal(a, b), k
    x = torch.randn(3, 7)
    selu.eval()
    elu.eval()
    assert torch.allclose(elu.encoder[0][1](x), nn.functional.elu(x))
    assert not torch.allclose(selu.encoder(x), elu.encoder(x))


def test_encoder_default_and_unknown_activation() -> None:
    assert _activations(SNNEncoder(4, [3], 0.0)) == [nn.SELU]
    with pytest.raises(ValueError, match="activation"):
        SNNEncoder(4, [3], 0.0, activation="relu")
    assert resolve_model_params("snn", activation="elu")["activation"] == "elu"
    with pytest.raises(ConfigError):
        resolve_model_params("snn", activaton="elu")
