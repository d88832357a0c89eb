"""Apply every development bundle to one external cohort (``gliofuse external predict``; contract §12).

The bundles are frozen: normalisers, gene sets, survival bins and class maps come from the development
cohort only (:mod:`gliofuse.deploy.bundle`). The external cohort's patients are those of its slide sheet,
and each slide feature file ``<slide_id>.h5`` belongs to the patient the sheet gives it. Each bundle's
outputs are exactly :func:`gliofuse.deploy.apply.predict_cohort_`'s, in ``<out_root>/<model>/<task>/``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from gliofuse.cohorts.sheet import read_slide_sheet_, slide_patients
from gliofuse.config import PredictConfig
from gliofuse.deploy.apply import predict_cohort_
from gliofuse.deploy.bundle import load_bundle_
from gliofuse.deploy.cohort import read_cohort_inputs_

logger = logging.getLogger(__name__)


def predict_external_(*, bundles: Sequence[Path], slides: Path, feature_paths: Sequence[Path],
                      omics_path: Path | None, out_root: Path, settings: PredictConfig,
                      device: str = "cpu") -> list[Path]:
    """Run each bundle folder of ``bundles`` on the cohort of the slide sheet ``slides``.

    ``feature_paths``: the cohort's slide feature files (contract §5, named ``<slide_id>.h5``);
    ``omics_path``: its expression matrix imported onto the development genes (contract §6a), or None when
    no bundle reads RNA. Patients: every ``patient_id`` of the sheet; one lacking an input a model reads is
    refused, or left out and listed with ``settings.drop_incomplete``.

    Returns the ``predictions.tsv`` written, one per bundle, in ``bundles`` order.
    """
    sheet = read_slide_sheet_(slides, check_files=False)
    patients = sorted(set(sheet["patient_id"]))
    mapping = slide_patients(sheet)
    written = []
    for folder in bundles:
        bundle = load_bundle_(Path(folder))
        inputs = read_cohort_inputs_(
            bundle, feature_paths=feature_paths if "wsi" in bundle.modalities else [],
            omics_path=omics_path if "omics" in bundle.modalities else None, patients=patients,
            max_missing_gene_fraction=settings.max_missing_gene_fraction,
            drop_incomplete=settings.drop_incomplete, slide_patients=mapping)
        out_dir = Path(out_root) / bundle.model_name / bundle.spec.name
        predict_cohort_(bundle, inputs, out_dir=out_dir, device=device)
        written.append(out_dir / "predictions.tsv")
    logger.info("external cohort %s: %d bundle(s) applied to %d patient(s)", slides, len(written), len(patients))
    return written
