"""Per-patient bags of patch features plus an expression profile, and the typed ``Batch``.

Inputs (docs/data-contracts.md):

* §5 slide feature files ``results/features/<encoder>/<slide_id>.h5`` (``features`` (N, D)
  float32, ``status`` attr ``ok``/``skipped``). A patient's bag is the concatenation of the
  ``features`` of all its ``ok`` slides; patient id = first 12 characters of the file stem.
* §6 omics matrix ``results/omics/expression.h5`` (``values`` (P, G), ``patients``, ``genes``,
  ``gene_names``).

The ``coords`` of §5 become integer grid cells (:func:`grid_positions`); a patient's slides are laid
out side by side (:func:`layout_slides`) so that 2-D models can build a token map. Bags are per
patient (all slides) or per slide (``bag_level="slide"``; predictions are then averaged per patient
by the harness).

Omics preprocessing (:class:`OmicsPreprocessor`, :class:`GeneSetPreprocessor`) is fit on the training
patients only.
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


def _grid_step(coords: np.ndarray) -> float:
    """Patch pitch in level-0 px: smallest gap between neighbours of one row or one column."""
    gaps: list[np.ndarray] = []
    for axis, other in ((0, 1), (1, 0)):
        order = np.lexsort((coords[:, axis], coords[:, other]))
        c = coords[order]
        same_line = c[1:, other] == c[:-1, other]
        d = np.diff(c[:, axis])[same_line]
        gaps.append(d[d > 0])
    found = np.concatenate(gaps)
    if found.size == 0:  # no two patches share a row or column: use the unique-value gaps
        found = np.concatenate([np.diff(np.unique(coords[:, 0])), np.diff(np.unique(coords[:, 1]))])
        found = found[found > 0]
    return float(found.min()) if found.size else 1.0


def raster_positions(n: int) -> np.ndarray:
    """Cells ``(row, col)`` (n, 2) of n tokens written row by row into a near-square grid."""
    side = max(1, int(np.ceil(np.sqrt(n))))
    idx = np.arange(n)
    return np.stack([idx // side, idx % side], axis=1).astype(np.int64)


def grid_positions(coords: np.ndarray) -> np.ndarray:
    """Integer grid cells of patches from their level-0 coordinates.

    Parameters
    ----------
    coords : int array, shape = (N, 2), level-0 ``(x, y)`` of each patch's top-left corner (contract §5).

    Returns
    -------
    int64 array, shape = (N, 2): ``(row, col)`` = ``round((y - y_min) / pitch)``, ``round((x - x_min) / pitch)``
    where the pitch is the smallest gap between neighbouring patches of a row or column. Degenerate
    coordinates (all equal with N > 1) fall back to :func:`raster_positions` in file order.
    """
    c = np.asarray(coords, dtype=np.float64).reshape(-1, 2)
    if c.shape[0] == 0:
        return np.zeros((0, 2), dtype=np.int64)
    if c.shape[0] > 1 and np.all(c == c[0]):
        return raster_positions(c.shape[0])
    step = _grid_step(c)
    col = np.rint((c[:, 0] - c[:, 0].min()) / step)
    row = np.rint((c[:, 1] - c[:, 1].min()) / step)
    return np.stack([row, col], axis=1).astype(np.int64)


def layout_slides(positions: Sequence[np.ndarray], gap: int = 1) -> np.ndarray:
    """Lay a patient's slide grids out on one map, side by side, keeping the map near-square.

    Slides are placed in order; each goes to the right of or below the current bounding box
    (``gap`` empty cells apart), whichever keeps the longer side shorter.

    Parameters
    ----------
    positions : per slide, int array (N_i, 2) of ``(row, col)`` cells from :func:`grid_positions`.

    Returns
    -------
    int64 array, shape = (sum N_i, 2): the cells on the patient's map, rows in input order.
    """
    out: list[np.ndarray] = []
    height = width = 0
    for pos in positions:
        pos = np.asarray(pos, dtype=np.int64).reshape(-1, 2)
        if pos.shape[0] == 0:
            out.append(pos)
            continue
        pos = pos - pos.min(axis=0)
        h, w = int(pos[:, 0].max()) + 1, int(pos[:, 1].max()) + 1
        if height == 0:
            offset, height, width = (0, 0), h, w
        else:
            right = (max(height, h), width + gap + w)
            below = (height + gap + h, max(width, w))
            if max(right) <= max(below):
                offset, (height, width) = (0, width + gap), right
            else:
                offset, (height, width) = (height + gap, 0), below
        out.append(pos + np.asarray(offset, dtype=np.int64))
    return np.concatenate(out, axis=0) if out else np.zeros((0, 2), dtype=np.int64)


def read_bag_with_positions_(infos: Sequence[FeatureFileInfo]) -> tuple[np.ndarray, np.ndarray]:
    """Features (sum N, D) float32 and map cells (sum N, 2) int64 of a patient's (or one slide's) bag.

    Cells come from each file's ``coords`` (:func:`grid_positions`, slides laid out with
    :func:`layout_slides`); a file without ``coords`` is laid out in raster order.
    """
    feats, cells = [], []
    for info in infos:
        with h5py.File(info.path, "r") as fh:
            feats.append(np.asarray(fh["features"][...], dtype=np.float32))
            if "coords" in fh and fh["coords"].shape == (feats[-1].shape[0], 2):
                cells.append(grid_positions(np.asarray(fh["coords"][...])))
            else:
                logger.warning("slide feature file %s has no usable 'coords'; its patches are laid out in file "
                               "order", info.path.name)
                cells.append(raster_positions(feats[-1].shape[0]))
    bag = np.concatenate(feats, axis=0)
    if not np.isfinite(bag).all():
        raise InputDataError(f"slide feature file(s) {[i.path.name for i in infos]} contain NaN or inf features. "
                             "Rerun `features_extract` for these slides.")
    return bag, layout_slides(cells)


# ----------------------------------------------------------------------------- omics
@dataclass(frozen=True)
class OmicsMatrix:
    """Expression matrix (§6): ``values`` (P, G) float32, ``patients`` (P,), ``genes`` (G,)."""

    values: np.ndarray
    patients: tuple[str, ...]
    genes: tuple[str, ...]
    gene_names: tuple[str, ...] = ()

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
        gene_names = _strings(fh["gene_names"]) if "gene_names" in fh else ()
    if values.shape != (len(patients), len(genes)):
        raise InputDataError(f"omics matrix {p}: 'values' has shape {values.shape} but there are "
                             f"{len(patients)} patients and {len(genes)} genes.")
    if not np.isfinite(values).all():
        raise InputDataError(f"omics matrix {p}: 'values' contains NaN or inf. Rerun `omics_matrix`.")
    if len(set(patients)) != len(patients):
        dup = sorted({x for x in patients if patients.count(x) > 1})
        raise InputDataError(f"omics matrix {p}: duplicate patient ids {dup[:5]}.")
    if gene_names and len(gene_names) != len(genes):
        raise InputDataError(f"omics matrix {p}: 'gene_names' has {len(gene_names)} entries but there are "
                             f"{len(genes)} genes. Rerun `omics_matrix`.")
    return OmicsMatrix(values=values, patients=patients, genes=genes, gene_names=gene_names)


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


@dataclass
class GeneSetPreprocessor:
    """One omics vector per named gene set, z-scored with statistics of the training rows only.

    Attributes (after :meth:`fit`): ``index[name]`` (G_s,) column indices into the full matrix,
    ``mean[name]``, ``std[name]`` (G_s,) of the training rows (std of constant genes set to 1).

    Parameters
    ----------
    names : gene-set names (:mod:`gliofuse.omics.genesets`; ``all`` = every gene).
    min_genes : a set matching fewer genes of the matrix raises ``InputDataError``.
    """

    names: Sequence[str]
    min_genes: int = 2
    index: dict[str, np.ndarray] = field(default_factory=dict)
    mean: dict[str, np.ndarray] = field(default_factory=dict)
    std: dict[str, np.ndarray] = field(default_factory=dict)

    def fit(self, train_values: np.ndarray, gene_names: Sequence[str]) -> GeneSetPreprocessor:
        """Match the sets against ``gene_names`` (G,) and fit on the training rows (n_train, G)."""
        from gliofuse.omics.genesets import match_gene_set

        x = np.asarray(train_values, dtype=np.float64)
        if x.ndim != 2 or x.shape[0] < 2:
            raise InputDataError(f"gene-set preprocessing needs at least 2 training patients, got shape {x.shape}.")
        if len(gene_names) != x.shape[1]:
            raise InputDataError(f"gene-set preprocessing: {len(gene_names)} gene names for {x.shape[1]} columns; "
                                 "the omics matrix needs a 'gene_names' dataset (contract §6).")
        for name in self.names:
            idx = match_gene_set(name, gene_names, min_genes=self.min_genes)
            sel = x[:, idx]
            std = sel.std(axis=0)
            self.index[name] = idx
            self.mean[name] = sel.mean(axis=0).astype(np.float32)
            self.std[name] = np.where(std > 1e-8, std, 1.0).astype(np.float32)
        return self

    @property
    def dims(self) -> dict[str, int]:
        """``{name: G_s}``."""
        return {n: int(i.size) for n, i in self.index.items()}

    def transform(self, values: np.ndarray) -> dict[str, np.ndarray]:
        """(n, G) -> ``{name: (n, G_s) float32}`` z-scored with the training statistics."""
        if not self.index:
            raise RuntimeError("GeneSetPreprocessor.transform called before fit.")
        x = np.asarray(values, dtype=np.float32)
        return {n: ((x[:, i] - self.mean[n]) / self.std[n]).astype(np.float32) for n, i in self.index.items()}

    def state_dict(self) -> dict[str, Any]:
        """Arrays as lists, for checkpoints."""
        return {n: {"gene_index": self.index[n].tolist(), "mean": self.mean[n].tolist(),
                    "std": self.std[n].tolist()} for n in self.index}


# ----------------------------------------------------------------------------- dataset
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
    omics_sets : ``{gene set: (P, G_s) float32}`` rows aligned to ``patient_ids`` (already
        preprocessed, :class:`GeneSetPreprocessor`); None: none.
    bag_level : ``"patient"``: one item per patient (all slides, laid out side by side);
        ``"slide"``: one item per slide (a patient's omics and targets repeated on each).

    Notes
    -----
    Items carry their patches' map cells (``wsi_pos``, :func:`read_bag_with_positions_`). ``len(ds)``
    counts items (slides with ``bag_level="slide"``); ``targets`` stay per patient.
    """

    def __init__(self, *, patient_ids: Sequence[str], slide_files: Mapping[str, Sequence[FeatureFileInfo]] | None,
                 omics: np.ndarray | None, targets: Targets | None = None, max_patches: int | None = None,
                 seed: int = 0, preload: bool | None = None, omics_sets: Mapping[str, np.ndarray] | None = None,
                 bag_level: str = "patient") -> None:
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
        """The same items with full bags (no patch sampling), sharing the in-memory cache."""
        view = copy.copy(self)
        view.max_patches = None
        return view

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
            with h5py.File(info.path, "r") as fh:
                ok = "coords" in fh and fh["coords"].shape == (info.n_patches, 2)
                out.append((info.path.stem, np.asarray(fh["coords"][...], dtype=np.int64) if ok else None))
        return out

    def __getitem__(self, index: int) -> PatientSample:
        pi = self.items[index][0]
        pid = self.patient_ids[pi]
        wsi = pos = None
        if self.slide_files is not None:
            wsi, pos = self.bag_and_positions(index)
            if self.max_patches is not None and wsi.shape[0] > self.max_patches:
                rng = np.random.default_rng([self.seed, self.epoch, index])
                keep = torch.from_numpy(np.sort(rng.choice(wsi.shape[0], size=self.max_patches, replace=False)))
                wsi, pos = wsi[keep], pos[keep]
        return PatientSample(
            patient_id=pid, wsi=wsi, omics=None if self.omics is None else self.omics[pi],
            time_days=float(self.targets.time_days[pi]), event=float(self.targets.event[pi]),
            label=int(self.targets.label[pi]), wsi_pos=pos,
            omics_sets={k: v[pi] for k, v in self.omics_sets.items()},
            labels={k: int(v[pi]) for k, v in self.targets.labels.items()})
