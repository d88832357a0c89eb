"""Per-split preprocessing of the published tables: training-row statistics, ROI weights, constant features."""

from __future__ import annotations

import numpy as np
import pytest

from gliofuse.reproduce.preprocess import TablePreprocessor


def test_table_preprocessor_uses_training_rows_and_weights() -> None:
    train = np.array([[1.0, np.nan], [3.0, 2.0], [5.0, 4.0]])
    pre = TablePreprocessor().fit(train)
    np.testing.assert_allclose(pre.median, [3.0, 3.0])
    out = pre.transform(np.array([[3.0, np.nan], [100.0, 3.0]]))
    assert out.dtype == np.float32 and np.isfinite(out).all()
    assert out[0, 0] == pytest.approx(0.0) and out[0, 1] == pytest.approx(out[1, 1])  # NaN -> training median
    assert out[1, 0] > 10  # test values do not enter the statistics
    weighted = TablePreprocessor().fit(train, weight=np.array([1, 1, 8]))
    assert weighted.mean[0] > pre.mean[0]  # the heavy row pulls the mean (ROI weighting)
    const = TablePreprocessor().fit(np.array([[1.0], [1.0]]))
    assert const.std[0] == 1.0
