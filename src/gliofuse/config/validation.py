"""Section ``validation``: the published-table protocols (Pathomic Fusion, MCAT) and their inputs."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from gliofuse.config.base import _Section
from gliofuse.config.training import EpochSelection, LrSchedule, OptimConfig, Optimizer, SurvivalLoss


class ValidationProtocolConfig(_Section):
    """Optimisation settings and inputs of one published protocol (``validation.pf`` / ``validation.mcat``)."""

    enabled: bool = Field(True, description="Run this protocol in `validation_all` / `gliofuse validate run`.")
    tasks: list[Literal["survival", "grade"]] = Field(["survival"], min_length=1, description="Tasks to run.")
    splits: list[int] | None = Field(None, description="Split indices to run (PF 1..15, MCAT 0..4); null: all.")
    models: list[str] = Field(["snn"], min_length=1, description="Omics-only registered models (`gliofuse models "
                              "list`; modality omics only).")
    model_overrides: dict[str, dict[str, Any]] = Field({}, description="{model: {param: value}} hyper-parameters.")
    epochs: int = Field(50, ge=1, description="Epochs (no early stopping; the protocols have no validation set).")
    batch_size: int = Field(64, ge=2, description="Rows per optimisation step.")
    lr: float = Field(2e-3, gt=0, description="Peak learning rate.")
    weight_decay: float = Field(5e-4, ge=0, description="Weight decay (L2 for adam).")
    optimizer: Optimizer = Field("adam", description="Optimizer.")
    scheduler: LrSchedule = Field("linear", description="Per-epoch learning-rate "
                                                            "schedule (training.scheduler).")
    survival_loss: SurvivalLoss = Field("cox", description="Survival objective of the protocol.")
    l1: float = Field(0.0, ge=0, description="L1 penalty on all model and head parameters (training.l1).")
    select_epoch: EpochSelection = Field(
        "last", description="'last': the final epoch's weights (both papers report them); 'best': the epoch with "
        "the lowest training loss (training.select_epoch).")
    weighted_sampler: bool = Field(False, description="Balanced sampling of the training rows "
                                   "(training.weighted_sampler).")

    def optim(self) -> OptimConfig:
        """The loop settings of this protocol: its own keys shared with :class:`OptimConfig`, and what every
        protocol fixes: no early stopping (``patience`` = ``epochs``; there is no validation set), CPU, fp32,
        the training loss monitored, no resume; the other settings at their defaults."""
        own = self.model_dump(include=set(OptimConfig.model_fields))
        return OptimConfig(**own, patience=self.epochs, device="cpu", amp=False, monitor="loss", resume=False)


class PFValidationConfig(ValidationProtocolConfig):
    """Pathomic Fusion protocol: 15 pnas_splits train/test splits, Cox loss (survival) and 3-class grade."""

    tasks: list[Literal["survival", "grade"]] = Field(["survival", "grade"], min_length=1, description="Tasks.")
    model_overrides: dict[str, dict[str, Any]] = Field(
        {"snn": {"hidden_dims": [64, 48, 32, 32], "dropout": 0.25, "activation": "elu"}},
        description="{model: {param: value}}; default: PF's genomic SNN (MaxNet 80-64-48-32-32, ELU, AlphaDropout "
        "0.25).")
    l1: float = Field(3e-4, ge=0, description="PF: lambda_reg 3e-4 on all parameters (reg_type all).")
    roi_weighting: bool = Field(True, description="Repeat each patient once per ROI ('Region count') in training, "
                                "scaling and the grade metrics, as PF trains and tests on ROI rows.")
    survival_cohorts: list[Literal["rnaseq", "all"]] = Field(
        ["rnaseq", "all"], min_length=1, description="Patient sets of the survival task: 'rnaseq' = those with "
        "RNA-seq (listed in the MCAT table; needs mcat_dir), as PF's published survival SNN was trained on its "
        "RNA-seq inner join; 'all' = every patient with a molecular subtype.")


class MCATValidationConfig(ValidationProtocolConfig):
    """MCAT protocol: 5-fold patient-level CV (val folds), 4-bin discrete-time NLL, SNN on signature genes."""

    model_overrides: dict[str, dict[str, Any]] = Field(
        {"snn": {"hidden_dims": [256, 256, 256, 256], "dropout": 0.25, "activation": "elu"}},
        description="{model: {param: value}}; default: MCAT's SNN ('small': 4 x 256, ELU, AlphaDropout 0.25).")
    epochs: int = Field(20, ge=1, description="Epochs (MCAT: 20, last epoch reported).")
    batch_size: int = Field(32, ge=2, description="Patients per step (MCAT: batch 1 with 32-step accumulation).")
    lr: float = Field(2e-4, gt=0, description="Learning rate (MCAT: 2e-4).")
    weight_decay: float = Field(1e-5, ge=0, description="Weight decay (MCAT: 1e-5).")
    scheduler: LrSchedule = Field("none", description="MCAT: constant learning rate.")
    l1: float = Field(3.2e-3, ge=0, description="MCAT's SNN run: lambda_reg 1e-4 on all parameters, added to each "
                      "of the 32 accumulated batch-1 losses (loss / gc + reg), i.e. 32 x 1e-4 per batch-32 step.")
    weighted_sampler: bool = Field(True, description="MCAT: weighted_sample (classes = survival bin x censorship).")
    survival_loss: SurvivalLoss = Field("nll", description="MCAT: 4-bin discrete-time NLL (alpha 0).")
    signature_genes: bool = Field(True, description="Features: *_rnaseq/_cnv/_mut columns of signature-family "
                                  "genes (MCAT's SNN baseline); false: all genomic columns.")
    exclude_genes: list[str] = Field(
        ["IDH1"], description="Gene symbols dropped from the features. IDH1 is in this signatures.csv (Oncogenes) "
        "but was in none of the families MCAT's published SNN used.")
    feature_types: list[Literal["rnaseq", "cnv", "mut"]] = Field(
        ["rnaseq", "cnv", "mut"], min_length=1, description="Genomic column kinds fed to the model.")
    bins_from: Literal["cohort", "train"] = Field(
        "cohort", description="Survival bin edges from the uncensored patients of the whole table (MCAT) or of "
        "the training fold only.")


class ValidationConfig(_Section):
    """Validation of the omics models on published TCGA-GBMLGG tables under their original protocols."""

    pf_dir: str | None = Field(None, description="Folder with Pathomic Fusion's all_dataset.csv, grade_data.csv "
                               "and pnas_splits.csv; null: the PF protocol is not run.")
    mcat_dir: str | None = Field(None, description="Folder with MCAT's tcga_gbmlgg_all_clean.csv.zip, "
                                 "signatures.csv and splits/5foldcv/tcga_gbmlgg/; null: the MCAT protocol is not run.")
    tolerance: float = Field(0.015, ge=0, description="A result matches when it is within this of the published "
                             "value (or better).")
    pf: PFValidationConfig = PFValidationConfig()
    mcat: MCATValidationConfig = MCATValidationConfig()
