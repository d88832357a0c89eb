"""How a fold's items are drawn: data loaders, and the strata and weights of balanced sampling."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, WeightedRandomSampler

from gliofuse.data.collate import collate_bags
from gliofuse.data.datasets import PatientBagDataset
from gliofuse.training.objectives import Objective


def make_loader(ds: PatientBagDataset, batch_size: int, *, shuffle: bool, seed: int = 0,
                weights: Tensor | None = None, batches: Sequence[Sequence[int]] | None = None) -> DataLoader:
    """Batches of ``ds`` in the main process; ``shuffle`` with a ``seed``-ed generator.

    With ``weights`` (one per item): ``len(ds)`` draws with replacement, item ``i`` with probability
    proportional to ``weights[i]`` (:func:`balanced_weights`). With ``batches``: exactly these lists of item
    indices, in order (:func:`patch_budget_batches`); ``batch_size``, ``shuffle`` and ``weights`` are then unused.
    """
    if batches is not None:
        return DataLoader(ds, batch_sampler=[list(b) for b in batches], collate_fn=collate_bags, num_workers=0)
    gen = torch.Generator().manual_seed(seed) if shuffle else None
    if weights is not None:
        sampler = WeightedRandomSampler(weights, num_samples=len(weights), replacement=True, generator=gen)
        return DataLoader(ds, batch_size=batch_size, sampler=sampler, collate_fn=collate_bags, num_workers=0)
    return DataLoader(ds, batch_size=batch_size, shuffle=shuffle, generator=gen, collate_fn=collate_bags,
                      num_workers=0)


def sampling_strata(objective: Objective, ds: PatientBagDataset) -> np.ndarray:
    """Stratum of every item of ``ds`` for ``weighted_sampler``, int64 (len(ds),).

    Classification: the task's class label (missing = its own stratum). Survival: event x time bin, the
    bins of an objective that bins time (:meth:`Objective.time_bins`: MCAT's ``(bin, censorship)`` classes)
    or, for Cox, event only.
    """
    t = ds.targets
    owner = np.asarray([i for i, _ in ds.items], dtype=np.int64)
    if objective.task.kind == "survival":
        event = np.nan_to_num(np.asarray(t.event, dtype=np.float64), nan=-1.0).astype(np.int64)
        time = torch.as_tensor(np.nan_to_num(np.asarray(t.time_days, dtype=np.float64)))
        bins = objective.time_bins(time)
        bins = np.zeros(len(event), dtype=np.int64) if bins is None else bins.numpy().astype(np.int64)
        strata = bins * 3 + event + 1
    else:
        strata = np.asarray(t.labels.get(objective.task.name, t.label), dtype=np.int64)
    return strata[owner]


def balanced_weights(strata: np.ndarray) -> Tensor:
    """Sampling weight ``N / n_stratum`` per item (MCAT's ``make_weights_for_balanced_classes_split``)."""
    _, inverse, counts = np.unique(strata, return_inverse=True, return_counts=True)
    return torch.as_tensor(len(strata) / counts[inverse], dtype=torch.float64)


def patch_budget_batches(sizes: Sequence[int], batch_size: int, max_patches: int | None) -> list[list[int]]:
    """Consecutive items in order, at most ``batch_size`` per batch and, with ``max_patches``, at most that many
    padded patches per batch (items x largest ``sizes`` entry); an item larger than ``max_patches`` goes alone.

    Bounds inference memory by that of a training batch while keeping small bags batched (a patient's output
    does not depend on the batch it is in).
    """
    out: list[list[int]] = []
    current: list[int] = []
    longest = 0
    for i, n in enumerate(sizes):
        grown = max(longest, int(n))
        if current and (len(current) >= batch_size or (max_patches is not None
                                                       and grown * (len(current) + 1) > max_patches)):
            out.append(current)
            current, grown = [], int(n)
        current.append(i)
        longest = grown
    if current:
        out.append(current)
    return out
