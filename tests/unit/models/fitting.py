"""Shared test helper: a few optimiser steps of a model + Cox head on one fixed batch."""

from __future__ import annotations

import torch

from gliofuse.data.batch import Batch
from gliofuse.models.base import FusionModel
from gliofuse.models.heads import CoxHead
from gliofuse.training.losses import cox_ph_loss


def cox_losses_on_fixed_batch(model: FusionModel, batch: Batch, *, steps: int, lr: float = 3e-3) -> list[float]:
    """Cox partial-likelihood loss after each of ``steps`` Adam steps (model in eval mode: no dropout)."""
    model.eval()
    head = CoxHead(model.embed_dim)
    opt = torch.optim.Adam([*model.parameters(), *head.parameters()], lr=lr)
    losses = []
    for _ in range(steps):
        loss = cox_ph_loss(head(model(batch).embedding), batch.time_days, batch.event)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    return losses
