"""Section ``predict``: applying an exported model bundle to new patients."""

from __future__ import annotations

from pydantic import Field

from gliofuse.config.base import _Section


class PredictConfig(_Section):
    """Applying an exported model bundle to new patients (``gliofuse predict``, the ``predict`` target)."""

    max_missing_gene_fraction: float = Field(
        0.1, ge=0.0, le=1.0, description="Largest fraction of a bundle's model genes that may be absent from the new "
        "expression matrix; they are filled with the training mean (z = 0) and listed in predict_info.json. More "
        "missing genes: refused, naming the count and some of the genes.")
    features_dir: str | None = Field(
        None, description="Folder of the new cohort's slide feature files (<slide>.h5, contract §5, the bundle's "
        "encoder) for the `predict` target; None: the target only serves omics-only models.")
    slides: str | None = Field(
        None, description="The new cohort's slide sheet (patient_id, slide_id, slide_path): the patient of each "
        "feature file <slide_id>.h5 for the `predict` target (e.g. results/cohort/slides.tsv to predict the "
        "development cohort); None: the first 12 characters of the file name (TCGA barcodes).")
    omics: str | None = Field(
        None, description="The new cohort's expression matrix (contract §6) for the `predict` target; None: the "
        "target only serves WSI-only models.")
    wsi_dir: str | None = Field(
        None, description="The new cohort's wsi_patch outputs (thumbnails/<slide>.jpg, coords/<slide>.h5): the "
        "`predict` target then draws attention heatmaps per patient (attention models); None: scores only.")
    drop_incomplete: bool = Field(
        False, description="Leave out (and list) patients missing a modality the model reads; False: refuse, naming "
        "the patient and the modality.")
