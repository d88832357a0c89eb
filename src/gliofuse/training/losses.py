"""Task losses: pure functions with array contracts (no config, no files)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def cox_ph_loss(risk: Tensor, time: Tensor, event: Tensor) -> Tensor:
    """Negative Cox partial log-likelihood with Breslow's handling of ties, averaged over events.

    ``L = -(1 / n_events) * sum_{i: event_i} [ risk_i - log sum_{j: time_j >= time_i} exp(risk_j) ]``

    Parameters
    ----------
    risk : float Tensor, shape = (n,)
        Log relative hazard; **higher = earlier event**.
    time : float Tensor, shape = (n,)
        Survival or censoring time (days).
    event : Tensor, shape = (n,)
        1/True = event (death) observed, 0/False = censored.

    Returns
    -------
    Scalar tensor. Zero (still connected to ``risk``'s graph) when there is no event.

    Notes
    -----
    The risk set of a tied event time includes every sample with the same time (Breslow).
    O(n^2) memory; fine for mini-batches and validation sets of a few thousand patients.

    References
    ----------
    Cox, Regression models and life-tables, JRSS-B 1972. Breslow, Covariance analysis of censored
    survival data, Biometrics 1974.
    """
    if risk.ndim != 1 or time.shape != risk.shape or event.shape != risk.shape:
        raise ValueError(f"cox_ph_loss expects 1-D risk, time, event of one length; got shapes "
                         f"{tuple(risk.shape)}, {tuple(time.shape)}, {tuple(event.shape)}.")
    ev = event.to(torch.bool)
    n_events = int(ev.sum())
    if n_events == 0:
        return risk.sum() * 0.0
    at_risk = time.unsqueeze(0) >= time.unsqueeze(1)  # [i, j]: j in the risk set of i
    scores = risk.unsqueeze(0).expand(risk.shape[0], -1).masked_fill(~at_risk, float("-inf"))
    log_denominator = torch.logsumexp(scores, dim=1)
    return -(risk[ev] - log_denominator[ev]).sum() / n_events


def cross_entropy(logits: Tensor, target: Tensor, *, ignore_index: int = -1) -> Tensor:
    """Mean cross-entropy over labelled samples.

    Parameters
    ----------
    logits : float Tensor, shape = (n, K).
    target : long Tensor, shape = (n,), class indices; ``ignore_index`` (-1, missing) is skipped.

    Returns
    -------
    Scalar tensor; zero (connected to the graph) when no sample is labelled.
    """
    if logits.ndim != 2 or target.shape != logits.shape[:1]:
        raise ValueError(f"cross_entropy expects logits (n, K) and target (n,); got {tuple(logits.shape)}, "
                         f"{tuple(target.shape)}.")
    if not bool((target != ignore_index).any()):
        return logits.sum() * 0.0
    return F.cross_entropy(logits, target.long(), ignore_index=ignore_index)
