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


def discrete_survival_nll(hazards: Tensor, bin_index: Tensor, event: Tensor, *, alpha: float = 0.0,
                          eps: float = 1e-7) -> Tensor:
    """Negative log-likelihood of a discrete-time hazard model, averaged over the batch.

    With hazards ``h_k = P(T in bin k | T >= bin k)``, survival ``S_k = prod_{j<=k} (1 - h_j)`` and
    ``S_{-1} = 1``, a patient with event in bin ``y`` contributes ``-log S_{y-1} - log h_y`` and a
    patient censored in bin ``y`` contributes ``-log S_y`` (censoring at the end of bin ``y``).
    ``loss = (1 - alpha) * mean(all terms) + alpha * mean(uncensored terms)``.

    Parameters
    ----------
    hazards : float Tensor, shape = (n, K), values in (0, 1) (sigmoid of the head logits).
    bin_index : long Tensor, shape = (n,), time bin 0..K-1 of each patient's survival/censoring time.
    event : Tensor, shape = (n,); 1/True = death observed, 0/False = censored.
    alpha : weight of the extra uncensored-only term (MCAT; 0 in the subspace-fusion original).
    eps : lower clamp of probabilities inside the logs.

    Returns
    -------
    Scalar tensor.

    References
    ----------
    Zadeh and Schmid, Bias in cross-entropy-based training of deep survival networks, IEEE TPAMI 2021.
    Chen et al., Multimodal co-attention transformer for survival prediction (MCAT), ICCV 2021.
    """
    if hazards.ndim != 2 or bin_index.shape != hazards.shape[:1] or event.shape != hazards.shape[:1]:
        raise ValueError(f"discrete_survival_nll expects hazards (n, K), bin_index (n,), event (n,); got "
                         f"{tuple(hazards.shape)}, {tuple(bin_index.shape)}, {tuple(event.shape)}.")
    if hazards.shape[0] == 0:
        return hazards.sum() * 0.0
    y = bin_index.long().clamp(0, hazards.shape[1] - 1).unsqueeze(1)
    ev = event.to(hazards.dtype).unsqueeze(1)
    surv = torch.cumprod(1.0 - hazards, dim=1)
    surv_pad = torch.cat([torch.ones_like(surv[:, :1]), surv], dim=1)  # S_{-1}=1, S_0, ..., S_{K-1}
    s_before = surv_pad.gather(1, y).clamp_min(eps)
    h_y = hazards.gather(1, y).clamp_min(eps)
    s_at = surv_pad.gather(1, y + 1).clamp_min(eps)
    uncensored = -ev * (torch.log(s_before) + torch.log(h_y))
    censored = -(1.0 - ev) * torch.log(s_at)
    total = (uncensored + censored).mean()
    if alpha == 0:
        return total
    return (1.0 - alpha) * total + alpha * uncensored.mean()


def hazards_to_risk(hazards: Tensor) -> Tensor:
    """Risk score ``-sum_k S_k`` of discrete hazards (B, K) -> (B,); **higher = earlier event**."""
    return -torch.cumprod(1.0 - hazards, dim=-1).sum(dim=-1)


def survival_bin_edges(time_days: Tensor | list[float], n_bins: int) -> Tensor:
    """Inner edges (n_bins - 1,) of ``n_bins`` time bins: quantiles of ``time_days`` (training patients).

    Duplicate quantiles (many tied times) are nudged to be strictly increasing.
    """
    t = torch.as_tensor(time_days, dtype=torch.float64)
    t = t[torch.isfinite(t)]
    if t.numel() == 0:
        raise ValueError("survival_bin_edges needs at least one finite survival time.")
    q = torch.linspace(0, 1, n_bins + 1, dtype=torch.float64)[1:-1]
    edges = torch.quantile(t, q)
    for i in range(1, edges.numel()):
        if edges[i] <= edges[i - 1]:
            edges[i] = edges[i - 1] + 1e-6
    return edges


def survival_bins(time_days: Tensor, edges: Tensor, *, closed: str = "right") -> Tensor:
    """Bin index (long, 0..len(edges)) of each time.

    ``closed="right"``: bin k holds ``edges[k-1] < t <= edges[k]``; ``"left"``: ``edges[k-1] <= t < edges[k]``
    (the subspace-fusion original's convention, so a time equal to an edge falls in the later bin).
    """
    if closed not in ("right", "left"):
        raise ValueError(f"closed must be 'right' or 'left', got {closed!r}.")
    return torch.bucketize(time_days.to(edges.dtype), edges.to(time_days.device), right=closed == "left")
