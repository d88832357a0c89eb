"""The dataset of patients: WSI bags (with token-map cells) and/or an omics profile, plus targets.

Bags are per patient (all ``ok`` slides, laid out side by side, :mod:`gliofuse.data.bags`) or per slide
(``bag_level="slide"``; predictions are then averaged per patient by the harness). Omics rows come
already preprocessed (:mod:`gliofuse.omics.normalize`, fit on the training patients only).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from gliofuse.data.bags import read_bag_with_positions_
from gliofuse.data.batch import PatientSample, Targets
from gliofuse.errors import InputDataError
from gliofuse.features.store import FeatureFileInfo, read_slide_coords_

PRELOAD_MAX_BYTES = 2 * 1024**3  # bags are kept in memory when they total less than this


class PatientBagDataset(Dataset[PatientSample]):
    """Patients with their WSI bag and/or omics profile and targets.

    Parameters
    ----------
    patient_ids : patients, in dataset order.
    slide_files : ``{patient_id: [FeatureFileInfo, ...]}`` (from :func:`~gliofuse.data.bags.group_feature_files_`);
        None for a dataset without the WSI modality.
    omics : float32 array, shape = (P, G), rows aligned to ``patient_ids`` (already preprocessed);
        None for a dataset without omics.
    targets : :class:`Targets` aligned to ``patient_ids``; None: all unknown.
    max_patches : sample at most this many patches per bag (training); None: all (inference).
    inference_max_patches : patches per bag of :meth:`inference_view` (a fixed seeded subsample, the same at
        every call); None: all.
    seed : sampling seed; the patches drawn depend on ``(seed, epoch, index)`` only.
    preload : keep bags in memory; None: when they total < 2 GiB. Bags not kept in memory are read per item,
        only the sampled rows when the item is capped (``max_patches``).
    omics_sets : ``{gene set: (P, G_s) float32}`` rows aligned to ``patient_ids`` (already
        preprocessed, :class:`~gliofuse.omics.normalize.GeneSetPreprocessor`); None: none.
    bag_level : ``"patient"``: one item per patient (all slides, laid out side by side);
        ``"slide"``: one item per slide (a patient's omics and targets repeated on each). ``max_patches`` caps
        each item's bag: a patient's slides together, or each slide.
    inference_batch_patches : most padded patches (items x longest bag) of one inference batch
        (:func:`gliofuse.training.predict.predict`); a bag above it goes alone. None: ``batch_size`` items.

    Notes
    -----
    Items carry their patches' map cells (``wsi_pos``, :func:`~gliofuse.data.bags.read_bag_with_positions_`). ``len(ds)``
    counts items (slides with ``bag_level="slide"``); ``targets`` stay per patient.
    """

    def __init__(self, *, patient_ids: Sequence[str], slide_files: Mapping[str, Sequence[FeatureFileInfo]] | None,
                 omics: np.ndarray | None, targets: Targets | None = None, max_patches: int | None = None,
                 seed: int = 0, preload: bool | None = None, omics_sets: Mapping[str, np.ndarray] | None = None,
                 bag_level: str = "patient", inference_max_patches: int | None = None,
                 inference_batch_patches: int | None = None) -> None:
        self.patient_ids = list(patient_ids)
        n = len(self.patient_ids)
        if bag_level not in ("patient", "slide"):
            raise ValueError(f"bag_level must be 'patient' or 'slide', got {bag_level!r}.")
        self.bag_level = bag_level
        if slide_files is not None:
            missing = [p for p in self.patient_ids if not slide_files.get(p)]
            if missing:
                raise InputDataError(f"{len(missing)} patient(s) have no usable slide feature file "
                                     f"(status ok, N > 0), e.g. {missing[:5]}.")
            self.slide_files: dict[str, list[FeatureFileInfo]] | None = {
                p: list(slide_files[p]) for p in self.patient_ids}
        else:
            self.slide_files = None
        # items: (patient index, files of the item)
        self.items: list[tuple[int, list[FeatureFileInfo]]] = []
        for i, p in enumerate(self.patient_ids):
            files = [] if self.slide_files is None else self.slide_files[p]
            if bag_level == "slide" and files:
                self.items.extend((i, [f]) for f in files)
            else:
                self.items.append((i, files))
        if omics is not None:
            omics = np.asarray(omics, dtype=np.float32)
            if omics.ndim != 2 or omics.shape[0] != n:
                raise ValueError(f"omics must have shape ({n}, G), got {omics.shape}.")
        self.omics = None if omics is None else torch.from_numpy(omics)
        self.omics_sets: dict[str, Tensor] = {}
        for name, arr in (omics_sets or {}).items():
            arr = np.asarray(arr, dtype=np.float32)
            if arr.ndim != 2 or arr.shape[0] != n:
                raise ValueError(f"omics_sets[{name!r}] must have shape ({n}, G_s), got {arr.shape}.")
            self.omics_sets[name] = torch.from_numpy(arr)
        self.targets = targets if targets is not None else Targets.empty(n)
        lengths = {len(self.targets.time_days), len(self.targets.event), len(self.targets.label),
                   *(len(v) for v in self.targets.labels.values())}
        if lengths != {n}:
            raise ValueError("targets must be aligned to patient_ids.")
        self.max_patches = max_patches
        self.inference_max_patches = inference_max_patches
        self.inference_batch_patches = inference_batch_patches
        self.seed = int(seed)
        self.epoch = 0
        self._cache: dict[int, tuple[Tensor, Tensor]] = {}
        if self.slide_files is not None:
            if preload is None:
                total = sum(i.n_patches * i.embed_dim * 4 for v in self.slide_files.values() for i in v)
                preload = total < PRELOAD_MAX_BYTES
            if preload:
                for k in range(len(self.items)):
                    self._cache[k] = self._read(k)

    def __len__(self) -> int:
        return len(self.items)

    @property
    def wsi_dim(self) -> int:
        """Feature dimension D of the bags (0 without WSI)."""
        if self.slide_files is None or not self.patient_ids:
            return 0
        return self.slide_files[self.patient_ids[0]][0].embed_dim

    @property
    def omics_dim(self) -> int:
        """Number of omics features G (0 without omics)."""
        return 0 if self.omics is None else int(self.omics.shape[1])

    @property
    def omics_set_dims(self) -> dict[str, int]:
        """``{gene set: G_s}`` of the per-gene-set omics vectors."""
        return {k: int(v.shape[1]) for k, v in self.omics_sets.items()}

    def item_patient(self, index: int) -> str:
        """Patient id of item ``index``."""
        return self.patient_ids[self.items[index][0]]

    def set_epoch(self, epoch: int) -> None:
        """Select the patch sample of this epoch (training)."""
        self.epoch = int(epoch)

    def inference_view(self) -> PatientBagDataset:
        """The same items with full bags, or ``inference_max_patches`` patches per bag drawn with the seed and
        epoch 0 (deterministic), sharing the in-memory cache."""
        view = copy.copy(self)
        view.max_patches = self.inference_max_patches
        view.epoch = 0
        return view

    def bag_size(self, index: int) -> int:
        """Patches of item ``index`` as :meth:`__getitem__` returns it (the cap applied); 0 without WSI."""
        n = sum(i.n_patches for i in self.items[index][1])
        return n if self.max_patches is None else min(n, self.max_patches)

    def sampled_rows(self, index: int, n_patches: int | None = None) -> np.ndarray | None:
        """Sorted rows (int64) of item ``index``'s bag that :meth:`__getitem__` keeps this epoch, or None when it
        keeps the full bag. ``n_patches``: the bag size (default: the item's files' ``n_patches``)."""
        n = sum(i.n_patches for i in self.items[index][1]) if n_patches is None else int(n_patches)
        if self.max_patches is None or n <= self.max_patches:
            return None
        rng = np.random.default_rng([self.seed, self.epoch, index])
        return np.sort(rng.choice(n, size=self.max_patches, replace=False)).astype(np.int64)

    def _read(self, index: int) -> tuple[Tensor, Tensor]:
        feats, cells = read_bag_with_positions_(self.items[index][1])
        return torch.from_numpy(feats), torch.from_numpy(cells)

    def bag_and_positions(self, index: int) -> tuple[Tensor, Tensor]:
        """Full bag (N, D) float32 and map cells (N, 2) int64 of item ``index``."""
        assert self.slide_files is not None
        if index in self._cache:
            return self._cache[index]
        return self._read(index)

    def bag(self, index: int) -> Tensor:
        """Full bag of item ``index``: (N, D) float32."""
        return self.bag_and_positions(index)[0]

    def item_slides(self, index: int) -> list[tuple[str, np.ndarray | None]]:
        """The slides of item ``index`` in bag order: ``[(slide_id, coords), ...]``.

        ``slide_id`` is the feature file's stem; ``coords`` its level-0 ``coords`` (N_i, 2) int64
        (contract §5), or None when the file has none. The full bag is these slides' patches
        concatenated in this order (N = sum N_i, ``FeatureFileInfo.n_patches``).
        """
        out: list[tuple[str, np.ndarray | None]] = []
        for info in self.items[index][1]:
            coords = read_slide_coords_(info.path)
            out.append((info.path.stem, None if coords is None else np.asarray(coords, dtype=np.int64)))
        return out

    def __getitem__(self, index: int) -> PatientSample:
        pi = self.items[index][0]
        pid = self.patient_ids[pi]
        wsi = pos = None
        if self.slide_files is not None:
            keep = self.sampled_rows(index)
            if index in self._cache or keep is None:
                wsi, pos = self.bag_and_positions(index)
                if keep is not None:
                    wsi, pos = wsi[torch.from_numpy(keep)], pos[torch.from_numpy(keep)]
            else:  # not in memory: read only the sampled rows from disk
                feats, cells = read_bag_with_positions_(self.items[index][1], keep)
                wsi, pos = torch.from_numpy(feats), torch.from_numpy(cells)
        return PatientSample(
            patient_id=pid, wsi=wsi, omics=None if self.omics is None else self.omics[pi],
            time_days=float(self.targets.time_days[pi]), event=float(self.targets.event[pi]),
            label=int(self.targets.label[pi]), wsi_pos=pos,
            omics_sets={k: v[pi] for k, v in self.omics_sets.items()},
            labels={k: int(v[pi]) for k, v in self.targets.labels.items()})
