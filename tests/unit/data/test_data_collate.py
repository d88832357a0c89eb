"""Padding ragged bags into a Batch with masks."""

from __future__ import annotations

import pytest
import torch

from gliofuse.data.batch import PatientSample
from gliofuse.data.collate import collate_bags


def _s(i: int, n: int | None, g: int | None = 23, d: int = 37) -> PatientSample:
    return PatientSample(patient_id=f"P{i}", wsi=None if n is None else torch.randn(n, d),
                         omics=None if g is None else torch.randn(g), time_days=float(i + 1), event=1.0, label=i)


def test_collate_pads_and_masks() -> None:
    samples = [_s(0, 11), _s(1, 3), _s(2, 7)]
    b = collate_bags(samples)
    assert b.wsi.shape == (3, 11, 37) and b.wsi_mask.shape == (3, 11) and b.omics.shape == (3, 23)
    assert b.wsi_mask.sum(dim=1).tolist() == [11, 3, 7]
    assert torch.equal(b.wsi[1, :3], samples[1].wsi) and (b.wsi[1, 3:] == 0).all()
    assert b.patient_ids == ["P0", "P1", "P2"] and b.label.tolist() == [0, 1, 2]
    assert b.label.dtype == torch.long and b.wsi_mask.dtype == torch.bool
    assert len(b) == 3 and b.modalities == ("wsi", "omics")
    moved = b.to("cpu")
    assert torch.equal(moved.wsi, b.wsi)


def test_collate_without_modalities_and_errors() -> None:
    b = collate_bags([_s(0, None), _s(1, None)])
    assert b.wsi is None and b.wsi_mask is None and b.modalities == ("omics",)
    b = collate_bags([_s(0, 4, g=None)])
    assert b.omics is None
    with pytest.raises(ValueError, match="disagree"):
        collate_bags([_s(0, 4), _s(1, None)])
    with pytest.raises(ValueError, match="at least one"):
        collate_bags([])
