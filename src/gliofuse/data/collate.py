"""Collate :class:`~gliofuse.data.datasets.PatientSample` lists into a padded :class:`Batch`."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from gliofuse.data.datasets import Batch, PatientSample


def collate_bags(samples: Sequence[PatientSample]) -> Batch:
    """Stack patients; zero-pad WSI bags to the longest bag and mark real patches in the mask.

    Parameters
    ----------
    samples : B patients; all have a ``wsi`` bag (N_i, D) or none has, likewise ``omics`` (G,).

    Returns
    -------
    Batch with ``wsi`` (B, max N_i, D), ``wsi_mask`` (B, max N_i) bool, ``omics`` (B, G).
    """
    if not samples:
        raise ValueError("collate_bags needs at least one sample.")
    has_wsi = {s.wsi is not None for s in samples}
    has_omics = {s.omics is not None for s in samples}
    if len(has_wsi) > 1 or len(has_omics) > 1:
        raise ValueError("collate_bags: samples disagree on which modalities they carry.")
    wsi = mask = None
    if samples[0].wsi is not None:
        n_max = max(int(s.wsi.shape[0]) for s in samples)  # type: ignore[union-attr]
        dim = int(samples[0].wsi.shape[1])
        wsi = torch.zeros(len(samples), n_max, dim, dtype=torch.float32)
        mask = torch.zeros(len(samples), n_max, dtype=torch.bool)
        for i, s in enumerate(samples):
            n = int(s.wsi.shape[0])  # type: ignore[union-attr]
            wsi[i, :n] = s.wsi  # type: ignore[index]
            mask[i, :n] = True
    omics = None
    if samples[0].omics is not None:
        omics = torch.stack([s.omics for s in samples]).float()  # type: ignore[misc]
    return Batch(
        wsi=wsi, wsi_mask=mask, omics=omics, patient_ids=[s.patient_id for s in samples],
        time_days=torch.tensor([s.time_days for s in samples], dtype=torch.float32),
        event=torch.tensor([s.event for s in samples], dtype=torch.float32),
        label=torch.tensor([s.label for s in samples], dtype=torch.long),
    )
