"""Optimiser, learning-rate schedule, L1 penalty and mixed precision of the epoch loop (``OptimConfig``)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from gliofuse.config import OptimConfig


def make_optimizer(params: Sequence[nn.Parameter], optim: OptimConfig) -> torch.optim.Optimizer:
    """Adam (coupled L2), AdamW (decoupled) or SGD with momentum."""
    if optim.optimizer == "adam":
        return torch.optim.Adam(params, lr=optim.lr, weight_decay=optim.weight_decay)
    if optim.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=optim.lr, weight_decay=optim.weight_decay)
    if optim.optimizer == "sgd":
        return torch.optim.SGD(params, lr=optim.lr, momentum=optim.momentum, weight_decay=optim.weight_decay)
    raise ValueError(f"unknown optimizer {optim.optimizer!r}; expected adam, adamw or sgd.")


def lr_factor(epoch: int, optim: OptimConfig) -> float:
    """Learning-rate multiplier for 0-based ``epoch``: linear warm-up from 0.1, then the decay to ``min_lr``.

    ``cosine``: half a cosine over the remaining epochs. ``linear``: Pathomic Fusion's rule
    ``1 - (e + 1) / (span + 1)`` (e = epochs after warm-up, span = remaining epochs), so the first epoch
    already runs below the peak and the last at ``1 / (span + 1)`` of it (PF ``lr_policy linear``, niter 0).
    """
    if optim.scheduler == "none":
        return 1.0
    if epoch < optim.warmup_epochs:
        return 0.1 + 0.9 * epoch / optim.warmup_epochs
    span = max(1, optim.epochs - optim.warmup_epochs)
    floor = optim.min_lr / optim.lr
    if optim.scheduler == "linear":
        return floor + (1.0 - floor) * max(0.0, 1.0 - (epoch - optim.warmup_epochs + 1) / (span + 1))
    progress = min(1.0, (epoch - optim.warmup_epochs) / span)
    return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))


def make_scheduler(optimizer: torch.optim.Optimizer, optim: OptimConfig) -> torch.optim.lr_scheduler.LambdaLR:
    """Per-epoch schedule of :func:`lr_factor` (``scheduler.step()`` once per epoch)."""
    if optim.scheduler not in ("none", "cosine", "linear"):
        raise ValueError(f"unknown scheduler {optim.scheduler!r}; expected none, cosine or linear.")
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda e: lr_factor(e, optim))


def l1_penalty(params: Sequence[nn.Parameter]) -> Tensor:
    """``sum |w|`` over ``params`` (PF ``regularize_weights``, MCAT ``l1_reg_all``)."""
    return torch.stack([p.abs().sum() for p in params]).sum()


def autocast(device: torch.device, optim: OptimConfig | None) -> AbstractContextManager[Any]:
    """Autocast in ``optim.amp_dtype`` on CUDA when ``optim.amp``; a no-op on CPU or without settings."""
    if optim is not None and optim.amp and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16 if optim.amp_dtype == "bf16" else torch.float16)
    return nullcontext()


@dataclass
class Optimisation:
    """What steps the parameters: optimiser, per-epoch schedule, fp16 gradient scaler, L1 and clipping sets.

    Attributes
    ----------
    params : every trainable parameter (model, heads, loss weighting), the optimiser's and clipping's set.
    l1_params : trainable model and head parameters of the L1 term; empty without ``l1``.
    scaler : the gradient scaler of fp16 autocast on CUDA; None otherwise.
    """

    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    scaler: torch.amp.GradScaler | None
    params: list[nn.Parameter]
    l1_params: list[nn.Parameter]

    @classmethod
    def build(cls, model: nn.Module, heads: nn.Module, weighting: nn.Module, optim: OptimConfig,
              device: torch.device) -> Optimisation:
        """The optimisation of ``model`` + ``heads`` + ``weighting`` (already on ``device``)."""
        params = [p for p in [*model.parameters(), *heads.parameters(), *weighting.parameters()] if p.requires_grad]
        optimizer = make_optimizer(params, optim)
        scheduler = make_scheduler(optimizer, optim)
        l1_params = [p for p in [*model.parameters(), *heads.parameters()] if p.requires_grad] if optim.l1 else []
        fp16 = optim.amp and optim.amp_dtype == "fp16" and device.type == "cuda"
        scaler = torch.amp.GradScaler("cuda") if fp16 else None
        return cls(optimizer=optimizer, scheduler=scheduler, scaler=scaler, params=params, l1_params=l1_params)

    def backward(self, loss: Tensor) -> None:
        """Zero the gradients and back-propagate ``loss`` (scaled, then unscaled, with fp16)."""
        self.optimizer.zero_grad(set_to_none=True)
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
            self.scaler.unscale_(self.optimizer)
        else:
            loss.backward()

    def step(self, grad_clip: float | None) -> None:
        """Clip the global gradient norm (when set) and step the optimiser."""
        if grad_clip is not None:
            nn.utils.clip_grad_norm_(self.params, grad_clip)
        if self.scaler is not None:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()

    def state_dict(self) -> dict[str, Any]:
        """Optimiser, scheduler and scaler states (the loop's resume state)."""
        return {"optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
                "scaler": self.scaler.state_dict() if self.scaler is not None else None}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`."""
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        if self.scaler is not None and state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
