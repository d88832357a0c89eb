"""Collate :class:`~gliofuse.data.batch.PatientSample` lists into a padded :class:`Batch`."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from gliofuse.data.batch import Batch, PatientSample


def collate_bags(samples: Sequence[PatientSample]) -> Batch:
    """Stack patients; zero-pad WSI bags to the longest bag and mark real patches in the mask.

    Parameters
    ----------
    samples : B patients; all have a ``wsi`` bag (N_i, D) or none has, likewise ``omics`` (G,).

    Returns
    -------
    Batch with ``wsi`` (B, max N_i, D), ``wsi_mask`` (B, max N_i) bool, ``omics`` (B, G), ``wsi_pos``
    (B, max N_i, 2) long (-1 on padding; None unless every sample has positions), ``omics_sets``
    ``{name: (B, G_s)}`` and ``labels`` ``{task: (B,)}`` (keys common to all samples).
    """
    if not samples:
        raise ValueError("collate_bags needs at least one sample.")
    has_wsi = {s.wsi is not None for s in samples}
    has_omics = {s.omics is not None for s in samples}
    if len(has_wsi) > 1 or len(has_omics) > 1:
        raise ValueError("collate_bags: samples disagree on which modalities they carry.")
    wsi = mask = pos = None
    if samples[0].wsi is not None:
        n_max = max(int(s.wsi.shape[0]) for s in samples)  # type: ignore[union-attr]
        dim = int(samples[0].wsi.shape[1])
        wsi = torch.zeros(len(samples), n_max, dim, dtype=torch.float32)
        mask = torch.zeros(len(samples), n_max, dtype=torch.bool)
        with_pos = all(s.wsi_pos is not None for s in samples)
        if with_pos:
            pos = torch.full((len(samples), n_max, 2), -1, dtype=torch.long)
        for i, s in enumerate(samples):
            n = int(s.wsi.shape[0])  # type: ignore[union-attr]
            wsi[i, :n] = s.wsi  # type: ignore[index]
            mask[i, :n] = True
            if pos is not None:
                pos[i, :n] = s.wsi_pos  # type: ignore[index]
    omics = None
    if samples[0].omics is not None:
        omics = torch.stack([s.omics for s in samples]).float()  # type: ignore[misc]
    set_names = [k for k in samples[0].omics_sets if all(k in s.omics_sets for s in samples)]
    task_names = [k for k in samples[0].labels if all(k in s.labels for s in samples)]
    return Batch(
        wsi=wsi, wsi_mask=mask, omics=omics, patient_ids=[s.patient_id for s in samples],
        time_days=torch.tensor([s.time_days for s in samples], dtype=torch.float32),
        event=torch.tensor([s.event for s in samples], dtype=torch.float32),
        label=torch.tensor([s.label for s in samples], dtype=torch.long),
        wsi_pos=pos,
        omics_sets={k: torch.stack([s.omics_sets[k] for s in samples]).float() for k in set_names},
        labels={k: torch.tensor([s.labels[k] for s in samples], dtype=torch.long) for k in task_names},
    )
