"""The per-slide spread label of the attention heatmaps (percentile colours hide how uniform weights are)."""

from __future__ import annotations

import numpy as np

from gliofuse.report.attention import spread_label


def test_spread_label_reports_patch_count_and_max_min_ratio() -> None:
    assert spread_label(np.array([0.2, 0.3, 0.5])) == "3 patches, max/min weight 2.500"
    assert spread_label(np.full(40, 0.025)) == "40 patches, max/min weight 1.000"
    assert spread_label(np.array([1.0, 1.0031])) == "2 patches, max/min weight 1.003"
    assert spread_label(np.array([0.0, 1.0])) == "2 patches, max/min weight inf"
    assert spread_label(np.array([])) == "0 patches, max/min weight nan"
