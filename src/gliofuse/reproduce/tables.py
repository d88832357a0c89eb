"""Loaders for the published TCGA-GBMLGG omics tables and their original evaluation protocols.

Two protocols are reproduced (omics side only; the histology inputs of the papers are not public):

* **Pathomic Fusion** (Chen et al., IEEE TMI 2020; "pf"): ``all_dataset.csv`` (769 patients, 80 genomic
  features), ``grade_data.csv`` and ``pnas_splits.csv`` (15 random 80/20 train/test splits of Mobadersany
  et al., PNAS 2018). Choices, each as in PF's ``utils.getCleanAllDataset`` / ``make_splits.py``:

  - ``censored`` is **1 = alive/censored**; the event flag is ``1 - censored``.
  - ``Survival months`` holds **days** despite its name (it equals ``grade_data.csv``'s follow-up, and its
    median ratio to cBioPortal OS months is 30.5); it is used as ``time_days`` unchanged.
  - grade = ``Grade - 2`` (WHO 2/3/4 -> 0/1/2); missing -> -1.
  - patients with a missing molecular subtype (72; they lack ``idh mutation`` and ``codeletion`` too) are
    dropped from the omics tasks (PF's ``ignore_missing_moltype=1`` for "Surv Omic" and "Grad Omic"); the
    grade task also drops missing grade (``ignore_missing_histype=1``; 33 patients).
  - other missing genomic values are imputed with the column median (PF: of the whole table; here: of the
    training split, which avoids a small test-set leak), then every feature is z-scored with the
    training split's mean and std (PF's ``StandardScaler`` fit on the training rows).
  - PF trains and tests on ROI rows (1505 ROIs; a patient's omics vector is repeated once per ROI). The
    ROI count per patient is ``grade_data.csv``'s ``Region count``; it is kept as a per-patient weight.

* **MCAT** (Chen et al., ICCV 2021; "mcat"; splits shared with PORPOISE and CMTA):
  ``tcga_gbmlgg_all_clean.csv.zip`` (one row per slide, 569 patients), ``signatures.csv`` and the 5
  ``splits_<k>.csv`` (train / val, no test set). Choices, each as in MCAT's ``dataset_survival.py``:

  - one row per patient (the first slide row; genomic columns are per patient).
  - ``survival_months`` is in months; ``time_days = months * 30.4375`` (365.25 / 12), so that the
    contract unit holds; bins and C-index do not depend on the unit.
  - ``censorship`` is **1 = censored**; ``event = 1 - censorship``.
  - features: the ``*_rnaseq``/``*_cnv``/``*_mut`` columns whose gene symbol is in one of the six
    ``signatures.csv`` families (MCAT's genomic tokens, concatenated); z-scored with the training
    split's statistics (``StandardScaler`` fit on the training patients).
  - 4 survival bins: quartiles of the survival time of the **uncensored** patients (``pd.qcut``), outer
    edges widened to the min/max of all patients (:func:`mcat_bin_edges`).

All arrays are aligned to ``patients`` (sorted TCGA barcodes). Files are read from folders given in the
config (``validation.pf_dir``, ``validation.mcat_dir``); nothing here knows where they live.
"""

from __future__ import annotations

import logging
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from gliofuse.errors import InputDataError
from gliofuse.reproduce.protocols import MCAT_SPLITS, PROTOCOLS
from gliofuse.tasks import DAYS_PER_MONTH

logger = logging.getLogger(__name__)

PF_FILES: dict[str, str] = {"dataset": "all_dataset.csv", "grade": "grade_data.csv", "splits": "pnas_splits.csv"}
MCAT_FILES: dict[str, str] = {"table": "tcga_gbmlgg_all_clean.csv.zip", "signatures": "signatures.csv",
                              "splits": "splits/5foldcv/tcga_gbmlgg"}
PF_META_COLUMNS: tuple[str, ...] = ("TCGA ID", "indexes", "censored", "Survival months")
GENOMIC_SUFFIXES: tuple[str, ...] = ("_mut", "_cnv", "_rnaseq")


@dataclass(frozen=True)
class PublishedSplit:
    """One train/test split of a published protocol (sorted patient ids).

    ``index``: PF randomisation 1..15, MCAT fold 0..4. ``test`` is MCAT's ``val`` column.
    """

    index: int
    train: tuple[str, ...]
    test: tuple[str, ...]


@dataclass(frozen=True)
class PublishedCohort:
    """A published omics table with labels and splits, one row per patient.

    Attributes
    ----------
    protocol : ``"pf"`` or ``"mcat"``.
    patients : sorted TCGA patient barcodes, length P.
    features : float64 (P, G), raw feature values; NaN where missing.
    feature_names : the G column names.
    time_days : float64 (P,), survival or follow-up time in days (> 0).
    event : float64 (P,), 1 = death observed, 0 = censored.
    grade : int64 (P,), 0/1/2 = WHO grade 2/3/4, -1 missing (MCAT table: all -1).
    weight : int64 (P,), rows per patient in the original training/evaluation (PF: ROIs; MCAT: 1).
    usable : bool (P,), the patient enters the omics tasks (PF: molecular subtype known; MCAT: all).
    splits : the protocol's splits.
    """

    protocol: str
    patients: tuple[str, ...]
    features: np.ndarray
    feature_names: tuple[str, ...]
    time_days: np.ndarray
    event: np.ndarray
    grade: np.ndarray
    weight: np.ndarray
    usable: np.ndarray
    splits: tuple[PublishedSplit, ...]
    notes: dict[str, object] = field(default_factory=dict)

    def index_of(self, patient_ids: Iterable[str]) -> np.ndarray:
        """Row indices of ``patient_ids`` (int64); unknown ids raise ``InputDataError``."""
        pos = {p: i for i, p in enumerate(self.patients)}
        ids = list(patient_ids)
        missing = [p for p in ids if p not in pos]
        if missing:
            raise InputDataError(f"{self.protocol}: {len(missing)} patient(s) of a split are not in the table, "
                                 f"e.g. {missing[:5]}.")
        return np.asarray([pos[p] for p in ids], dtype=np.int64)

    def split(self, index: int) -> PublishedSplit:
        """The split with this index (PF 1..15, MCAT 0..4)."""
        for s in self.splits:
            if s.index == index:
                return s
        raise InputDataError(f"{self.protocol}: no split {index}; available {[s.index for s in self.splits]}.")

    def task_mask(self, task: str) -> np.ndarray:
        """bool (P,): patients with the inputs and the outcome of ``task`` (``survival`` or ``grade``)."""
        ok = self.usable & np.isfinite(self.time_days) & np.isfinite(self.event)
        if task == "survival":
            return ok
        if task == "grade":
            return self.usable & (self.grade >= 0)
        raise InputDataError(f"{self.protocol}: task {task!r} is not part of the published protocol "
                             "(survival or grade).")


def _need(path: Path, what: str) -> Path:
    if not path.exists():
        raise InputDataError(f"{what} not found: {path}. Set validation.pf_dir / validation.mcat_dir in the config "
                             "to the folder holding the published tables.")
    return path


def _columns(df: pd.DataFrame, required: Sequence[str], path: Path) -> None:
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise InputDataError(f"{path} lacks column(s) {missing}; it has {list(df.columns)[:10]}...")


# ----------------------------------------------------------------------------- Pathomic Fusion
def load_pathomic_fusion_(pf_dir: str | Path) -> PublishedCohort:
    """Read PF's ``all_dataset.csv``, ``grade_data.csv`` and ``pnas_splits.csv`` (see the module notes).

    Raises
    ------
    InputDataError
        A file or column is missing, the three files disagree on the patients, a censor flag is not
        0/1, or the follow-up of the two tables differs (a sign of another unit or freeze).
    """
    root = Path(pf_dir)
    p_data = _need(root / PF_FILES["dataset"], "Pathomic Fusion all_dataset.csv")
    p_grade = _need(root / PF_FILES["grade"], "Pathomic Fusion grade_data.csv")
    p_splits = _need(root / PF_FILES["splits"], "Pathomic Fusion pnas_splits.csv")
    data = pd.read_csv(p_data)
    _columns(data, PF_META_COLUMNS, p_data)
    grade = pd.read_csv(p_grade)
    _columns(grade, ["TCGA ID", "Grade", "Molecular subtype", "Time to last followup or death (months)",
                     "Region count"], p_grade)
    splits = pd.read_csv(p_splits)  # CR line endings: pandas handles them
    id_col = splits.columns[0]
    data = data.set_index("TCGA ID").sort_index()
    grade = grade.set_index("TCGA ID").sort_index()
    splits = splits.set_index(id_col).sort_index()
    for name, df in (("grade_data.csv", grade), ("pnas_splits.csv", splits)):
        if not df.index.equals(data.index):
            diff = sorted(set(df.index) ^ set(data.index))
            raise InputDataError(f"PF {name} and all_dataset.csv disagree on the patients (e.g. {diff[:5]}).")
    censored = pd.to_numeric(data["censored"], errors="coerce")
    if not censored.isin([0, 1]).all():
        raise InputDataError(f"{p_data}: column 'censored' must be 0/1 (1 = alive/censored).")
    time_days = pd.to_numeric(data["Survival months"], errors="coerce").to_numpy(np.float64)  # days (sic)
    follow = pd.to_numeric(grade["Time to last followup or death (months)"], errors="coerce").to_numpy(np.float64)
    if not np.allclose(time_days, follow, equal_nan=True):
        raise InputDataError(f"{p_data} 'Survival months' differs from {p_grade}'s follow-up; expected the same "
                             "values (both are days).")
    feature_names = tuple(c for c in data.columns if c not in PF_META_COLUMNS)
    features = data[list(feature_names)].apply(pd.to_numeric, errors="coerce").to_numpy(np.float64)
    g = pd.to_numeric(grade["Grade"], errors="coerce").to_numpy(np.float64)
    if not np.isin(g[np.isfinite(g)], [2, 3, 4]).all():
        raise InputDataError(f"{p_grade}: column 'Grade' must be 2/3/4 or NA.")
    grade_idx = np.where(np.isfinite(g), g - 2, -1).astype(np.int64)
    weight = pd.to_numeric(grade["Region count"], errors="coerce").fillna(1).clip(lower=1).astype(np.int64)
    usable = grade["Molecular subtype"].notna().to_numpy()
    rand_cols = [c for c in splits.columns if str(c).startswith("Randomization")]
    if not rand_cols:
        raise InputDataError(f"{p_splits}: no 'Randomization - k' columns.")
    out_splits = []
    patients = tuple(str(p) for p in data.index)
    for col in rand_cols:
        k = int(str(col).rsplit("-", 1)[1])
        v = splits[col].astype(str).str.strip()
        bad = sorted(set(v) - {"Train", "Test"})
        if bad:
            raise InputDataError(f"{p_splits}: column {col!r} must hold Train/Test, got {bad[:3]}.")
        out_splits.append(PublishedSplit(index=k, train=tuple(sorted(v.index[v == "Train"])),
                                         test=tuple(sorted(v.index[v == "Test"]))))
    return PublishedCohort(
        protocol="pf", patients=patients, features=features, feature_names=feature_names,
        time_days=time_days, event=(1.0 - censored.to_numpy(np.float64)), grade=grade_idx,
        weight=weight.to_numpy(), usable=usable, splits=tuple(sorted(out_splits, key=lambda s: s.index)),
        notes={"time_unit_in_file": "days (column named 'Survival months')", "censor_coding": "censored: 1 = alive"})


# ----------------------------------------------------------------------------- MCAT
def read_mcat_table_(path: str | Path) -> pd.DataFrame:
    """The MCAT/PORPOISE slide table from its zip (one CSV member), one row per slide."""
    p = _need(Path(path), "MCAT table tcga_gbmlgg_all_clean.csv.zip")
    try:
        with zipfile.ZipFile(p) as zf:
            members = [n for n in zf.namelist() if not n.endswith("/")]
            if len(members) != 1:
                raise InputDataError(f"{p}: expected one member in the zip, found {members[:5]}.")
            with zf.open(members[0]) as fh:
                df = pd.read_csv(fh, low_memory=False)
    except zipfile.BadZipFile:
        raise InputDataError(f"{p} is not a zip file.") from None
    _columns(df, ["case_id", "survival_months", "censorship"], p)
    return df


def signature_features(columns: Iterable[str], signatures: pd.DataFrame, *,
                       exclude_genes: Iterable[str] = ()) -> list[str]:
    """Genomic columns whose gene symbol (suffix ``_mut``/``_cnv``/``_rnaseq`` stripped) is in a family.

    Parameters
    ----------
    columns : table columns.
    signatures : ``signatures.csv`` (one gene-family per column).
    exclude_genes : gene symbols to leave out (e.g. ``IDH1``, absent from the families MCAT published with).

    Returns
    -------
    Matching columns in table order.
    """
    genes = {str(g) for g in pd.unique(signatures.to_numpy().ravel()) if isinstance(g, str)}
    genes -= set(exclude_genes)
    out = []
    for c in columns:
        for suffix in GENOMIC_SUFFIXES:
            if c.endswith(suffix) and c[: -len(suffix)] in genes:
                out.append(c)
                break
    return out


def load_mcat_(mcat_dir: str | Path, *, signature_genes: bool = True, exclude_genes: Iterable[str] = (),
               feature_types: Iterable[str] = ("rnaseq", "cnv", "mut")) -> PublishedCohort:
    """Read the MCAT/PORPOISE GBMLGG table, signatures and 5-fold splits (see the module notes).

    Parameters
    ----------
    mcat_dir : folder with ``tcga_gbmlgg_all_clean.csv.zip``, ``signatures.csv`` and ``splits/``.
    signature_genes : keep only signature-family features (MCAT's SNN baseline); False: all genomic columns.
    exclude_genes : gene symbols dropped from the features (all suffixes).
    feature_types : which column kinds to keep (``rnaseq``, ``cnv``, ``mut``).

    Raises
    ------
    InputDataError
        A file or column is missing, a patient has inconsistent survival rows, or a split names a
        patient not in the table.
    """
    root = Path(mcat_dir)
    table = read_mcat_table_(root / MCAT_FILES["table"])
    per_patient = table.groupby("case_id")[["survival_months", "censorship"]].nunique(dropna=False)
    bad = per_patient.index[(per_patient > 1).any(axis=1)].tolist()
    if bad:
        raise InputDataError(f"MCAT table: patients with different survival rows across slides: {bad[:5]}.")
    patients_df = table.drop_duplicates("case_id").set_index("case_id").sort_index()
    kinds = tuple(f"_{t}" for t in feature_types)
    bad_kinds = sorted(set(kinds) - set(GENOMIC_SUFFIXES))
    if bad_kinds or not kinds:
        raise InputDataError(f"MCAT feature_types must be a non-empty subset of rnaseq/cnv/mut, got {list(feature_types)}.")
    genomic = [c for c in table.columns if c.endswith(kinds)]
    exclude = {str(g) for g in exclude_genes}
    if signature_genes:
        sig = pd.read_csv(_need(root / MCAT_FILES["signatures"], "MCAT signatures.csv"))
        feature_names = signature_features(genomic, sig, exclude_genes=exclude)
    else:
        feature_names = [c for c in genomic if c.rsplit("_", 1)[0] not in exclude]
    if not feature_names:
        raise InputDataError("MCAT table: no genomic feature left after the signature/exclusion filter.")
    censorship = pd.to_numeric(patients_df["censorship"], errors="coerce")
    if not censorship.isin([0, 1]).all():
        raise InputDataError("MCAT table: column 'censorship' must be 0/1 (1 = censored).")
    months = pd.to_numeric(patients_df["survival_months"], errors="coerce").to_numpy(np.float64)
    if not (np.isfinite(months) & (months > 0)).all():
        raise InputDataError("MCAT table: 'survival_months' must be finite and > 0.")
    patients = tuple(str(p) for p in patients_df.index)
    known = set(patients)
    splits = []
    for k in MCAT_SPLITS:
        path = _need(root / MCAT_FILES["splits"] / f"splits_{k}.csv", f"MCAT splits_{k}.csv")
        sp = pd.read_csv(path)
        _columns(sp, ["train", "val"], path)
        train = tuple(sorted(sp["train"].dropna().astype(str)))
        test = tuple(sorted(sp["val"].dropna().astype(str)))
        unknown = sorted((set(train) | set(test)) - known)
        if unknown:
            raise InputDataError(f"{path}: patient(s) not in the MCAT table: {unknown[:5]}.")
        splits.append(PublishedSplit(index=k, train=train, test=test))
    n = len(patients)
    return PublishedCohort(
        protocol="mcat", patients=patients,
        features=patients_df[feature_names].apply(pd.to_numeric, errors="coerce").to_numpy(np.float64),
        feature_names=tuple(feature_names), time_days=months * DAYS_PER_MONTH,
        event=1.0 - censorship.to_numpy(np.float64), grade=np.full(n, -1, dtype=np.int64),
        weight=np.ones(n, dtype=np.int64), usable=np.ones(n, dtype=bool), splits=tuple(splits),
        notes={"time_unit_in_file": "months", "censor_coding": "censorship: 1 = censored",
               "excluded_genes": sorted(exclude), "signature_genes": signature_genes,
               "feature_types": [k[1:] for k in kinds]})


def mcat_patients_(mcat_dir: str | Path) -> set[str]:
    """Patients of the MCAT/PORPOISE table: the TCGA-GBMLGG patients with RNA-seq (and CNV/mutation) profiles.

    Used to approximate Pathomic Fusion's ``use_rnaseq`` cohort (PF inner-joins its table with RNA-seq
    z-score files that are not public).
    """
    table = read_mcat_table_(Path(mcat_dir) / MCAT_FILES["table"])
    return {str(p) for p in table["case_id"].dropna().unique()}


def mcat_bin_edges(time: np.ndarray, event: np.ndarray, n_bins: int = 4) -> np.ndarray:
    """MCAT's survival bins: quantiles of the uncensored times, outer edges widened to all patients.

    Parameters
    ----------
    time : float (n,), survival times (any unit; the edges come back in it).
    event : (n,), 1 = death observed.
    n_bins : number of bins.

    Returns
    -------
    float64 (n_bins + 1,): ``[min(time) - 1e-6, q_1, ..., q_{n_bins-1}, max(time) + 1e-6]`` with ``q_k``
    the k / n_bins quantile (linear interpolation, as ``pd.qcut``) of the uncensored times.
    """
    t = np.asarray(time, dtype=np.float64)
    e = np.asarray(event, dtype=np.float64) > 0.5
    if not e.any():
        raise InputDataError("MCAT bins need at least one uncensored patient.")
    inner = np.quantile(t[e], np.linspace(0, 1, n_bins + 1)[1:-1])
    return np.concatenate([[t.min() - 1e-6], inner, [t.max() + 1e-6]])


def load_protocol_(protocol: str, *, pf_dir: str | Path | None = None, mcat_dir: str | Path | None = None,
                   signature_genes: bool = True, exclude_genes: Iterable[str] = (),
                   feature_types: Iterable[str] = ("rnaseq", "cnv", "mut")) -> PublishedCohort:
    """Load the cohort of ``protocol`` (``pf`` or ``mcat``) from the configured folder."""
    if protocol == "pf":
        if pf_dir is None:
            raise InputDataError("validation.pf_dir is not set: point it at the Pathomic Fusion tables folder.")
        return load_pathomic_fusion_(pf_dir)
    if protocol == "mcat":
        if mcat_dir is None:
            raise InputDataError("validation.mcat_dir is not set: point it at the MCAT/PORPOISE tables folder.")
        return load_mcat_(mcat_dir, signature_genes=signature_genes, exclude_genes=exclude_genes,
                          feature_types=feature_types)
    raise InputDataError(f"unknown protocol {protocol!r}; expected one of {PROTOCOLS}.")

