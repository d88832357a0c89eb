"""Omics preprocessing fit on the training patients only: top-variance genes (:class:`OmicsPreprocessor`)
and per-gene-set vectors (:class:`GeneSetPreprocessor`), both z-scored with training statistics."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from gliofuse.errors import InputDataError
from gliofuse.omics.genesets import match_gene_set

logger = logging.getLogger(__name__)


@dataclass
class OmicsPreprocessor:
    """Keep the ``n_top_genes`` most variable genes and z-score them, fit on training rows only.

    Attributes (after :meth:`fit`): ``gene_index`` (K,) column indices into the full matrix,
    ``mean`` and ``std`` (K,) of the training rows (std of constant genes set to 1).
    """

    n_top_genes: int
    gene_index: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    mean: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.float32))
    std: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.float32))

    def fit(self, train_values: np.ndarray) -> OmicsPreprocessor:
        """Fit on the training rows, shape = (n_train, G)."""
        x = np.asarray(train_values, dtype=np.float64)
        if x.ndim != 2 or x.shape[0] < 2:
            raise InputDataError(f"omics preprocessing needs at least 2 training patients, got shape {x.shape}.")
        var = x.var(axis=0)
        k = min(self.n_top_genes, x.shape[1])
        if k < self.n_top_genes:
            logger.info("training.n_top_genes=%d but the matrix has %d genes; using all", self.n_top_genes, k)
        order = np.argsort(-var, kind="stable")[:k]
        self.gene_index = np.sort(order).astype(np.int64)
        sel = x[:, self.gene_index]
        self.mean = sel.mean(axis=0).astype(np.float32)
        std = sel.std(axis=0)
        self.std = np.where(std > 1e-8, std, 1.0).astype(np.float32)
        return self

    @property
    def n_features(self) -> int:
        return int(self.gene_index.size)

    def transform(self, values: np.ndarray) -> np.ndarray:
        """(n, G) -> (n, n_top_genes) float32, z-scored with the training statistics."""
        if self.gene_index.size == 0:
            raise RuntimeError("OmicsPreprocessor.transform called before fit.")
        x = np.asarray(values, dtype=np.float32)[:, self.gene_index]
        return ((x - self.mean) / self.std).astype(np.float32)

    def state_dict(self) -> dict[str, Any]:
        """Arrays as lists, for checkpoints."""
        return {"n_top_genes": self.n_top_genes, "gene_index": self.gene_index.tolist(),
                "mean": self.mean.tolist(), "std": self.std.tolist()}

    @classmethod
    def from_state_dict(cls, state: dict[str, Any]) -> OmicsPreprocessor:
        """The fitted preprocessor of a :meth:`state_dict` (a checkpoint's ``omics_preprocessing``)."""
        return cls(n_top_genes=int(state["n_top_genes"]), gene_index=np.asarray(state["gene_index"], dtype=np.int64),
                   mean=np.asarray(state["mean"], dtype=np.float32), std=np.asarray(state["std"], dtype=np.float32))


@dataclass
class GeneSetPreprocessor:
    """One omics vector per named gene set, z-scored with statistics of the training rows only.

    Attributes (after :meth:`fit`): ``index[name]`` (G_s,) column indices into the full matrix,
    ``mean[name]``, ``std[name]`` (G_s,) of the training rows (std of constant genes set to 1).

    Parameters
    ----------
    names : gene-set names (:mod:`gliofuse.omics.genesets`; ``all`` = every gene).
    min_genes : a set matching fewer genes of the matrix raises ``InputDataError``.
    """

    names: Sequence[str]
    min_genes: int = 2
    index: dict[str, np.ndarray] = field(default_factory=dict)
    mean: dict[str, np.ndarray] = field(default_factory=dict)
    std: dict[str, np.ndarray] = field(default_factory=dict)

    def fit(self, train_values: np.ndarray, gene_names: Sequence[str]) -> GeneSetPreprocessor:
        """Match the sets against ``gene_names`` (G,) and fit on the training rows (n_train, G)."""
        x = np.asarray(train_values, dtype=np.float64)
        if x.ndim != 2 or x.shape[0] < 2:
            raise InputDataError(f"gene-set preprocessing needs at least 2 training patients, got shape {x.shape}.")
        if len(gene_names) != x.shape[1]:
            raise InputDataError(f"gene-set preprocessing: {len(gene_names)} gene names for {x.shape[1]} columns; "
                                 "the omics matrix needs a 'gene_names' dataset (contract §6).")
        for name in self.names:
            idx = match_gene_set(name, gene_names, min_genes=self.min_genes)
            sel = x[:, idx]
            std = sel.std(axis=0)
            self.index[name] = idx
            self.mean[name] = sel.mean(axis=0).astype(np.float32)
            self.std[name] = np.where(std > 1e-8, std, 1.0).astype(np.float32)
        return self

    @property
    def dims(self) -> dict[str, int]:
        """``{name: G_s}``."""
        return {n: int(i.size) for n, i in self.index.items()}

    def transform(self, values: np.ndarray) -> dict[str, np.ndarray]:
        """(n, G) -> ``{name: (n, G_s) float32}`` z-scored with the training statistics."""
        if not self.index:
            raise RuntimeError("GeneSetPreprocessor.transform called before fit.")
        x = np.asarray(values, dtype=np.float32)
        return {n: ((x[:, i] - self.mean[n]) / self.std[n]).astype(np.float32) for n, i in self.index.items()}

    def state_dict(self) -> dict[str, Any]:
        """Arrays as lists, for checkpoints."""
        return {n: {"gene_index": self.index[n].tolist(), "mean": self.mean[n].tolist(),
                    "std": self.std[n].tolist()} for n in self.index}

    @classmethod
    def from_state_dict(cls, state: dict[str, Any]) -> GeneSetPreprocessor:
        """The fitted preprocessor of a :meth:`state_dict` (a checkpoint's ``gene_sets``)."""
        out = cls(list(state))
        for name, s in state.items():
            out.index[name] = np.asarray(s["gene_index"], dtype=np.int64)
            out.mean[name] = np.asarray(s["mean"], dtype=np.float32)
            out.std[name] = np.asarray(s["std"], dtype=np.float32)
        return out

