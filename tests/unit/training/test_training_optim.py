"""Optimiser settings: L1 penalty, learning-rate schedules, and the loop settings of a validation protocol."""

from __future__ import annotations

import pytest
import torch

from gliofuse.config import MCATValidationConfig, OptimConfig, PFValidationConfig, TrainingConfig
from gliofuse.training.optim import l1_penalty, lr_factor


def test_l1_penalty_is_the_sum_of_absolute_values() -> None:
    lin = torch.nn.Linear(2, 2)
    with torch.no_grad():
        lin.weight.copy_(torch.tensor([[1.5, -2.0], [0.0, 0.25]]))
        lin.bias.copy_(torch.tensor([-0.5, 3.0]))
    assert float(l1_penalty(list(lin.parameters())).detach()) == pytest.approx(1.5 + 2.0 + 0.0 + 0.25 + 0.5 + 3.0)



def test_linear_schedule_follows_pathomic_fusion() -> None:
    optim = OptimConfig(epochs=50, batch_size=1, lr=2e-3, weight_decay=0.0, patience=1, scheduler="linear")
    assert [lr_factor(e, optim) for e in (0, 1, 49)] == pytest.approx([1 - 1 / 51, 1 - 2 / 51, 1 / 51])
    floor = OptimConfig(epochs=4, batch_size=1, lr=1.0, weight_decay=0.0, patience=1, scheduler="linear", min_lr=0.5)
    assert lr_factor(3, floor) == pytest.approx(0.5 + 0.5 * (1 - 4 / 5))




def test_training_settings_are_the_loop_settings() -> None:
    training = TrainingConfig(l1=3e-4, select_epoch="last", weighted_sampler=True, scheduler="linear")
    assert isinstance(training, OptimConfig)
    assert (training.l1, training.select_epoch, training.weighted_sampler, training.scheduler) == (3e-4, "last", True,
                                                                                                   "linear")
    with pytest.raises(ValueError, match="select_epoch"):
        OptimConfig(select_epoch="median")


@pytest.mark.parametrize("protocol", [PFValidationConfig(), MCATValidationConfig()])
def test_a_protocol_derives_its_loop_settings_from_its_own_keys(protocol: PFValidationConfig) -> None:
    optim = protocol.optim()
    shared = set(OptimConfig.model_fields) & set(type(protocol).model_fields)
    assert shared == {"epochs", "batch_size", "lr", "weight_decay", "optimizer", "scheduler", "l1", "select_epoch",
                      "weighted_sampler"}
    assert all(getattr(optim, k) == getattr(protocol, k) for k in shared)
    assert (optim.patience, optim.device, optim.amp, optim.monitor, optim.resume) == (protocol.epochs, "cpu", False,
                                                                                       "loss", False)
