"""Task heads: map a patient embedding (B, D) to task outputs.

Heads own no backbone. Each declares the loss it is trained with (``loss_name``) and the kind
of prediction columns it yields (docs/data-contracts.md §8).
"""

from __future__ import annotations

from torch import Tensor, nn


class ClassificationHead(nn.Module):
    """Linear classifier: embedding (B, D) -> logits (B, K); loss ``cross_entropy``."""

    loss_name = "cross_entropy"
    kind = "classification"

    def __init__(self, in_dim: int, n_classes: int, dropout: float = 0.0) -> None:
        super().__init__()
        if n_classes < 2:
            raise ValueError(f"ClassificationHead needs n_classes >= 2, got {n_classes}.")
        self.n_classes = n_classes
        self.drop = nn.Dropout(dropout)
        self.fc = nn.Linear(in_dim, n_classes)

    def forward(self, embedding: Tensor) -> Tensor:
        """embedding: (B, D) -> logits: (B, K)."""
        return self.fc(self.drop(embedding))


class CoxHead(nn.Module):
    """Cox proportional-hazards head: embedding (B, D) -> risk (B,), the log relative hazard.

    Polarity: **higher risk = earlier event** (docs/data-contracts.md). No bias: the Cox partial
    likelihood is invariant to a constant shift. Loss ``cox_ph``.
    """

    loss_name = "cox_ph"
    kind = "survival"

    def __init__(self, in_dim: int) -> None:
        super().__init__()
        self.fc = nn.Linear(in_dim, 1, bias=False)

    def forward(self, embedding: Tensor) -> Tensor:
        """embedding: (B, D) -> risk: (B,)."""
        return self.fc(embedding).squeeze(-1)


class DiscreteHazardHead(nn.Module):
    """Discrete-time hazard head: embedding (B, D) -> logits (B, K) of the K bin hazards.

    ``hazards = sigmoid(logits)``, bin survival ``S_k = prod_{j<=k} (1 - h_j)`` and the risk score
    ``risk = -sum_k S_k`` (**higher = earlier event**; :func:`gliofuse.training.losses.hazards_to_risk`).
    Loss ``discrete_survival_nll``.

    References
    ----------
    Zadeh and Schmid, Bias in cross-entropy-based training of deep survival networks, IEEE TPAMI 2021.
    """

    loss_name = "discrete_survival_nll"
    kind = "survival"

    def __init__(self, in_dim: int, n_bins: int, dropout: float = 0.0) -> None:
        super().__init__()
        if n_bins < 2:
            raise ValueError(f"DiscreteHazardHead needs n_bins >= 2, got {n_bins}.")
        self.n_bins = n_bins
        self.drop = nn.Dropout(dropout)
        self.fc = nn.Linear(in_dim, n_bins)

    def forward(self, embedding: Tensor) -> Tensor:
        """embedding: (B, D) -> hazard logits: (B, K)."""
        return self.fc(self.drop(embedding))


def build_head(kind: str, in_dim: int, n_classes: int = 0, dropout: float = 0.0, *,
               survival_loss: str = "cox", n_bins: int = 4) -> nn.Module:
    """Head for a task kind.

    ``"survival"`` -> :class:`CoxHead` (``survival_loss="cox"``) or :class:`DiscreteHazardHead` with
    ``n_bins`` bins (``survival_loss="nll"``); ``"classification"`` -> :class:`ClassificationHead`.
    Every head's last layer is ``head.fc`` (read by gradient policies).
    """
    if kind == "survival":
        if survival_loss == "cox":
            return CoxHead(in_dim)
        if survival_loss == "nll":
            return DiscreteHazardHead(in_dim, n_bins, dropout=dropout)
        raise ValueError(f"unknown survival_loss {survival_loss!r}; expected 'cox' or 'nll'.")
    if kind == "classification":
        return ClassificationHead(in_dim, n_classes, dropout=dropout)
    raise ValueError(f"unknown head kind {kind!r}; expected 'survival' or 'classification'.")
