"""Patient-level stratified K-fold splits, persisted as JSON (contract §7) and leakage-checked."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from gliofuse.errors import InputDataError
from gliofuse.io import read_json_, write_json_


@dataclass(frozen=True)
class Split:
    """One cross-validation fold: sorted patient ids per partition."""

    fold: int
    n_folds: int
    seed: int
    stratify_by: str
    train: tuple[str, ...]
    val: tuple[str, ...]
    test: tuple[str, ...]

    def partition(self, name: str) -> tuple[str, ...]:
        """Patient ids of partition ``name`` (train, val or test)."""
        return {"train": self.train, "val": self.val, "test": self.test}[name]

    @property
    def patients(self) -> list[str]:
        return [*self.train, *self.val, *self.test]

    def to_json(self) -> dict:
        return {"fold": self.fold, "n_folds": self.n_folds, "seed": self.seed, "stratify_by": self.stratify_by,
                "train": list(self.train), "val": list(self.val), "test": list(self.test)}


def _strata(cohort: pd.DataFrame, stratify_by: str) -> np.ndarray:
    if stratify_by == "none":
        return np.zeros(len(cohort), dtype=int)
    col = cohort[stratify_by]
    return col.fillna(-1).astype(int).to_numpy()


def _safe_strata(strata: np.ndarray, n_splits: int) -> np.ndarray:
    # classes with fewer members than folds are pooled so StratifiedKFold can place them
    values, counts = np.unique(strata, return_counts=True)
    rare = set(values[counts < n_splits].tolist())
    return np.array([-99 if s in rare else s for s in strata])


def make_splits(cohort: pd.DataFrame, *, n_folds: int, val_fraction: float, stratify_by: str, seed: int) -> list[Split]:
    """Stratified K-fold over patients; a stratified ``val_fraction`` of each training part is held out.

    Raises InputDataError when the cohort has fewer patients than ``2 * n_folds``.
    """
    patients = cohort["patient_id"].to_numpy()
    if len(np.unique(patients)) != len(patients):
        raise InputDataError("cohort has duplicate patient_id rows; splits must be patient-level.")
    if len(patients) < 2 * n_folds:
        raise InputDataError(
            f"cohort has {len(patients)} patients, too few for data.n_folds={n_folds}; "
            "lower data.n_folds or add patients."
        )
    # imported here: every training job reads its split through this module, and sklearn costs ~1 s of start-up
    from sklearn.model_selection import StratifiedKFold, train_test_split

    strata = _safe_strata(_strata(cohort, stratify_by), n_folds)
    skf = StratifiedKFold(n_splits=n_folds, shuffle=True, random_state=seed)
    splits = []
    for k, (train_idx, test_idx) in enumerate(skf.split(patients, strata)):
        train_p, val_p = patients[train_idx], np.array([], dtype=patients.dtype)
        if val_fraction > 0:
            n_val = max(1, round(val_fraction * len(train_idx)))
            sub = _safe_strata(strata[train_idx], 2)
            try:
                train_p, val_p = train_test_split(patients[train_idx], test_size=n_val, random_state=seed + k, stratify=sub)
            except ValueError:  # too few per stratum for a stratified hold-out
                train_p, val_p = train_test_split(patients[train_idx], test_size=n_val, random_state=seed + k)
        splits.append(Split(
            fold=k, n_folds=n_folds, seed=seed, stratify_by=stratify_by,
            train=tuple(sorted(train_p)), val=tuple(sorted(val_p)), test=tuple(sorted(patients[test_idx])),
        ))
    return splits


def short_ids(ids: list[str], n: int = 5) -> str:
    """The first ``n`` ids joined for an error message, with the total when there are more."""
    return ", ".join(ids[:n]) + (f", ... ({len(ids)} in all)" if len(ids) > n else "")


def check_split(split: Split, *, source: str) -> None:
    """Raise InputDataError when a patient is in two partitions of one fold (leakage)."""
    parts = {"train": set(split.train), "val": set(split.val), "test": set(split.test)}
    for a, b in (("train", "val"), ("train", "test"), ("val", "test")):
        both = sorted(parts[a] & parts[b])
        if both:
            raise InputDataError(
                f"fold split {source}: {len(both)} patient(s) are in both {a!r} and {b!r} (leakage): {short_ids(both)}. "
                "Delete the split files and rerun `data_splits`."
            )


def write_splits_(splits: list[Split], *, out_paths: list[Path]) -> None:
    """Write one JSON file per fold (``out_paths[k]`` ↔ fold k)."""
    if len(splits) != len(out_paths):
        raise ValueError(f"{len(splits)} splits but {len(out_paths)} output paths")
    for split, path in zip(splits, out_paths, strict=True):
        check_split(split, source=str(path))
        write_json_(path, split.to_json())


SPLIT_KEYS: tuple[str, ...] = ("fold", "n_folds", "seed", "stratify_by", "train", "val", "test")


def read_split_(path: Path) -> Split:
    """Read and validate a ``fold_<k>.json`` (contract §7).

    Raises
    ------
    InputDataError
        Missing keys, non-list partitions, duplicate ids, empty train/test, or a patient in two partitions.
    """
    raw = read_json_(path, what="fold split")
    if not isinstance(raw, dict):
        raise InputDataError(f"fold split {path} must be a JSON object with keys {list(SPLIT_KEYS)}.")
    missing = [k for k in SPLIT_KEYS if k not in raw]
    if missing:
        raise InputDataError(f"fold split {path} lacks key(s) {missing}. Delete it and rerun `data_splits`.")
    parts: dict[str, tuple[str, ...]] = {}
    for name in ("train", "val", "test"):
        ids = raw[name]
        if not isinstance(ids, list) or not all(isinstance(x, str) for x in ids):
            raise InputDataError(f"fold split {path}: {name!r} must be a list of patient id strings.")
        dup = sorted({x for x in ids if ids.count(x) > 1})
        if dup:
            raise InputDataError(f"fold split {path}: patient(s) listed twice in {name!r}: {short_ids(dup)}.")
        parts[name] = tuple(ids)
    try:
        fold, n_folds, seed = int(raw["fold"]), int(raw["n_folds"]), int(raw["seed"])
    except (TypeError, ValueError):
        raise InputDataError(f"fold split {path}: 'fold', 'n_folds' and 'seed' must be integers.") from None
    split = Split(fold=fold, n_folds=n_folds, seed=seed, stratify_by=str(raw["stratify_by"]), **parts)
    check_split(split, source=str(path))
    for name in ("train", "test"):
        if not parts[name]:
            raise InputDataError(f"fold split {path}: partition {name!r} is empty.")
    return split
