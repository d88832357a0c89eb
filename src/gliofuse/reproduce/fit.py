"""Training of one reproduction job: a published table's split, fit with the project's training harness.

Writes the harness outputs of the job under ``<out_root>/<protocol>/<model>/<task>/<cohort>/split_<k>/``
(``predictions.tsv`` with ``train`` and ``test`` rows, ``history.tsv``, ``checkpoint.pt``,
``gc_dynamics.tsv``).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from gliofuse.config import GliofuseConfig
from gliofuse.errors import ConfigError
from gliofuse.io import provenance, read_table_
from gliofuse.reproduce.jobs import (
    ValidationJob,
    load_cohort_,
    protocol_config,
    protocol_inputs,
    restrict_cohort_,
    roi_weighting,
)
from gliofuse.reproduce.preprocess import TablePreprocessor
from gliofuse.reproduce.tables import PublishedCohort, mcat_bin_edges

logger = logging.getLogger(__name__)


def fit_published_split_(*, cfg: GliofuseConfig, job: ValidationJob, out_root: Path,
                         cohort: PublishedCohort | None = None) -> pd.DataFrame:
    """Train one job with the project harness and return its ``predictions.tsv`` rows (§8 columns).

    Steps: patients with the task's inputs and outcome (:meth:`PublishedCohort.task_mask`) of the split's
    train and test lists; :class:`~gliofuse.reproduce.preprocess.TablePreprocessor` fit on the training rows
    (ROI-weighted for PF when ``roi_weighting``); an omics-only dataset per partition
    (PF training rows repeated once per ROI); the task objective (Cox; MCAT's 4 bins for ``nll``; 3-class
    cross-entropy for grade); the fold assembled by :func:`gliofuse.training.assemble.assemble_fold` and fit by
    :func:`gliofuse.training.fit.fit_fold_` without a validation set, with the protocol's ``l1``,
    ``select_epoch`` (``last``: the final epoch, as both papers; ``best``: the lowest training loss) and
    ``weighted_sampler``; ``patience`` = ``epochs``, so no early stop. A finished job with the same
    provenance is not retrained.

    Raises
    ------
    ConfigError
        The model is not omics-only, or a parameter is unknown.
    InputDataError
        A table violates its layout (:mod:`gliofuse.reproduce.tables`).
    """
    import torch

    from gliofuse.config import TrainingConfig
    from gliofuse.data.batch import Targets
    from gliofuse.models.registry import get_model_card, resolve_model_params
    from gliofuse.tasks import get_task
    from gliofuse.training.assemble import FoldData, assemble_fold
    from gliofuse.training.fit import fit_fold_
    from gliofuse.training.provenance import is_fold_done

    vcfg = cfg.validation
    pc = protocol_config(vcfg, job.protocol)
    card = get_model_card(job.model)
    if tuple(card.modalities) != ("omics",):
        raise ConfigError(f"validation.{job.protocol}.models: {job.model!r} reads {list(card.modalities)}; the "
                          "published tables have no histology, so only omics-only models can run.")
    params = resolve_model_params(job.model, **pc.model_overrides.get(job.model, {}))
    out_dir = Path(out_root) / job.rel_dir
    seed = cfg.seed + job.split
    settings = {"protocol": job.protocol, "model": job.model, "task": job.task, "cohort": job.cohort,
                "split": job.split, "seed": seed,
                "model_params": params, **pc.model_dump(mode="json", exclude={"enabled", "splits", "models",
                                                                               "tasks", "model_overrides"})}
    if job.protocol == "mcat":
        settings.update({"signature_genes": vcfg.mcat.signature_genes, "exclude_genes": vcfg.mcat.exclude_genes,
                         "feature_types": vcfg.mcat.feature_types})
    inputs = protocol_inputs(vcfg, job.protocol)
    if job.cohort == "rnaseq":
        inputs["mcat_table"] = protocol_inputs(vcfg, "mcat")["table"]
    prov = provenance(config=settings, inputs=inputs,
                      extra={"validation_job": job.rel_dir})
    if is_fold_done(out_dir, prov):
        logger.info("%s: already trained (provenance matches); reading %s", job.rel_dir, out_dir)
        return read_table_(out_dir / "predictions.tsv", required=["patient_id", "split"], what="predictions",
                           dtype={"patient_id": str})

    cohort = restrict_cohort_(cohort if cohort is not None else load_cohort_(vcfg, job.protocol), job.cohort, vcfg)
    split = cohort.split(job.split)
    mask = cohort.task_mask(job.task)
    train_idx = cohort.index_of(split.train)
    test_idx = cohort.index_of(split.test)
    train_idx, test_idx = train_idx[mask[train_idx]], test_idx[mask[test_idx]]
    roi = roi_weighting(pc)
    weight = cohort.weight if roi else np.ones(len(cohort.patients), dtype=np.int64)
    pre = TablePreprocessor().fit(cohort.features[train_idx], weight=weight[train_idx])
    rows_train = np.repeat(train_idx, weight[train_idx])  # PF: one row per ROI
    label = cohort.grade if job.task == "grade" else np.full(len(cohort.patients), -1, dtype=np.int64)
    data = FoldData(patients=list(cohort.patients),
                    targets=Targets(time_days=cohort.time_days, event=cohort.event, label=label),
                    partitions={"train": rows_train, "test": test_idx}, omics=cohort.features)
    survival_loss = pc.survival_loss if job.task == "survival" else "cox"
    edges = None
    if job.task == "survival" and survival_loss == "nll":  # MCAT's 4 bins, from the protocol's pool
        pool = np.arange(len(cohort.patients)) if getattr(pc, "bins_from", "train") == "cohort" else train_idx
        pool = pool[mask[pool]]
        inner = mcat_bin_edges(cohort.time_days[pool], cohort.event[pool])[1:-1]
        edges = {job.task: torch.as_tensor(inner, dtype=torch.float64)}
    logger.info("%s: %d train rows (%d patients) / %d test patients, %d features", job.rel_dir, len(rows_train),
                len(train_idx), len(test_idx), cohort.features.shape[1])
    run = assemble_fold(data, model_name=job.model, model_params=params, tasks=[get_task(job.task)],
                        training=TrainingConfig(survival_loss=survival_loss, device="cpu"), seed=seed,
                        omics_transform=pre, bin_edges=edges)
    result = fit_fold_(run, optim=pc.optim(), seed=seed, out_dir=out_dir, fold=job.split, prov=prov,
                       checkpoint_extra={"model_params": params, "validation": settings,
                                         "preprocessing": pre.state_dict(),
                                         "feature_names": list(cohort.feature_names)})
    return result.predictions
