"""Balanced sampling: strata per task kind and the inverse-frequency weights."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gliofuse.data.batch import Targets
from gliofuse.data.datasets import PatientBagDataset
from gliofuse.tasks import get_task
from gliofuse.training.objectives import DiscreteHazardObjective, build_objective
from gliofuse.training.sampling import balanced_weights, sampling_strata


def _dataset(n: int) -> PatientBagDataset:
    rng = np.random.default_rng(0)
    time = 100.0 + 900.0 * rng.random(n)
    event = (np.arange(n) % 3 != 0).astype(np.float64)
    label = (np.arange(n) % 3).astype(np.int64)
    return PatientBagDataset(patient_ids=[f"P{i:03d}" for i in range(n)], slide_files=None,
                             omics=rng.normal(size=(n, 4)).astype(np.float32),
                             targets=Targets(time_days=time, event=event, label=label))


def test_balanced_weights_and_strata() -> None:
    assert balanced_weights(np.array([0, 0, 0, 1])).tolist() == pytest.approx([4 / 3, 4 / 3, 4 / 3, 4.0])
    ds = _dataset(8)
    edges = torch.tensor([300.0, 600.0], dtype=torch.float64)
    objective = DiscreteHazardObjective(get_task("survival"), edges=edges)
    strata = sampling_strata(objective, ds)
    t, e = ds.targets.time_days, ds.targets.event.astype(int)
    expected = np.digitize(t, [300.0, 600.0], right=True) * 3 + e + 1
    assert strata.tolist() == expected.tolist()
    grade = build_objective(get_task("grade"), train_time_days=t, train_labels=ds.targets.label)
    assert sampling_strata(grade, ds).tolist() == ds.targets.label.tolist()




def test_cox_strata_are_the_event_only() -> None:
    ds = _dataset(6)
    cox = build_objective(get_task("survival"), train_time_days=ds.targets.time_days, train_labels=None)
    assert cox.time_bins(torch.zeros(3)) is None
    assert sampling_strata(cox, ds).tolist() == (ds.targets.event.astype(int) + 1).tolist()
