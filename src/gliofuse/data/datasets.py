"""Per-patient bags of patch features plus an expression profile, and the typed ``Batch``.

Inputs (docs/data-contracts.md):

* §5 slide feature files ``results/features/<encoder>/<slide_id>.h5`` (``features`` (N, D)
  float32, ``status`` attr ``ok``/``skipped``). A patient's bag is the concatenation of the
  ``features`` of all its ``ok`` slides; patient id = first 12 characters of the file stem.
* §6 omics matrix ``results/omics/expression.h5`` (``values`` (P, G), ``patients``, ``genes``).

Omics preprocessing (:class:`OmicsPreprocessor`) is fit on the training patients only.
"""

from __future__ import annotations

import copy
import logging
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from gliofuse.errors import InputDataError

logger = logging.getLogger(__name__)

PATIENT_ID_LEN = 12
PRELOAD_MAX_BYTES = 2 * 1024**3  # bags are kept in memory when they total less than this


# ----------------------------------------------------------------------------- batch types
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
    """

    wsi: Tensor | None
    wsi_mask: Tensor | None
    omics: Tensor | None
    patient_ids: list[str]
    time_days: Tensor
    event: Tensor
    label: Tensor

    def __len__(self) -> int:
        return len(self.patient_ids)

    def to(self, device: torch.device | str) -> Batch:
        """A copy with every tensor moved to ``device``."""
        def mv(t: Tensor | None) -> Tensor | None:
            return None if t is None else t.to(device, non_blocking=True)

        return Batch(wsi=mv(self.wsi), wsi_mask=mv(self.wsi_mask), omics=mv(self.omics),
                     patient_ids=list(self.patient_ids), time_days=mv(self.time_days),  # type: ignore[arg-type]
                     event=mv(self.event), label=mv(self.label))  # type: ignore[arg-type]

    @property
    def modalities(self) -> tuple[str, ...]:
        """Modalities present in the batch."""
        return tuple(m for m, t in (("wsi", self.wsi), ("omics", self.omics)) if t is not None)


# ----------------------------------------------------------------------------- WSI features
def patient_id_from_path(path: str | Path) -> str:
    """Patient id of a slide feature file: the first 12 characters of its stem."""
    return Path(path).stem[:PATIENT_ID_LEN]


@dataclass(frozen=True)
class FeatureFileInfo:
    """Header of a slide feature file (§5)."""

    path: Path
    status: str
    n_patches: int
    embed_dim: int
    provenance: str = ""


def inspect_feature_file_(path: str | Path) -> FeatureFileInfo:
    """Read the header of a slide feature file and validate it against contract §5.

    Raises
    ------
    InputDataError
        File missing or unreadable, ``features`` dataset missing or not 2-D.
    """
    p = Path(path)
    if not p.exists():
        raise InputDataError(f"slide feature file not found: {p}. Run `features_extract` for this slide.")
    try:
        with h5py.File(p, "r") as fh:
            if "features" not in fh:
                raise InputDataError(
                    f"slide feature file {p} has no 'features' dataset (has {sorted(fh.keys())}). "
                    "Delete it and rerun `features_extract` (docs/data-contracts.md §5).")
            ds = fh["features"]
            if ds.ndim != 2:
                raise InputDataError(f"slide feature file {p}: 'features' must be 2-D (N, D), got shape {ds.shape}.")
            status = fh.attrs.get("status", "ok")
            status = status.decode() if isinstance(status, bytes) else str(status)
            prov = fh.attrs.get("provenance", "")
            prov = prov.decode() if isinstance(prov, bytes) else str(prov)
            return FeatureFileInfo(path=p, status=status, n_patches=int(ds.shape[0]), embed_dim=int(ds.shape[1]),
                                   provenance=prov)
    except OSError as exc:
        raise InputDataError(f"slide feature file {p} cannot be read as HDF5 ({exc}). "
                             "Delete it and rerun `features_extract`.") from None


def group_feature_files_(feature_paths: Iterable[str | Path]) -> tuple[dict[str, list[FeatureFileInfo]], int]:
    """Validate feature files and group the usable ones by patient.

    A file is usable when its ``status`` is ``ok`` and it has at least one patch. All usable
    files must share one feature dimension.

    Returns
    -------
    by_patient : ``{patient_id: [FeatureFileInfo, ...]}`` (files sorted by path), usable files only.
    embed_dim : the common feature dimension D (0 when no file is usable).

    Raises
    ------
    InputDataError
        A file violates contract §5, or two files disagree on D.
    """
    by_patient: dict[str, list[FeatureFileInfo]] = defaultdict(list)
    dims: dict[int, Path] = {}
    n_skipped = 0
    for path in sorted(Path(p) for p in feature_paths):
        info = inspect_feature_file_(path)
        if info.status != "ok" or info.n_patches == 0:
            n_skipped += 1
            continue
        dims.setdefault(info.embed_dim, info.path)
        by_patient[patient_id_from_path(path)].append(info)
    if len(dims) > 1:
        examples = ", ".join(f"D={d} ({p.name})" for d, p in sorted(dims.items()))
        raise InputDataError(f"slide feature files disagree on the feature dimension: {examples}. "
                             "They must come from one encoder (results/features/<encoder>/).")
    if n_skipped:
        logger.info("ignored %d slide feature file(s) with status != ok or no patches", n_skipped)
    return dict(by_patient), next(iter(dims), 0)


def read_bag_(infos: Sequence[FeatureFileInfo]) -> np.ndarray:
    """Concatenate the ``features`` of a patient's slides: (sum N, D) float32."""
    parts = []
    for info in infos:
        with h5py.File(info.path, "r") as fh:
            parts.append(np.asarray(fh["features"][...], dtype=np.float32))
    bag = np.concatenate(parts, axis=0)
    if not np.isfinite(bag).all():
        raise InputDataError(f"slide feature file(s) {[i.path.name for i in infos]} contain NaN or inf features. "
                             "Rerun `features_extract` for these slides.")
    return bag


# ----------------------------------------------------------------------------- omics
@dataclass(frozen=True)
class OmicsMatrix:
    """Expression matrix (§6): ``values`` (P, G) float32, ``patients`` (P,), ``genes`` (G,)."""

    values: np.ndarray
    patients: tuple[str, ...]
    genes: tuple[str, ...]

    def rows(self, patient_ids: Sequence[str]) -> np.ndarray:
        """Rows of ``values`` for ``patient_ids`` in that order: (len(patient_ids), G)."""
        index = {p: i for i, p in enumerate(self.patients)}
        missing = [p for p in patient_ids if p not in index]
        if missing:
            raise InputDataError(f"{len(missing)} patient(s) have no omics profile, e.g. {missing[:5]}.")
        return self.values[[index[p] for p in patient_ids]]


def _strings(ds: h5py.Dataset) -> tuple[str, ...]:
    return tuple(x.decode() if isinstance(x, bytes) else str(x) for x in ds[...])


def read_omics_(path: str | Path) -> OmicsMatrix:
    """Read ``results/omics/expression.h5`` (contract §6) and validate it.

    Raises
    ------
    InputDataError
        Missing file or dataset, shape mismatch, NaN/inf values, duplicate patients.
    """
    p = Path(path)
    if not p.exists():
        raise InputDataError(f"omics matrix not found: {p}. Run the `omics_matrix` stage.")
    with h5py.File(p, "r") as fh:
        missing = [k for k in ("values", "patients", "genes") if k not in fh]
        if missing:
            raise InputDataError(f"omics matrix {p} lacks dataset(s) {missing} (has {sorted(fh.keys())}). "
                                 "Rerun `omics_matrix` (docs/data-contracts.md §6).")
        values = np.asarray(fh["values"][...], dtype=np.float32)
        patients = _strings(fh["patients"])
        genes = _strings(fh["genes"])
    if values.shape != (len(patients), len(genes)):
        raise InputDataError(f"omics matrix {p}: 'values' has shape {values.shape} but there are "
                             f"{len(patients)} patients and {len(genes)} genes.")
    if not np.isfinite(values).all():
        raise InputDataError(f"omics matrix {p}: 'values' contains NaN or inf. Rerun `omics_matrix`.")
    if len(set(patients)) != len(patients):
        dup = sorted({x for x in patients if patients.count(x) > 1})
        raise InputDataError(f"omics matrix {p}: duplicate patient ids {dup[:5]}.")
    return OmicsMatrix(values=values, patients=patients, genes=genes)


@dataclass
class OmicsPreprocessor:
    """Keep the ``n_top_genes`` most variable genes and z-score them, fit on training rows only.

    Attributes (after :meth:`fit`): ``gene_index`` (K,) column indices into the full matrix,
    ``mean`` and ``std`` (K,) of the training rows (std of constant genes set to 1).
    """

    n_top_genes: int
    gene_index: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    mean: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.float32))
    std: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.float32))

    def fit(self, train_values: np.ndarray) -> OmicsPreprocessor:
        """Fit on the training rows, shape = (n_train, G)."""
        x = np.asarray(train_values, dtype=np.float64)
        if x.ndim != 2 or x.shape[0] < 2:
            raise InputDataError(f"omics preprocessing needs at least 2 training patients, got shape {x.shape}.")
        var = x.var(axis=0)
        k = min(self.n_top_genes, x.shape[1])
        if k < self.n_top_genes:
            logger.info("training.n_top_genes=%d but the matrix has %d genes; using all", self.n_top_genes, k)
        order = np.argsort(-var, kind="stable")[:k]
        self.gene_index = np.sort(order).astype(np.int64)
        sel = x[:, self.gene_index]
        self.mean = sel.mean(axis=0).astype(np.float32)
        std = sel.std(axis=0)
        self.std = np.where(std > 1e-8, std, 1.0).astype(np.float32)
        return self

    @property
    def n_features(self) -> int:
        return int(self.gene_index.size)

    def transform(self, values: np.ndarray) -> np.ndarray:
        """(n, G) -> (n, n_top_genes) float32, z-scored with the training statistics."""
        if self.gene_index.size == 0:
            raise RuntimeError("OmicsPreprocessor.transform called before fit.")
        x = np.asarray(values, dtype=np.float32)[:, self.gene_index]
        return ((x - self.mean) / self.std).astype(np.float32)

    def state_dict(self) -> dict[str, Any]:
        """Arrays as lists, for checkpoints."""
        return {"n_top_genes": self.n_top_genes, "gene_index": self.gene_index.tolist(),
                "mean": self.mean.tolist(), "std": self.std.tolist()}


# ----------------------------------------------------------------------------- dataset
@dataclass(frozen=True)
class Targets:
    """Per-patient targets aligned to a patient list: ``time_days``, ``event`` (float, NaN if
    unknown) and ``label`` (int, -1 if missing), each shape = (P,)."""

    time_days: np.ndarray
    event: np.ndarray
    label: np.ndarray

    @classmethod
    def empty(cls, n: int) -> Targets:
        return cls(np.full(n, np.nan), np.full(n, np.nan), np.full(n, -1, dtype=np.int64))


class PatientBagDataset(Dataset[PatientSample]):
    """Patients with their WSI bag and/or omics profile and targets.

    Parameters
    ----------
    patient_ids : patients, in dataset order.
    slide_files : ``{patient_id: [FeatureFileInfo, ...]}`` (from :func:`group_feature_files_`);
        None for a dataset without the WSI modality.
    omics : float32 array, shape = (P, G), rows aligned to ``patient_ids`` (already preprocessed);
        None for a dataset without omics.
    targets : :class:`Targets` aligned to ``patient_ids``; None: all unknown.
    max_patches : sample at most this many patches per bag (training); None: all (inference).
    seed : sampling seed; the patches drawn depend on ``(seed, epoch, index)`` only.
    preload : keep bags in memory; None: when they total < 2 GiB.
    """

    def __init__(self, *, patient_ids: Sequence[str], slide_files: Mapping[str, Sequence[FeatureFileInfo]] | None,
                 omics: np.ndarray | None, targets: Targets | None = None, max_patches: int | None = None,
                 seed: int = 0, preload: bool | None = None) -> None:
        self.patient_ids = list(patient_ids)
        n = len(self.patient_ids)
        if slide_files is not None:
            missing = [p for p in self.patient_ids if not slide_files.get(p)]
            if missing:
                raise InputDataError(f"{len(missing)} patient(s) have no usable slide feature file "
                                     f"(status ok, N > 0), e.g. {missing[:5]}.")
            self.slide_files: dict[str, list[FeatureFileInfo]] | None = {
                p: list(slide_files[p]) for p in self.patient_ids}
        else:
            self.slide_files = None
        if omics is not None:
            omics = np.asarray(omics, dtype=np.float32)
            if omics.ndim != 2 or omics.shape[0] != n:
                raise ValueError(f"omics must have shape ({n}, G), got {omics.shape}.")
        self.omics = None if omics is None else torch.from_numpy(omics)
        self.targets = targets if targets is not None else Targets.empty(n)
        if not (len(self.targets.time_days) == len(self.targets.event) == len(self.targets.label) == n):
            raise ValueError("targets must be aligned to patient_ids.")
        self.max_patches = max_patches
        self.seed = int(seed)
        self.epoch = 0
        self._cache: dict[str, Tensor] = {}
        if self.slide_files is not None:
            if preload is None:
                total = sum(i.n_patches * i.embed_dim * 4 for v in self.slide_files.values() for i in v)
                preload = total < PRELOAD_MAX_BYTES
            if preload:
                for p in self.patient_ids:
                    self._cache[p] = torch.from_numpy(read_bag_(self.slide_files[p]))

    def __len__(self) -> int:
        return len(self.patient_ids)

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

    def set_epoch(self, epoch: int) -> None:
        """Select the patch sample of this epoch (training)."""
        self.epoch = int(epoch)

    def inference_view(self) -> PatientBagDataset:
        """The same patients with full bags (no patch sampling), sharing the in-memory cache."""
        view = copy.copy(self)
        view.max_patches = None
        return view

    def bag(self, index: int) -> Tensor:
        """Full bag of patient ``index``: (N, D) float32."""
        assert self.slide_files is not None
        pid = self.patient_ids[index]
        if pid in self._cache:
            return self._cache[pid]
        return torch.from_numpy(read_bag_(self.slide_files[pid]))

    def __getitem__(self, index: int) -> PatientSample:
        pid = self.patient_ids[index]
        wsi = None
        if self.slide_files is not None:
            wsi = self.bag(index)
            if self.max_patches is not None and wsi.shape[0] > self.max_patches:
                rng = np.random.default_rng([self.seed, self.epoch, index])
                keep = np.sort(rng.choice(wsi.shape[0], size=self.max_patches, replace=False))
                wsi = wsi[torch.from_numpy(keep)]
        return PatientSample(
            patient_id=pid, wsi=wsi, omics=None if self.omics is None else self.omics[index],
            time_days=float(self.targets.time_days[index]), event=float(self.targets.event[index]),
            label=int(self.targets.label[index]))
