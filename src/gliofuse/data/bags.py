"""Per-patient bags of patch features with their token-map layout (contract §5 files, read via features.store).

A patient's bag is the concatenation of the ``features`` of all its ``ok`` slides with N > 0; the patient
of a file ``<slide_id>.h5`` comes from the slide sheet (``slide_patients``), else it is the first 12
characters of the stem (TCGA barcodes). The ``coords`` of each slide become integer grid cells
(:func:`grid_positions`) and a patient's slides are laid out side by side (:func:`layout_slides`) so
that 2-D models can build a token map.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np

from gliofuse.errors import InputDataError
from gliofuse.features.store import FeatureFileInfo, inspect_feature_file_, read_slide_features_

logger = logging.getLogger(__name__)

PATIENT_ID_LEN = 12


def patient_id_from_path(path: str | Path) -> str:
    """Patient id of a slide feature file: the first 12 characters of its stem."""
    return Path(path).stem[:PATIENT_ID_LEN]


def _patient_of(path: Path, slide_patients: Mapping[str, str] | None) -> str:
    if slide_patients is None:
        return patient_id_from_path(path)
    if path.stem not in slide_patients:
        raise InputDataError(f"slide feature file {path}: slide {path.stem!r} is not in the slide sheet; list it "
                             "there (patient_id, slide_id, slide_path) or leave the file out.")
    return slide_patients[path.stem]


def group_feature_files_(feature_paths: Iterable[str | Path], slide_patients: Mapping[str, str] | None = None
                         ) -> tuple[dict[str, list[FeatureFileInfo]], int]:
    """Validate feature files and group the usable ones by patient.

    A file is usable when its ``status`` is ``ok`` and it has at least one patch. All usable
    files must share one feature dimension. ``slide_patients`` (``{slide_id: patient_id}`` of a slide
    sheet) gives each file's patient by its stem (the slide id); None: the first 12 characters of the stem.

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
        by_patient[_patient_of(path, slide_patients)].append(info)
    if len(dims) > 1:
        examples = ", ".join(f"D={d} ({p.name})" for d, p in sorted(dims.items()))
        raise InputDataError(f"slide feature files disagree on the feature dimension: {examples}. "
                             "They must come from one encoder (results/features/<encoder>/).")
    if n_skipped:
        logger.info("ignored %d slide feature file(s) with status != ok or no patches", n_skipped)
    return dict(by_patient), next(iter(dims), 0)


def _check_finite(bag: np.ndarray, infos: Sequence[FeatureFileInfo]) -> None:
    if not np.isfinite(bag).all():
        raise InputDataError(f"slide feature file(s) {[i.path.name for i in infos]} contain NaN or inf features. "
                             "Rerun `features_extract` for these slides.")


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


def read_bag_with_positions_(infos: Sequence[FeatureFileInfo],
                             rows: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Features (n, D) float32 and map cells (n, 2) int64 of a patient's (or one slide's) bag.

    Cells come from each file's ``coords`` (:func:`grid_positions`, slides laid out with
    :func:`layout_slides`); a file without usable ``coords`` is laid out in raster order.

    ``rows``: sorted unique rows of the concatenated bag (N = sum of the files' ``n_patches``) to return;
    only those feature rows are read from disk (the layout still uses every patch's coords, so a row's
    cell does not depend on the sample). None: the full bag (n = N).
    """
    sizes = np.asarray([info.n_patches for info in infos], dtype=np.int64)
    starts = np.concatenate([[0], np.cumsum(sizes)])
    feats, cells = [], []
    for k, info in enumerate(infos):
        local = None if rows is None else rows[(rows >= starts[k]) & (rows < starts[k + 1])] - starts[k]
        features, coords = read_slide_features_(info.path, local)
        feats.append(features)
        if coords is not None:
            cells.append(grid_positions(coords))
        else:
            logger.warning("slide feature file %s has no usable 'coords'; its patches are laid out in file "
                           "order", info.path.name)
            cells.append(raster_positions(int(sizes[k])))
    bag = np.concatenate(feats, axis=0)
    _check_finite(bag, infos)
    layout = layout_slides(cells)
    return bag, layout if rows is None else layout[rows]
