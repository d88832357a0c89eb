"""Preprocessing of a published table inside one split: imputation and z-scoring fit on the training rows."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from gliofuse.errors import InputDataError


@dataclass
class TablePreprocessor:
    """Median imputation, then z-scoring, both fit on the training rows (optionally row-weighted).

    Attributes (after :meth:`fit`): ``median``, ``mean``, ``std`` (G,) of the training rows; constant
    features get std 1.
    """

    median: np.ndarray = field(default_factory=lambda: np.zeros(0))
    mean: np.ndarray = field(default_factory=lambda: np.zeros(0))
    std: np.ndarray = field(default_factory=lambda: np.ones(0))

    def fit(self, train: np.ndarray, weight: np.ndarray | None = None) -> TablePreprocessor:
        """Fit on ``train`` (n, G) with NaN for missing; ``weight`` (n,) repeats rows (PF's ROI rows)."""
        x = np.asarray(train, dtype=np.float64)
        if x.ndim != 2 or x.shape[0] < 2:
            raise InputDataError(f"table preprocessing needs at least 2 training rows, got shape {x.shape}.")
        if weight is not None:
            x = np.repeat(x, np.asarray(weight, dtype=np.int64), axis=0)
        with np.errstate(all="ignore"):
            med = np.nanmedian(x, axis=0)
        self.median = np.where(np.isfinite(med), med, 0.0)
        filled = np.where(np.isfinite(x), x, self.median)
        self.mean = filled.mean(axis=0)
        std = filled.std(axis=0)
        self.std = np.where(std > 1e-8, std, 1.0)
        return self

    def transform(self, values: np.ndarray) -> np.ndarray:
        """(n, G) with NaN -> (n, G) float32, imputed and z-scored with the training statistics."""
        if self.mean.size == 0:
            raise RuntimeError("TablePreprocessor.transform called before fit.")
        x = np.asarray(values, dtype=np.float64)
        x = np.where(np.isfinite(x), x, self.median)
        return ((x - self.mean) / self.std).astype(np.float32)

    def state_dict(self) -> dict[str, list[float]]:
        """Arrays as lists (checkpoint)."""
        return {"median": self.median.tolist(), "mean": self.mean.tolist(), "std": self.std.tolist()}
