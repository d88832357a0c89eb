"""Patient-level stratified K-fold splits, optionally repeated, persisted as JSON (contract §7) and leakage-checked.

Fold ids are global: repeat ``j`` (0-based) of a ``k``-fold cross-validation holds folds ``j * k .. j * k + k - 1``.
Repeat 0 uses ``seed`` itself, so a single repeat gives exactly the unrepeated splits.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from gliofuse.errors import InputDataError
from gliofuse.io import read_json_, write_json_


@dataclass(frozen=True)
class Split:
    """One cross-validation fold: sorted patient ids per partition.

    ``fold`` is the global fold id (``repeat * n_folds + fold_in_repeat``), ``n_folds`` the folds per repeat,
    ``seed`` the base seed (config ``seed``) and ``repeat_seed`` the seed of this fold's repeat.
    """

    fold: int
    n_folds: int
    seed: int
    stratify_by: str
    train: tuple[str, ...]
    val: tuple[str, ...]
    test: tuple[str, ...]
    repeat: int = 0
    n_repeats: int = 1
    repeat_seed: int | None = None  # None: the base seed (repeat 0)

    @property
    def fold_in_repeat(self) -> int:
        """This fold's index within its repeat (0 .. n_folds - 1)."""
        return self.fold - self.repeat * self.n_folds

    @property
    def effective_repeat_seed(self) -> int:
        """The seed the repeat's folds were drawn with."""
        return self.seed if self.repeat_seed is None else self.repeat_seed

    def partition(self, name: str) -> tuple[str, ...]:
        """Patient ids of partition ``name`` (train, val or test)."""
        return {"train": self.train, "val": self.val, "test": self.test}[name]

    @property
    def patients(self) -> list[str]:
        return [*self.train, *self.val, *self.test]

    def to_json(self) -> dict:
        """Contract §7; the repeat keys only when the cross-validation is repeated (n_repeats > 1)."""
        out: dict = {"fold": self.fold, "n_folds": self.n_folds, "seed": self.seed, "stratify_by": self.stratify_by}
        if self.n_repeats > 1:
            out |= {"repeat": self.repeat, "n_repeats": self.n_repeats, "fold_in_repeat": self.fold_in_repeat,
                    "repeat_seed": self.effective_repeat_seed}
        return out | {"train": list(self.train), "val": list(self.val), "test": list(self.test)}


def derive_repeat_seed(seed: int, repeat: int) -> int:
    """The seed of repeat ``repeat``: ``seed`` for repeat 0, else a 31-bit integer derived from (seed, repeat).

    Derived with :class:`numpy.random.SeedSequence` (entropy ``seed``, spawn key ``(repeat,)``), so repeats
    draw independent-looking partitions and the same (seed, repeat) always gives the same seed.
    """
    if repeat == 0:
        return int(seed)
    state = np.random.SeedSequence(entropy=int(seed), spawn_key=(int(repeat),)).generate_state(1, dtype=np.uint32)
    return int(state[0] & 0x7FFFFFFF)


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


def make_splits(cohort: pd.DataFrame, *, n_folds: int, val_fraction: float, stratify_by: str, seed: int,
                n_repeats: int = 1) -> list[Split]:
    """Stratified K-fold over patients, ``n_repeats`` times; a stratified ``val_fraction`` of each training part
    is held out.

    Returns ``n_folds * n_repeats`` splits in global fold order; repeat ``j`` draws its folds with
    :func:`derive_repeat_seed` ``(seed, j)`` (repeat 0: ``seed``, i.e. the unrepeated splits).
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
    if n_repeats < 1:
        raise ValueError(f"n_repeats must be >= 1, got {n_repeats}")
    strata = _safe_strata(_strata(cohort, stratify_by), n_folds)
    splits: list[Split] = []
    for repeat in range(n_repeats):
        rseed = derive_repeat_seed(seed, repeat)
        for k, (train_p, val_p, test_p) in enumerate(_one_repeat(patients, strata, n_folds=n_folds,
                                                                  val_fraction=val_fraction, seed=rseed)):
            splits.append(Split(
                fold=repeat * n_folds + k, n_folds=n_folds, seed=seed, stratify_by=stratify_by,
                train=tuple(sorted(train_p)), val=tuple(sorted(val_p)), test=tuple(sorted(test_p)),
                repeat=repeat, n_repeats=n_repeats, repeat_seed=None if repeat == 0 else rseed,
            ))
    return splits


def _one_repeat(patients: np.ndarray, strata: np.ndarray, *, n_folds: int, val_fraction: float,
                seed: int) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """(train, val, test) patient arrays of each fold of one stratified K-fold drawn with ``seed``."""
    # imported here: every training job reads its split through this module, and sklearn costs ~1 s of start-up
    from sklearn.model_selection import StratifiedKFold, train_test_split

    skf = StratifiedKFold(n_splits=n_folds, shuffle=True, random_state=seed)
    out = []
    for k, (train_idx, test_idx) in enumerate(skf.split(patients, strata)):
        train_p, val_p = patients[train_idx], np.array([], dtype=patients.dtype)
        if val_fraction > 0:
            n_val = max(1, round(val_fraction * len(train_idx)))
            sub = _safe_strata(strata[train_idx], 2)
            try:
                train_p, val_p = train_test_split(patients[train_idx], test_size=n_val, random_state=seed + k, stratify=sub)
            except ValueError:  # too few per stratum for a stratified hold-out
                train_p, val_p = train_test_split(patients[train_idx], test_size=n_val, random_state=seed + k)
        out.append((train_p, val_p, patients[test_idx]))
    return out


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


def check_repeats(splits: Sequence[Split], *, source: str) -> None:
    """Raise InputDataError unless ``splits`` are the folds ``0 .. k * r - 1`` of ``r`` repeats of one ``k``-fold
    cross-validation whose test sets partition one patient set in every repeat (each patient tested once per repeat).
    """
    if not splits:
        raise InputDataError(f"fold splits {source}: no split given.")
    n_folds, n_repeats = splits[0].n_folds, splits[0].n_repeats
    folds = sorted(s.fold for s in splits)
    if folds != list(range(n_folds * n_repeats)) or any((s.n_folds, s.n_repeats) != (n_folds, n_repeats)
                                                          for s in splits):
        raise InputDataError(f"fold splits {source}: expected folds 0..{n_folds * n_repeats - 1} of {n_repeats} "
                             f"repeat(s) x {n_folds} folds, got folds {short_ids([str(f) for f in folds])}. "
                             "Delete the split files and rerun `data_splits`.")
    cohorts: dict[int, set[str]] = {}
    for split in sorted(splits, key=lambda x: x.fold):
        tested = cohorts.setdefault(split.repeat, set())
        twice = sorted(tested & set(split.test))
        if twice:
            raise InputDataError(f"fold splits {source}: patient(s) in the test sets of two folds of repeat "
                                 f"{split.repeat}: {short_ids(twice)}. Delete the split files and rerun `data_splits`.")
        tested |= set(split.test)
    first = cohorts[0]
    for repeat, tested in cohorts.items():
        differ = sorted(first ^ tested)
        if differ:
            raise InputDataError(f"fold splits {source}: repeats 0 and {repeat} test different patients: "
                                 f"{short_ids(differ)}. Delete the split files and rerun `data_splits`.")


def write_splits_(splits: list[Split], *, out_paths: list[Path]) -> None:
    """Write one JSON file per fold (``out_paths[i]`` ↔ global fold i), after the leakage and repeat checks."""
    if len(splits) != len(out_paths):
        raise ValueError(f"{len(splits)} splits but {len(out_paths)} output paths")
    check_repeats(splits, source=", ".join(str(p) for p in out_paths[:2]) + (" ..." if len(out_paths) > 2 else ""))
    for split, path in zip(splits, out_paths, strict=True):
        check_split(split, source=str(path))
        write_json_(path, split.to_json())


SPLIT_KEYS: tuple[str, ...] = ("fold", "n_folds", "seed", "stratify_by", "train", "val", "test")
#: keys of a repeated cross-validation's split (all or none; absent: repeat 0 of 1)
REPEAT_KEYS: tuple[str, ...] = ("repeat", "n_repeats", "fold_in_repeat", "repeat_seed")


def _int_keys(raw: dict, keys: Sequence[str], path: Path) -> dict[str, int]:
    try:
        return {k: int(raw[k]) for k in keys}
    except (TypeError, ValueError):
        raise InputDataError(f"fold split {path}: {', '.join(repr(k) for k in keys)} must be integers.") from None


def _repeat_fields(raw: dict, path: Path, *, fold: int, n_folds: int, seed: int) -> dict[str, int | None]:
    """The Split repeat fields from a split JSON, checked for consistency with its fold id."""
    present = [k for k in REPEAT_KEYS if k in raw]
    if not present:
        return {"repeat": 0, "n_repeats": 1, "repeat_seed": None}
    if len(present) < len(REPEAT_KEYS):
        raise InputDataError(f"fold split {path} has {present} but lacks "
                             f"{[k for k in REPEAT_KEYS if k not in raw]}; a repeated split has all of "
                             f"{list(REPEAT_KEYS)}. Delete it and rerun `data_splits`.")
    v = _int_keys(raw, REPEAT_KEYS, path)
    if not (0 <= v["repeat"] < v["n_repeats"] and 0 <= v["fold_in_repeat"] < n_folds
            and fold == v["repeat"] * n_folds + v["fold_in_repeat"]):
        raise InputDataError(f"fold split {path}: fold {fold} does not match repeat {v['repeat']} of "
                             f"{v['n_repeats']}, fold_in_repeat {v['fold_in_repeat']} of n_folds {n_folds} (expected "
                             "fold = repeat * n_folds + fold_in_repeat). Delete it and rerun `data_splits`.")
    if v["repeat"] == 0 and v["repeat_seed"] != seed:
        raise InputDataError(f"fold split {path}: repeat 0 must use the base seed {seed}, has repeat_seed "
                             f"{v['repeat_seed']}. Delete it and rerun `data_splits`.")
    return {"repeat": v["repeat"], "n_repeats": v["n_repeats"],
            "repeat_seed": None if v["repeat"] == 0 else v["repeat_seed"]}


def read_split_(path: Path) -> Split:
    """Read and validate a ``fold_<i>.json`` (contract §7).

    Raises
    ------
    InputDataError
        Missing keys, non-list partitions, duplicate ids, empty train/test, a patient in two partitions, or
        repeat keys (``REPEAT_KEYS``) that are incomplete or disagree with the fold id.
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
    ints = _int_keys(raw, ("fold", "n_folds", "seed"), path)
    repeat = _repeat_fields(raw, path, fold=ints["fold"], n_folds=ints["n_folds"], seed=ints["seed"])
    split = Split(**ints, stratify_by=str(raw["stratify_by"]), **parts, **repeat)  # type: ignore[arg-type]
    check_split(split, source=str(path))
    for name in ("train", "test"):
        if not parts[name]:
            raise InputDataError(f"fold split {path}: partition {name!r} is empty.")
    return split
