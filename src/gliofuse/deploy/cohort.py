"""A new cohort's inputs for a bundle: feature files checked against the bundle's encoder, expression rows
mapped to the training gene space, and each patient's modalities checked against what the model reads.

Missing modality (docs/data-contracts.md §11): a model reads ``card.modalities``; a patient lacking one
of them (no usable slide feature file, or no expression profile) is refused with a message naming the
patient and the modality, or, with ``drop_incomplete``, left out and listed. A modality the model does not
read is ignored. No model falls back to a single modality: fusion weights were never trained on a
constant stand-in for the absent input.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from gliofuse.data.bags import group_feature_files_
from gliofuse.data.splits import short_ids
from gliofuse.deploy.bundle import Bundle, feature_encoder_
from gliofuse.errors import InputDataError
from gliofuse.features.store import FeatureFileInfo
from gliofuse.omics.matrix import OmicsMatrix, read_omics_

logger = logging.getLogger(__name__)

MODALITY_NAMES = {"wsi": "slides (no usable feature file)", "omics": "RNA (no expression profile)"}


@dataclass
class CohortInputs:
    """What ``predict`` feeds the members, row-aligned to ``patients``.

    ``omics_values``: (P, G_train) float32 in the training matrix's column order, NaN where a gene is missing
    (each member fills its own training mean); ``missing_genes``: model genes absent from the new matrix;
    ``n_model_genes``: genes the normalisers use; ``excluded``: ``{patient: [missing modalities]}``.
    """

    patients: list[str]
    slide_files: dict[str, list[FeatureFileInfo]] | None = None
    omics_values: np.ndarray | None = None
    missing_genes: list[str] = field(default_factory=list)
    n_model_genes: int = 0
    excluded: dict[str, list[str]] = field(default_factory=dict)

    @property
    def missing_gene_fraction(self) -> float:
        return len(self.missing_genes) / self.n_model_genes if self.n_model_genes else 0.0


def feature_files_(paths: Sequence[Path]) -> list[Path]:
    """``--features``: h5 files, or folders whose ``*.h5`` files are taken (sorted)."""
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            out += sorted(p.glob("*.h5"))
        elif p.exists():
            out.append(p)
        else:
            raise InputDataError(f"feature file or folder {p} does not exist.")
    return out


def model_gene_index(bundle: Bundle) -> np.ndarray:
    """Training-matrix columns any member's normaliser reads (sorted, unique)."""
    cols: list[np.ndarray] = [np.zeros(0, dtype=np.int64)]
    for m in bundle.members:
        if m.omics is not None:
            cols.append(m.omics.gene_index)
        if m.gene_sets is not None:
            cols += list(m.gene_sets.index.values())
    return np.unique(np.concatenate(cols))


def read_cohort_inputs_(bundle: Bundle, *, feature_paths: Sequence[Path], omics_path: Path | None,
                        patients: Sequence[str] | None, max_missing_gene_fraction: float,
                        drop_incomplete: bool = False,
                        slide_patients: Mapping[str, str] | None = None) -> CohortInputs:
    """Read and check the new cohort's inputs for ``bundle``.

    Parameters
    ----------
    feature_paths : slide feature files (contract §5, stem = slide id).
    slide_patients : ``{slide_id: patient_id}`` of the cohort's slide sheet; None: patient id = the first 12
        characters of the stem (TCGA barcodes).
    omics_path : expression matrix (contract §6), genes matched to the training genes by id, else by symbol.
    patients : the patients to predict; None: every patient with an input the model reads.
    max_missing_gene_fraction : ``predict.max_missing_gene_fraction``.

    Raises
    ------
    InputDataError
        Another encoder or feature dimension than the bundle's, a needed input not given, too many model
        genes missing, or (without ``drop_incomplete``) a patient missing a modality the model reads.
    """
    uses_wsi, uses_omics = "wsi" in bundle.modalities, "omics" in bundle.modalities
    available: dict[str, set[str]] = {}
    by_patient = None
    if uses_wsi:
        files = feature_files_(feature_paths)
        if not files:
            raise InputDataError(f"model {bundle.model_name} reads slides: give feature files (--features).")
        _check_encoder(bundle, files)
        by_patient, dim = group_feature_files_(files, slide_patients)
        want = int(bundle.meta["encoder"]["feature_dim"])
        if by_patient and dim != want:
            raise InputDataError(f"feature dimension {dim} of the new feature files differs from the bundle's "
                                 f"{want} (encoder {bundle.meta['encoder']['name']!r}); extract features with that "
                                 "encoder.")
        available["wsi"] = set(by_patient)
    matrix = None
    if uses_omics:
        if omics_path is None:
            raise InputDataError(f"model {bundle.model_name} reads RNA: give an expression matrix (--omics).")
        matrix = read_omics_(Path(omics_path))
        available["omics"] = set(matrix.patients)
    chosen = sorted(set().union(*available.values())) if patients is None else list(dict.fromkeys(patients))
    excluded = {p: [MODALITY_NAMES[m] for m, have in available.items() if p not in have] for p in chosen}
    excluded = {p: v for p, v in excluded.items() if v}
    if excluded and not drop_incomplete:
        lines = "; ".join(f"{p}: {', '.join(v)}" for p, v in list(excluded.items())[:5])
        raise InputDataError(f"{len(excluded)} patient(s) lack an input that model {bundle.model_name} reads "
                             f"({', '.join(bundle.modalities)}): {lines}. Give the missing inputs, leave these "
                             "patients out (--patients), or pass --drop-incomplete (predict.drop_incomplete).")
    kept = [p for p in chosen if p not in excluded]
    if excluded:
        logger.warning("left out %d patient(s) missing a modality: %s", len(excluded), short_ids(list(excluded)))
    if not kept:
        raise InputDataError(f"no patient has every input model {bundle.model_name} reads.")
    out = CohortInputs(patients=kept, excluded=excluded,
                       slide_files=None if by_patient is None else {p: by_patient[p] for p in kept})
    if matrix is not None:
        out.omics_values, out.missing_genes, out.n_model_genes = _align_genes(
            bundle, matrix, kept, max_missing_gene_fraction)
    return out


def _check_encoder(bundle: Bundle, files: Sequence[Path]) -> None:
    want = bundle.meta["encoder"]["name"]
    have = feature_encoder_(files)
    if want and have and have != want:
        raise InputDataError(f"the new feature files were written by encoder {have!r} but bundle "
                             f"{bundle.path} was trained on encoder {want!r} features; extract with {want!r}.")


def _align_genes(bundle: Bundle, matrix: OmicsMatrix, patients: Sequence[str],
                 max_fraction: float) -> tuple[np.ndarray, list[str], int]:
    """(P, G_train) rows in training column order, NaN where missing; the missing model genes; their number."""
    genes: pd.DataFrame = bundle.genes
    by_id = {g: i for i, g in enumerate(matrix.genes)}
    by_name = {g: i for i, g in enumerate(matrix.gene_names) if g} if matrix.gene_names else {}
    source = np.full(len(genes), -1, dtype=np.int64)
    for k, (gid, name) in enumerate(zip(genes["gene_id"], genes["gene_name"], strict=True)):
        source[k] = by_id.get(gid, by_name.get(name, -1) if name else -1)
    needed = model_gene_index(bundle)
    missing_idx = needed[source[needed] < 0]
    label = genes["gene_name"].where(genes["gene_name"] != "", genes["gene_id"])
    missing = [str(label.iloc[i]) for i in missing_idx]
    fraction = len(missing) / len(needed) if len(needed) else 0.0
    if fraction > max_fraction:
        raise InputDataError(f"{len(missing)} of the {len(needed)} genes model {bundle.model_name} reads are "
                             f"missing from the expression matrix ({fraction:.1%} > predict.max_missing_gene_fraction "
                             f"= {max_fraction:g}), e.g. {', '.join(missing[:5])}. Give a matrix with these genes "
                             "(gene ids or symbols of the training matrix).")
    if missing:
        logger.warning("%d of %d model genes missing (%.1f%%), filled with the training mean: %s", len(missing),
                       len(needed), 100 * fraction, ", ".join(missing[:10]))
    rows = matrix.rows(list(patients))
    values = np.full((len(patients), len(genes)), np.nan, dtype=np.float32)
    have = source >= 0
    values[:, have] = rows[:, source[have]]
    return values, missing, len(needed)
