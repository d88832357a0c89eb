"""Building blocks shared by model families."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


class GatedAttentionPooling(nn.Module):
    """Gated attention pooling over a padded bag of instances (Ilse et al., 2018, Eq. 9).

    ``a_n = softmax_n( w^T (tanh(V h_n) * sigmoid(U h_n)) )`` over the valid instances,
    ``z = sum_n a_n h_n``. The score layer has no bias (softmax is shift-invariant).

    Parameters
    ----------
    in_dim : instance feature size H.
    attn_dim : hidden size of the attention network.
    dropout : dropout on the attention hidden units.

    References
    ----------
    Ilse, Tomczak, Welling. Attention-based deep multiple instance learning. ICML 2018. arXiv:1802.04712.
    """

    def __init__(self, in_dim: int, attn_dim: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.attn_v = nn.Linear(in_dim, attn_dim)
        self.attn_u = nn.Linear(in_dim, attn_dim)
        self.drop = nn.Dropout(dropout)
        self.score = nn.Linear(attn_dim, 1, bias=False)

    def forward(self, h: Tensor, mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Pool a bag.

        Parameters
        ----------
        h : Tensor, shape = (B, N, H)
        mask : bool Tensor, shape = (B, N); True = real instance, False = padding. None: all real.

        Returns
        -------
        pooled : Tensor, shape = (B, H); zeros for a bag with no valid instance.
        attention : Tensor, shape = (B, N); weights summing to 1 over valid instances, 0 on padding.
        """
        gate = torch.tanh(self.attn_v(h)) * torch.sigmoid(self.attn_u(h))
        logits = self.score(self.drop(gate)).squeeze(-1)  # (B, N)
        if mask is not None:
            logits = logits.masked_fill(~mask, float("-inf"))
            has_any = mask.any(dim=1, keepdim=True)
            logits = torch.where(has_any, logits, torch.zeros_like(logits))
            attn = torch.softmax(logits, dim=1) * has_any
            attn = attn.masked_fill(~mask, 0.0)
        else:
            attn = torch.softmax(logits, dim=1)
        pooled = torch.bmm(attn.unsqueeze(1), h).squeeze(1)
        return pooled, attn


class SNNBlock(nn.Sequential):
    """Self-normalising block: Linear -> SELU -> AlphaDropout, LeCun-normal init.

    References
    ----------
    Klambauer, Unterthiner, Mayr, Hochreiter. Self-normalizing neural networks. NeurIPS 2017. arXiv:1706.02515.
    """

    def __init__(self, in_dim: int, out_dim: int, dropout: float = 0.0) -> None:
        linear = nn.Linear(in_dim, out_dim)
        nn.init.normal_(linear.weight, mean=0.0, std=1.0 / math.sqrt(in_dim))
        nn.init.zeros_(linear.bias)
        super().__init__(linear, nn.SELU(), nn.AlphaDropout(dropout))


def mlp(in_dim: int, hidden_dims: tuple[int, ...] | list[int], dropout: float = 0.0) -> nn.Sequential:
    """Linear -> ReLU -> Dropout for each hidden size; output size ``hidden_dims[-1]``."""
    layers: list[nn.Module] = []
    d = in_dim
    for h in hidden_dims:
        layers += [nn.Linear(d, int(h)), nn.ReLU(), nn.Dropout(dropout)]
        d = int(h)
    return nn.Sequential(*layers)
