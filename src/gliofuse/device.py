"""Choosing the torch device from a config value (one behaviour for every stage)."""

from __future__ import annotations

import torch

from gliofuse.errors import ConfigError


def resolve_device(spec: str, *, key: str = "device") -> torch.device:
    """The torch device a config value asks for.

    ``"auto"`` -> ``cuda`` when a GPU is visible, else ``cpu``. Asking for CUDA where there is none raises
    :class:`ConfigError` naming the config ``key`` (e.g. ``"features.device"``, ``"training.device"``).
    """
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(spec)
    except (RuntimeError, ValueError) as exc:
        raise ConfigError(f"{key} = {spec!r} is not a torch device: {exc}. Use 'auto', 'cpu' or 'cuda'.") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"{key} = {spec!r} but CUDA is not available on this machine; use 'auto' or 'cpu'.")
    return device
