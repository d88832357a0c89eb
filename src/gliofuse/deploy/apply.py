"""Apply a bundle to new patients (``gliofuse predict``): per-patient risk, survival curve, class probabilities
and attention, the fold models' mean (docs/data-contracts.md §11). No labels are read.

Outputs in ``out_dir``: ``predictions.tsv`` (the ensemble), ``members.tsv`` (each fold model's
``predictions.tsv`` columns), ``survival.tsv`` (survival tasks: ``surv_<days>``), ``attention.h5``
(contract §10, models with attention: the members' mean weights) and ``predict_info.json`` (patients left
out, missing genes filled with the training mean, the bundle used).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from gliofuse.data.datasets import PatientBagDataset
from gliofuse.deploy.bundle import Bundle, Member
from gliofuse.deploy.cohort import CohortInputs
from gliofuse.device import resolve_device
from gliofuse.io import file_hash, provenance, write_json_, write_table_
from gliofuse.tasks import TaskSpec
from gliofuse.training.assemble import inference_patch_cap, patient_dataset
from gliofuse.training.predict import ATTENTION_FILE, predict, write_attention_

logger = logging.getLogger(__name__)


@dataclass
class CohortPrediction:
    """What :func:`predict_cohort_` wrote, as tables (full precision)."""

    predictions: pd.DataFrame
    members: pd.DataFrame
    survival: pd.DataFrame | None


def member_values(bundle: Bundle, member: Member, inputs: CohortInputs, *, device: torch.device,
                  attention: list[np.ndarray | None] | None = None
                  ) -> tuple[dict[str, np.ndarray], PatientBagDataset]:
    """One fold model's prediction columns (``predictions.tsv``'s, contract §8) for ``inputs.patients``, and
    the dataset whose items ``attention`` (when given) receives the weights of.

    Missing genes are set to the member's training mean before its normalisers, so their z-score is 0.
    """
    values = None if inputs.omics_values is None else _fill_training_mean(inputs.omics_values, member)
    ds = patient_dataset(inputs.patients, slide_files=inputs.slide_files, omics_values=values, omics=member.omics,
                         gene_sets=member.gene_sets, targets=None, training=bundle.training, seed=member.seed,
                         inference_cap=inference_patch_cap(bundle.model_name, bundle.training))
    member.model.to(device)
    member.heads.to(device)
    outputs = predict(member.model, member.heads, ds, batch_size=bundle.training.batch_size, device=device,
                      attention=attention)
    return member.objectives[bundle.spec.name].prediction_values(outputs[bundle.spec.name]), ds


def _fill_training_mean(values: np.ndarray, member: Member) -> np.ndarray:
    fill = np.zeros(values.shape[1], dtype=np.float32)
    if member.omics is not None:
        fill[member.omics.gene_index] = member.omics.mean
    if member.gene_sets is not None:
        for name, idx in member.gene_sets.index.items():
            fill[idx] = member.gene_sets.mean[name]
    return np.where(np.isnan(values), fill, values).astype(np.float32)


def _survival(bundle: Bundle, member: Member, values: dict[str, np.ndarray]) -> np.ndarray:
    """The member's ``S(t)`` at the bundle's curve times, (P, T): Breslow for Cox, the bin hazards for nll."""
    from gliofuse.evaluation.survival import cox_survival, discrete_hazard_survival

    times = bundle.curve_days
    objective = member.objectives[bundle.spec.name]
    edges = getattr(objective, "edges", None)
    if edges is not None:
        hazards = np.stack([values[c] for c in objective.hazard_columns], axis=1)  # type: ignore[attr-defined]
        return discrete_hazard_survival(hazards, [*edges.tolist(), np.inf], times)
    assert member.baseline is not None, "a Cox member of a bundle carries its Breslow baseline"
    return cox_survival(*member.baseline, values["risk"], times)


def predict_cohort_(bundle: Bundle, inputs: CohortInputs, *, out_dir: Path, device: str = "cpu",
                    wsi_dir: Path | None = None) -> CohortPrediction:
    """Run every member on ``inputs`` and write the outputs listed in the module docstring to ``out_dir``.

    ``wsi_dir``: the new cohort's ``wsi_patch`` outputs (``thumbnails/<slide>.jpg``, ``coords/<slide>.h5``);
    given, attention models also draw ``heatmaps/<patient>.png`` (+ SVG) as the report's attention figures.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    dev = resolve_device(device, key="--device")
    spec, patients = bundle.spec, inputs.patients
    wants_attention = "wsi" in bundle.modalities
    frames, curves, atts = [], [], []
    per_member: list[dict[str, np.ndarray]] = []
    ds = None
    for member in bundle.members:
        att: list[np.ndarray | None] | None = [] if wants_attention else None
        values, ds = member_values(bundle, member, inputs, device=dev, attention=att)
        if att is not None:
            atts.append(att)
        per_member.append(values)
        frames.append(pd.DataFrame({"patient_id": patients, "model": bundle.model_name, "task": spec.name,
                                    "fold": member.fold, **values}))
        if spec.kind == "survival" and len(bundle.curve_days):
            curves.append(_survival(bundle, member, values))
    members = pd.concat(frames, ignore_index=True)
    base = {"patient_id": patients, "model": bundle.model_name, "task": spec.name, "n_models": len(bundle.members)}
    if spec.kind == "survival":
        ensemble = pd.DataFrame({**base, "risk": np.mean([v["risk"] for v in per_member], axis=0)})
    else:
        prob = np.mean([np.stack([v[c] for c in spec.prob_columns], axis=1) for v in per_member], axis=0)
        ensemble = pd.DataFrame({**base, "y_pred": prob.argmax(axis=1).astype(np.int64),
                                 **{c: prob[:, k] for k, c in enumerate(spec.prob_columns)}})
    survival = None
    if curves:
        mean = np.mean(curves, axis=0)
        survival = pd.DataFrame({"patient_id": patients, **{f"surv_{np.format_float_positional(t, trim='-')}":
                                                             mean[:, k] for k, t in enumerate(bundle.curve_days)}})
    prov = provenance(config={"bundle": str(bundle.path)},
                      inputs={"bundle.json": bundle.path / "bundle.json"},
                      extra={"model": bundle.model_name, "task": spec.name, "folds": [m.fold for m in bundle.members]})
    write_table_(out_dir / "predictions.tsv", ensemble, prov=prov)
    write_table_(out_dir / "members.tsv", members, prov=prov)
    if survival is not None:
        write_table_(out_dir / "survival.tsv", survival, prov=prov)
    _write_attention(out_dir / ATTENTION_FILE, ds, atts, bundle)
    if wsi_dir is not None and (out_dir / ATTENTION_FILE).exists():
        _draw_heatmaps(out_dir, ensemble, spec, Path(wsi_dir))
    write_json_(out_dir / "predict_info.json", {
        "bundle": str(bundle.path), "bundle_hash": file_hash(bundle.path / "bundle.json"),
        "model": bundle.model_name, "task": spec.name, "ensemble": bundle.meta["ensemble"],
        "folds": [m.fold for m in bundle.members], "n_patients": len(patients),
        "excluded_patients": inputs.excluded, "n_model_genes": inputs.n_model_genes,
        "missing_genes": inputs.missing_genes, "missing_gene_fraction": inputs.missing_gene_fraction,
        "missing_genes_filled_with": "training mean of each fold model (z = 0)"})
    logger.info("%s/%s: predicted %d patient(s) with %d fold model(s) -> %s", bundle.model_name, spec.name,
                len(patients), len(bundle.members), out_dir)
    return CohortPrediction(predictions=ensemble, members=members, survival=survival)


def _write_attention(path: Path, ds: PatientBagDataset | None, atts: Sequence[list[np.ndarray | None]], bundle: Bundle) -> None:
    """The members' mean per-patch attention (contract §10, ``split`` = ``predict``); no file without any."""
    if ds is None or not atts or all(a is None for a in atts[0]):
        path.unlink(missing_ok=True)
        return
    mean = [None if item[0] is None else np.mean(np.stack(item), axis=0) for item in zip(*atts, strict=True)]
    n = write_attention_(path, ds, mean, split="predict", attrs={"model": bundle.model_name,
                                                               "task": bundle.spec.name, "bundle": str(bundle.path)})
    logger.info("attention of %d slide(s) -> %s", n, path)


def _draw_heatmaps(out_dir: Path, ensemble: pd.DataFrame, spec: TaskSpec, wsi_dir: Path) -> None:
    """``heatmaps/<patient>.png`` of every predicted patient with a drawable slide (emptied first)."""
    from gliofuse.report.attention import draw_patient_attention_, read_attention_

    folder = out_dir / "heatmaps"
    folder.mkdir(exist_ok=True)
    for old in [*folder.glob("*.png"), *folder.glob("*.svg")]:
        old.unlink()
    att = read_attention_(out_dir / ATTENTION_FILE)
    thumbs = {p.stem: p for p in (wsi_dir / "thumbnails").glob("*.jpg")}
    coords = {p.stem: p for p in (wsi_dir / "coords").glob("*.h5")}
    n = 0
    for row in ensemble.itertuples(index=False):
        if spec.kind == "survival":
            subtitle = f"{spec.name}: predicted risk {row.risk:.2f}"
        else:
            k = int(row.y_pred)
            subtitle = f"{spec.name}: predicted {spec.class_names[k]} (p = {getattr(row, spec.prob_columns[k]):.2f})"
        n += bool(draw_patient_attention_(att, str(row.patient_id), subtitle, thumbnails=thumbs, coords=coords,
                                          out=folder / f"{row.patient_id}.png"))
    logger.info("attention heatmaps of %d patient(s) -> %s", n, folder)
