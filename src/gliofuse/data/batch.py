"""Typed patient samples, padded batches and per-patient targets, shared by datasets, collation and models."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor


@dataclass
class PatientSample:
    """One patient as returned by :class:`PatientBagDataset` (before collation).

    ``wsi``: (N, D) float32 or None; ``omics``: (G,) float32 or None; ``time_days`` (NaN if
    unknown), ``event`` (1.0 = death observed, NaN if unknown), ``label`` (class index, -1 if missing).
    """

    patient_id: str
    wsi: Tensor | None
    omics: Tensor | None
    time_days: float
    event: float
    label: int
    wsi_pos: Tensor | None = None
    omics_sets: dict[str, Tensor] = field(default_factory=dict)
    labels: dict[str, int] = field(default_factory=dict)


@dataclass
class Batch:
    """A padded mini-batch of patients.

    Attributes
    ----------
    wsi : float Tensor, shape = (B, N_max, D), or None when the dataset has no WSI modality.
        Bags zero-padded to the longest bag in the batch.
    wsi_mask : bool Tensor, shape = (B, N_max), or None. True = real patch, False = padding.
    omics : float Tensor, shape = (B, G), or None.
    patient_ids : list[str], length B.
    time_days : float Tensor, shape = (B,). Survival time in days (NaN if unknown).
    event : float Tensor, shape = (B,). 1 = death observed, 0 = censored (NaN if unknown).
    label : long Tensor, shape = (B,). Class index of the task, -1 if missing.
    wsi_pos : long Tensor, shape = (B, N_max, 2), or None. Grid cell ``(row, col)`` of each patch on the
        patient's token map (slides laid out side by side); -1 on padding.
    omics_sets : dict[str, Tensor], each shape = (B, G_s): one z-scored vector per gene set
        (``training.gene_sets``); empty when not built.
    labels : dict[str, Tensor], each long shape = (B,): class labels of other tasks (multi-task
        training; -1 if missing); empty in single-task training.
    """

    wsi: Tensor | None
    wsi_mask: Tensor | None
    omics: Tensor | None
    patient_ids: list[str]
    time_days: Tensor
    event: Tensor
    label: Tensor
    wsi_pos: Tensor | None = None
    omics_sets: dict[str, Tensor] = field(default_factory=dict)
    labels: dict[str, Tensor] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.patient_ids)

    def to(self, device: torch.device | str) -> Batch:
        """A copy with every tensor moved to ``device``."""
        def mv(t: Tensor | None) -> Tensor | None:
            return None if t is None else t.to(device, non_blocking=True)

        return Batch(wsi=mv(self.wsi), wsi_mask=mv(self.wsi_mask), omics=mv(self.omics),
                     patient_ids=list(self.patient_ids), time_days=mv(self.time_days),  # type: ignore[arg-type]
                     event=mv(self.event), label=mv(self.label), wsi_pos=mv(self.wsi_pos),  # type: ignore[arg-type]
                     omics_sets={k: v.to(device, non_blocking=True) for k, v in self.omics_sets.items()},
                     labels={k: v.to(device, non_blocking=True) for k, v in self.labels.items()})

    @property
    def modalities(self) -> tuple[str, ...]:
        """Modalities present in the batch."""
        return tuple(m for m, t in (("wsi", self.wsi), ("omics", self.omics)) if t is not None)


@dataclass(frozen=True)
class Targets:
    """Per-patient targets aligned to a patient list: ``time_days``, ``event`` (float, NaN if
    unknown) and ``label`` (int, -1 if missing), each shape = (P,); ``labels`` holds the class labels
    of further tasks (multi-task training), ``{task: (P,) int}``."""

    time_days: np.ndarray
    event: np.ndarray
    label: np.ndarray
    labels: Mapping[str, np.ndarray] = field(default_factory=dict)

    @classmethod
    def empty(cls, n: int) -> Targets:
        return cls(np.full(n, np.nan), np.full(n, np.nan), np.full(n, -1, dtype=np.int64))

