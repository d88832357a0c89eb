"""gliofuse.device.resolve_device: one behaviour for every stage's ``device`` key."""

from __future__ import annotations

import pytest
import torch

from gliofuse.device import resolve_device
from gliofuse.errors import ConfigError


def test_cpu_and_auto_without_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("cpu", key="features.device") == torch.device("cpu")
    assert resolve_device("auto", key="features.device") == torch.device("cpu")


def test_auto_picks_cuda_when_visible(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device("auto", key="training.device").type == "cuda"


@pytest.mark.parametrize("spec", ["cuda", "cuda:1"])
def test_absent_cuda_names_the_key(monkeypatch: pytest.MonkeyPatch, spec: str) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ConfigError, match=rf"features\.device = '{spec}' but CUDA is not available"):
        resolve_device(spec, key="features.device")


def test_not_a_device_names_the_key() -> None:
    with pytest.raises(ConfigError, match=r"training\.device = 'gpu0' is not a torch device"):
        resolve_device("gpu0", key="training.device")
