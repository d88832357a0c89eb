"""Synthetic inputs for train_fold_: label table, omics matrix, slide feature files and splits.

A latent factor ``z`` per patient drives everything: survival hazard (risk = z), diagnosis and
grade (tertiles of z), a direction in patch-feature space (on a subset of patches) and a
direction in gene space. Sizes are odd on purpose (D=37, G=23, ragged bags around N=11).

Plain module (not a conftest) so that tests in other folders can load it by path.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import pandas as pd

from gliofuse.tasks import DIAGNOSIS_CLASSES


@dataclass
class FoldInputs:
    root: Path
    labels_path: Path
    omics_path: Path
    feature_paths: list[Path]
    split_paths: list[Path]
    patients: list[str]
    z: np.ndarray


def patient_ids(n: int) -> list[str]:
    return [f"TCGA-{2 + i % 7:02d}-{1000 + 37 * i:04d}" for i in range(n)]


def raster_coords(n: int, width: int = 4, patch: int = 256) -> np.ndarray:
    """Level-0 (x, y) of n patches on a grid ``width`` patches wide, row by row."""
    k = np.arange(n)
    return np.stack([(k % width) * patch, (k // width) * patch], axis=1).astype(np.int64)


def write_feature_file(path: Path, features: np.ndarray, *, status: str = "ok", slide_id: str = "",
                       coords: np.ndarray | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as fh:
        fh.create_dataset("features", data=features.astype(np.float32))
        fh.create_dataset("coords", data=raster_coords(features.shape[0]) if coords is None else coords)
        fh.attrs["encoder"] = "test_encoder"
        fh.attrs["slide_id"] = slide_id or path.stem
        fh.attrs["status"] = status
        fh.attrs["reason"] = "" if status == "ok" else "no_tissue"
        fh.attrs["provenance"] = json.dumps({"slide": path.stem})
        fh.attrs["embed_dim"] = features.shape[1]
        fh.attrs["patch_size"] = 224
        fh.attrs["target_mpp"] = 0.5


def write_omics(path: Path, values: np.ndarray, patients: list[str], genes: list[str],
                gene_names: list[str] | None = None) -> None:
    order = np.argsort(patients)
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as fh:
        fh.create_dataset("values", data=values[order].astype(np.float32))
        fh.create_dataset("patients", data=np.array([patients[i] for i in order], dtype="S"))
        fh.create_dataset("genes", data=np.array(genes, dtype="S"))
        names = gene_names if gene_names is not None else [f"G{i}" for i in range(len(genes))]
        fh.create_dataset("gene_names", data=np.array(names, dtype="S"))
        fh.attrs["value_column"] = "tpm_unstranded"
        fh.attrs["log_transform"] = True
        fh.attrs["provenance"] = "{}"


def write_splits(root: Path, patients: list[str], *, n_folds: int, seed: int, val_fraction: float = 0.2) -> list[Path]:
    rng = np.random.default_rng(seed + 1)
    perm = [patients[i] for i in rng.permutation(len(patients))]
    chunks = [perm[k::n_folds] for k in range(n_folds)]
    paths = []
    for k in range(n_folds):
        rest = [p for j, c in enumerate(chunks) if j != k for p in c]
        n_val = max(1, round(val_fraction * len(rest)))
        split = {"fold": k, "n_folds": n_folds, "seed": seed, "stratify_by": "none",
                 "train": sorted(rest[n_val:]), "val": sorted(rest[:n_val]), "test": sorted(chunks[k])}
        p = root / "splits" / f"fold_{k}.json"
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(json.dumps(split, indent=2))
        paths.append(p)
    return paths


def make_fold_inputs(root: Path, *, n_patients: int = 36, n_patches: int = 11, d: int = 37, g: int = 23,
                     n_folds: int = 3, signal: float = 1.5, seed: int = 0, frac_two_slides: float = 0.25,
                     n_missing_diagnosis: int = 0) -> FoldInputs:
    """Write a tiny cohort under ``root`` and return the paths."""
    rng = np.random.default_rng(seed)
    root = Path(root)
    pids = patient_ids(n_patients)
    z = rng.standard_normal(n_patients)
    dir_wsi = rng.standard_normal(d)
    dir_wsi /= np.linalg.norm(dir_wsi)
    dir_omics = rng.standard_normal(g)
    dir_omics /= np.linalg.norm(dir_omics)

    feature_paths: list[Path] = []
    for i, pid in enumerate(pids):
        n_slides = 2 if rng.random() < frac_two_slides else 1
        for s in range(n_slides):
            n = int(rng.integers(max(2, n_patches - 4), n_patches + 5))
            feats = rng.standard_normal((n, d))
            informative = rng.random(n) < 0.5
            informative[0] = True
            feats[informative] += 3.0 * signal * z[i] * dir_wsi
            path = root / "features" / "enc" / f"{pid}-01Z-00-DX{s + 1}.{i:04X}ABCD.h5"
            write_feature_file(path, feats)
            feature_paths.append(path)
    # one skipped slide (status skipped, N = 0) for the first patient: must be ignored
    skipped = root / "features" / "enc" / f"{pids[0]}-01Z-00-DX9.DEADBEEF.h5"
    write_feature_file(skipped, np.zeros((0, d)), status="skipped")
    feature_paths.append(skipped)

    omics = rng.standard_normal((n_patients, g)) + 3.0 * signal * np.outer(z, dir_omics) + 5.0
    genes = [f"ENSG{i:011d}" for i in range(g)]
    omics_path = root / "omics" / "expression.h5"
    write_omics(omics_path, omics, pids, genes)

    base = 600.0 * np.exp(-signal * z + 0.3 * rng.standard_normal(n_patients))
    event = (rng.random(n_patients) < 0.75).astype(int)
    time_days = np.where(event == 1, base, base * rng.uniform(0.3, 1.0, n_patients)) + 1.0
    tertiles = np.quantile(z, [1 / 3, 2 / 3])
    cls = np.digitize(z, tertiles)
    diagnosis = cls.copy()
    if n_missing_diagnosis:
        diagnosis[rng.choice(n_patients, n_missing_diagnosis, replace=False)] = -1
    labels = pd.DataFrame({
        "patient_id": pids,
        "project": np.where(cls == 2, "TCGA-GBM", "TCGA-LGG"),
        "time_days": np.round(time_days, 1), "event": event,
        "idh": np.where(cls == 2, "wildtype", "mutant"),
        "codel": np.where(cls == 1, "codel", np.where(cls == 0, "non-codel", "")),
        "histologic_grade": cls + 2,
        "who2021_class": [DIAGNOSIS_CLASSES[c] if c >= 0 else "" for c in diagnosis],
        "who2021_grade": cls + 2, "diagnosis": diagnosis, "grade": cls,
        "age_years": np.round(50 + 10 * z, 1), "sex": np.where(rng.random(n_patients) < 0.5, "female", "male"),
    })
    labels_path = root / "labels" / "labels.tsv"
    labels_path.parent.mkdir(parents=True, exist_ok=True)
    labels.to_csv(labels_path, sep="\t", index=False)
    split_paths = write_splits(root, pids, n_folds=n_folds, seed=seed)
    return FoldInputs(root=root, labels_path=labels_path, omics_path=omics_path, feature_paths=feature_paths,
                      split_paths=split_paths, patients=pids, z=z)


@dataclass
class SubspaceInputs(FoldInputs):
    truth: pd.DataFrame | None = None


def make_subspace_inputs(root: Path, *, n_patients: int = 60, d: int = 24, n_folds: int = 3, seed: int = 0,
                         signal: float = 1.0, frac_two_slides: float = 0.25) -> SubspaceInputs:
    """A cohort driven by two latent factors, like the demo's ground truth (gliofuse.demo.latent).

    ``z_tumour`` drives the tumour genes (real symbols of the shipped ``tumour`` set) and the patch
    features of the tumour region of each slide (its left half on the patch grid); ``z_micro``
    drives the microenvironment genes and the right half. Log hazard ``z_tumour + 0.5 z_micro``
    (Weibull times, ~30 % censored); diagnosis = tertiles of ``z_tumour``; grade = tertiles of the log
    hazard. The ground truth is returned (``truth``: patient_id, z_tumour, z_micro, true_risk) and
    written to ``truth/ground_truth.tsv``.
    """
    from gliofuse.omics.genesets import gene_set

    rng = np.random.default_rng(seed)
    root = Path(root)
    pids = patient_ids(n_patients)
    z_t = rng.standard_normal(n_patients)
    z_m = rng.standard_normal(n_patients)
    dir_t = rng.standard_normal(d)
    dir_t /= np.linalg.norm(dir_t)
    dir_m = rng.standard_normal(d)
    dir_m -= dir_m.dot(dir_t) * dir_t
    dir_m /= np.linalg.norm(dir_m)
    feature_paths: list[Path] = []
    for i, pid in enumerate(pids):
        for s in range(2 if rng.random() < frac_two_slides else 1):
            h, w = int(rng.integers(4, 8)), int(rng.integers(5, 9))
            cells = np.array([(r, c) for r in range(h) for c in range(w) if rng.random() < 0.8])
            feats = rng.standard_normal((len(cells), d))
            left = cells[:, 1] < w / 2
            feats[left] += 2.0 * signal * z_t[i] * dir_t
            feats[~left] += 2.0 * signal * z_m[i] * dir_m
            coords = np.stack([cells[:, 1] * 512 + 1000, cells[:, 0] * 512 + 3000], axis=1).astype(np.int64)
            path = root / "features" / "enc" / f"{pid}-01Z-00-DX{s + 1}.{i:04X}ABCD.h5"
            write_feature_file(path, feats, coords=coords)
            feature_paths.append(path)
    tumour, micro = list(gene_set("tumour")[:15]), list(gene_set("microenvironment")[:15])
    other = [f"OTHER{k}" for k in range(10)]
    names = tumour + micro + other
    load_t, load_m = rng.uniform(0.5, 1.5, 15), rng.uniform(0.5, 1.5, 15)
    omics = 5.0 + rng.standard_normal((n_patients, len(names)))
    omics[:, :15] += signal * np.outer(z_t, load_t)
    omics[:, 15:30] += signal * np.outer(z_m, load_m)
    omics_path = root / "omics" / "expression.h5"
    write_omics(omics_path, omics, pids, [f"ENSG{k:011d}" for k in range(len(names))], gene_names=names)
    risk = z_t + 0.5 * z_m
    t_event = 800.0 * (rng.exponential(1.0, n_patients) * np.exp(-risk)) ** (1 / 1.3)
    t_cens = rng.exponential(2500.0, n_patients)
    event = (t_event <= t_cens).astype(int)
    time_days = np.minimum(t_event, t_cens) + 1.0
    diagnosis = np.digitize(z_t, np.quantile(z_t, [1 / 3, 2 / 3]))
    grade = np.digitize(risk, np.quantile(risk, [1 / 3, 2 / 3]))
    labels = pd.DataFrame({
        "patient_id": pids, "project": np.where(diagnosis == 2, "TCGA-GBM", "TCGA-LGG"),
        "time_days": np.round(time_days, 1), "event": event,
        "idh": np.where(diagnosis == 2, "wildtype", "mutant"),
        "codel": np.where(diagnosis == 1, "codel", np.where(diagnosis == 0, "non-codel", "")),
        "histologic_grade": grade + 2, "who2021_class": [DIAGNOSIS_CLASSES[c] for c in diagnosis],
        "who2021_grade": np.where(diagnosis == 2, 4, grade + 2), "diagnosis": diagnosis, "grade": grade,
        "age_years": 50.0, "sex": "female",
    })
    labels_path = root / "labels" / "labels.tsv"
    labels_path.parent.mkdir(parents=True, exist_ok=True)
    labels.to_csv(labels_path, sep="\t", index=False)
    truth = pd.DataFrame({"patient_id": pids, "z_tumour": z_t, "z_micro": z_m, "true_risk": risk,
                          "true_diagnosis": diagnosis, "true_grade": grade, "time_days": time_days, "event": event})
    (root / "truth").mkdir(parents=True, exist_ok=True)
    truth.to_csv(root / "truth" / "ground_truth.tsv", sep="\t", index=False)
    split_paths = write_splits(root, pids, n_folds=n_folds, seed=seed)
    return SubspaceInputs(root=root, labels_path=labels_path, omics_path=omics_path, feature_paths=feature_paths,
                          split_paths=split_paths, patients=pids, z=z_t, truth=truth)
