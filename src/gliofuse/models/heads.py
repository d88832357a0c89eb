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


def build_head(kind: str, in_dim: int, n_classes: int = 0, dropout: float = 0.0) -> nn.Module:
    """Head for a task kind: ``"survival"`` -> :class:`CoxHead`; ``"classification"`` -> :class:`ClassificationHead`."""
    if kind == "survival":
        return CoxHead(in_dim)
    if kind == "classification":
        return ClassificationHead(in_dim, n_classes, dropout=dropout)
    raise ValueError(f"unknown head kind {kind!r}; expected 'survival' or 'classification'.")
