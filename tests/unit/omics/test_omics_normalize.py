"""Omics preprocessing fit on the training rows only: top-variance genes and gene-set vectors."""

from __future__ import annotations

import numpy as np
import pytest

from gliofuse.errors import InputDataError
from gliofuse.omics.genesets import gene_set
from gliofuse.omics.normalize import GeneSetPreprocessor, OmicsPreprocessor


def test_omics_preprocessor_uses_training_rows_only() -> None:
    rng = np.random.default_rng(1)
    train = rng.standard_normal((9, 23)) * np.linspace(0.1, 3, 23) + 4.0
    test = rng.standard_normal((5, 23)) * np.linspace(300, 1, 23)  # high variance on other genes
    pre = OmicsPreprocessor(n_top_genes=5).fit(train)
    expected = np.sort(np.argsort(-train.var(axis=0))[:5])
    assert pre.gene_index.tolist() == expected.tolist()
    assert pre.gene_index.tolist() != np.sort(np.argsort(-np.vstack([train, test]).var(axis=0))[:5]).tolist()
    np.testing.assert_allclose(pre.mean, train[:, expected].mean(axis=0), rtol=1e-5)
    z = pre.transform(train)
    assert z.shape == (9, 5) and z.dtype == np.float32
    np.testing.assert_allclose(z.mean(axis=0), 0, atol=1e-5)
    np.testing.assert_allclose(z.std(axis=0), 1, atol=1e-4)
    assert pre.transform(test).shape == (5, 5)
    assert OmicsPreprocessor(n_top_genes=100).fit(train).n_features == 23


def test_gene_set_vectors_use_training_rows_only() -> None:
    names = [*gene_set("tumour")[:4], *gene_set("microenvironment")[:3], "NOT_A_MARKER"]
    rng = np.random.default_rng(2)
    train = rng.standard_normal((9, len(names))) * 2 + 5
    test = rng.standard_normal((4, len(names))) * 50
    pre = GeneSetPreprocessor(["tumour", "microenvironment"]).fit(train, names)
    assert pre.dims == {"tumour": 4, "microenvironment": 3}
    np.testing.assert_allclose(pre.mean["tumour"], train[:, :4].mean(axis=0), rtol=1e-5)
    z = pre.transform(train)
    np.testing.assert_allclose(z["microenvironment"].mean(axis=0), 0, atol=1e-5)
    assert pre.transform(test)["tumour"].shape == (4, 4)
    with pytest.raises(InputDataError, match="gene set 'tumour'"):
        GeneSetPreprocessor(["tumour"], min_genes=5).fit(train, names)
