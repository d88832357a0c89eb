"""Seeding one run (a training fold) for reproducible results."""

from __future__ import annotations

import os
import random

import numpy as np
import torch


def seed_everything(seed: int, device: torch.device | str = "cpu") -> None:
    """Seed Python, NumPy and torch; on CUDA also ask for deterministic kernels.

    On CPU the kernels used here are deterministic already; ``torch.use_deterministic_algorithms``
    is skipped there because its first call imports ``torch._inductor`` (~1.4 s of every job's
    start-up). On CUDA it is called with ``warn_only=True`` (a few kernels, e.g. ``index_add_``
    backward, have no deterministic variant) and cuDNN autotuning is disabled.
    """
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
    if torch.device(device).type == "cuda":
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # deterministic cuBLAS (before first use)
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True
