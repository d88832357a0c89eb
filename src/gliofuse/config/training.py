"""Training settings: cross-validation splits (section ``data``), the epoch loop (:class:`OptimConfig`) and
``training`` (:class:`TrainingConfig`: models, tasks, objectives, per-model settings)."""

from __future__ import annotations

from enum import StrEnum
from itertools import pairwise
from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field, ValidationError, model_validator

from gliofuse.ablations import ABLATIONS
from gliofuse.config.base import _Section
from gliofuse.presets import PRESET_NAMES, apply_preset
from gliofuse.tasks import TASK_NAMES

Optimizer = Literal["adam", "adamw", "sgd"]
LrSchedule = Literal["none", "cosine", "linear"]
EpochSelection = Literal["best", "last"]
SurvivalLoss = Literal["cox", "nll"]


Task = StrEnum("Task", {name: name for name in TASK_NAMES})
"""The task names of ``training.tasks`` (:data:`gliofuse.tasks.TASK_NAMES`)."""


class DataConfig(_Section):
    """Patient-level cross-validation splits."""

    n_folds: int = Field(5, ge=2, le=20, description="Number of cross-validation folds.")
    n_repeats: int = Field(
        1, ge=1, le=20, description="Repeats of the k-fold cross-validation, each with its own patient partition "
        "(repeat 0 uses `seed`, repeat j a seed derived from it, saved in the split files). r > 1 trains r x the "
        "fold jobs (fold ids 0 .. n_folds * n_repeats - 1); metrics are pooled within each repeat and reported as "
        "mean +/- sd over the repeats. 1: the plain k-fold cross-validation.")
    val_fraction: float = Field(0.15, ge=0, lt=0.5, description="Fraction of each training fold held out for early stopping.")
    stratify_by: str = Field("diagnosis", pattern="^(diagnosis|grade|event|none)$", description="Label to stratify folds by.")
    max_failed_slide_fraction: float = Field(
        0.2, ge=0, le=1, description="Stop at data_splits (naming the slides) when more than this fraction of the "
        "slides failed: unreadable in wsi_patch or too many unreadable patches in features_extract. Fewer are "
        "left out of the cohort and listed in results/qc/slides.tsv.")

    @property
    def n_fold_ids(self) -> int:
        """Number of split files and fold jobs per model and task: ``n_folds * n_repeats``."""
        return self.n_folds * self.n_repeats


class OptimConfig(_Section):
    """The epoch loop's settings: optimiser, schedule, precision, sampling, early stopping, epoch selection, resume.

    Declared once: ``training`` extends it (:class:`TrainingConfig`) and a validation protocol derives one from
    its own keys (:meth:`ValidationProtocolConfig.optim`).
    """

    epochs: int = Field(30, ge=1, description="Maximum epochs.")
    batch_size: int = Field(16, ge=1, description="Patients per optimisation step.")
    lr: float = Field(5e-4, gt=0, description="Peak learning rate.")
    weight_decay: float = Field(1e-4, ge=0, description="Weight decay (decoupled for adamw, L2 for adam/sgd).")
    patience: int = Field(8, ge=1, description="Early stopping patience in epochs (on the validation `monitor`).")
    device: str = Field("auto", pattern="^(auto|cpu|cuda(:\\d+)?)$", description="Torch device.")
    optimizer: Optimizer = Field(
        "adamw", description="'adamw' (decoupled weight decay), 'adam' (coupled L2, as the subspace-fusion "
        "original) or 'sgd' (with `momentum`).")
    momentum: float = Field(0.9, ge=0, lt=1, description="SGD momentum (optimizer: sgd only).")
    scheduler: LrSchedule = Field(
        "cosine", description="Learning-rate schedule, stepped once per epoch: 'cosine' anneals lr to `min_lr` "
        "over `epochs` (after `warmup_epochs` of linear warm-up); 'linear' decays it linearly (Pathomic Fusion: "
        "factor 1 - (e + 1) / (epochs + 1) in 0-based epoch e); 'none' keeps lr constant.")
    min_lr: float = Field(0.0, ge=0, description="Final learning rate of the cosine / linear schedule.")
    warmup_epochs: int = Field(0, ge=0, description="Epochs of linear learning-rate warm-up (from lr/10).")
    grad_clip: float | None = Field(None, gt=0, description="Clip the global gradient norm to this value; null: no clipping.")
    amp: bool = Field(True, description="Mixed precision (autocast) on CUDA; ignored on CPU (always fp32).")
    amp_dtype: Literal["bf16", "fp16"] = Field(
        "bf16", description="Autocast dtype on CUDA; fp16 adds a gradient scaler (unscaled before gradient hooks).")
    monitor: Literal["loss", "metric"] = Field(
        "loss", description="Model selection / early stopping on the validation 'loss' or 'metric' (C-index for "
        "survival, accuracy for classification).")
    resume: bool = Field(True, description="Resume an interrupted fold from its last epoch checkpoint (last.pt) "
                         "when its provenance matches; false: start over.")
    keep_epoch_checkpoints: bool = Field(
        False, description="Also keep one checkpoint per epoch (epoch_<k>.pt) beside last.pt.")
    l1: float = Field(0.0, ge=0, description="L1 penalty: l1 * sum |w| over all trainable model and head "
                      "parameters (biases included) added to every step's loss (Pathomic Fusion: 3e-4); 0: none. "
                      "Logged as history column train_l1_loss.")
    select_epoch: EpochSelection = Field(
        "best", description="Weights kept for the predictions and checkpoint: 'best' = the epoch with the best "
        "`monitor` value (the lowest training task loss without a validation set); 'last' = the final epoch's "
        "(as Pathomic Fusion and MCAT report). Early stopping (`patience`) applies either way.")
    weighted_sampler: bool = Field(
        False, description="Draw each epoch's training patients with replacement, weighted by 1 / size of their "
        "stratum (class label; survival: event x time bin of the 'nll' loss, event only for 'cox'), as MCAT's "
        "weighted sampling; false: a plain shuffle.")


class TrainingConfig(OptimConfig):
    """Model training (one job per model x task x fold, or per model x task: ``folds_per_job``)."""

    # the loop settings are inherited from OptimConfig; below: models, tasks, inputs and objectives

    preset: Literal[PRESET_NAMES] | None = Field(  # type: ignore[valid-type]
        None, description="A paper's protocol (docs/fidelity.md): zhang2024 (subspace fusion and its ablations), "
        "wang2024 (Path-GPTOmic), lu2022 (M2F), chen2020 (Pathomic Fusion), chen2021 (MCAT), and the originals' "
        "leaky survival bins zhang2024_global_bins / chen2021_cohort_bins. It sets every training key (models "
        "included) except device, amp, amp_dtype, resume, keep_epoch_checkpoints, n_top_genes and folds_per_job: "
        "the other training keys of the config are ignored. null: the keys as given.")

    models: list[str] = Field(["abmil_snn_concat"], min_length=1, description="Registered model names (gliofuse models list).")
    tasks: list[Task] = Field([Task.survival, Task.grade, Task.diagnosis], min_length=1, description="Tasks to train.")
    max_patches: int = Field(512, ge=1, description="Patches sampled per bag in each training epoch (seeded by seed, "
                             "epoch and item); a bag is a patient's slides together (bag_level patient) or one "
                             "slide (bag_level slide). Only the sampled rows are read from disk. Inference batches "
                             "hold at most batch_size x max_patches padded patches (a larger bag goes alone).")
    inference_max_patches: int | None = Field(
        None, ge=1, description="Patches per bag at validation and prediction: null = every patch (default), except "
        "models with self-attention over every patch (transmil, path_gptomic*: 4,096, their card's "
        "max_inference_patches); an integer = a fixed seeded subsample (the same in every epoch and call) for every "
        "model. The subspace-fusion original uses "
        "the same 2,500 tokens in training and inference (preset zhang2024: max_patches = inference_max_patches = "
        "2500).")
    n_top_genes: int = Field(256, ge=1, description="Most variable genes (on the training fold) fed to omics branches.")
    model_overrides: dict[str, dict[str, Any]] = Field(
        {}, description="Per-model hyper-parameter overrides: {model_name: {param: value}} (e.g. "
        "subspace_fusion: {token_map: raster, grid_size: 50, gc_mode: reflect}; keys: `gliofuse models list`).")
    survival_loss: SurvivalLoss = Field(
        "cox", description="Survival objective: 'cox' (Cox partial likelihood, `risk` = log hazard) or 'nll' "
        "(discrete-time hazard NLL on `n_bins` time bins, `risk` = -sum of the bin survival probabilities).")
    n_bins: int = Field(4, ge=2, le=20, description="Survival time bins of the 'nll' loss (edges: `bin_edges`).")
    bin_edges: Literal["train", "cohort"] | list[float] = Field(
        "train", description="Inner edges of the 'nll' loss's time bins: 'train' = quantiles of the training "
        "patients' survival times (fold-specific, stored in the checkpoint; default, leakage-free); 'cohort' = "
        "quantiles over every patient of the split, test patients included (MCAT's bins; leaks test times); a list "
        "of n_bins - 1 increasing times in days = fixed edges (the subspace-fusion original: TCGA quartiles "
        "[233.5, 511, 929], computed on its whole table).")
    bin_closed: Literal["right", "left"] = Field(
        "right", description="Bin convention of the 'nll' loss: 'right' = (q_{k-1}, q_k] (default); 'left' = "
        "[q_{k-1}, q_k) (the subspace-fusion original: a time equal to an edge falls in the later bin).")
    nll_alpha: float = Field(0.0, ge=0, le=1, description="Extra weight on the uncensored term of the 'nll' loss "
                             "(MCAT's alpha; 0 as in the subspace-fusion original).")
    diagnosis_classes: Literal[3, 4] = Field(
        3, description="WHO-2021 diagnosis classes: 3 (astrocytoma IDH-mut, oligodendroglioma, glioblastoma IDH-wt) "
        "or 4 (the astrocytoma split into grade 2/3 and grade 4, i.e. CDKN2A/B homozygous deletion or "
        "histologic grade 4: column who2021_grade of the label table).")
    grade_label: Literal["who2021", "histologic"] = Field(
        "who2021", description="Label of the grade task: 'who2021' = the WHO-2021 integrated grade (label-table "
        "column grade; IDH-wt -> 4, CDKN2A/B-deleted astrocytoma -> 4, oligodendroglioma capped at 3); "
        "'histologic' = the histologic grade G2/G3/G4 (column histologic_grade; the subspace-fusion original).")
    class_weights: Literal["none", "balanced"] | dict[Task, list[Annotated[float, Field(gt=0)]]] = Field(
        "none", description="Cross-entropy class weights: 'none'; 'balanced' = n / (K n_k) on the training patients "
        "of the fold; or fixed weights per task in class-index order ({grade: [1.47, 1.51, 1.0]}; classes: "
        "gliofuse.tasks; a task not listed is unweighted).")
    weight_decay_by_task: dict[Task, Annotated[float, Field(ge=0)]] = Field(
        {}, description="Weight decay of the jobs of a task, replacing `weight_decay` for them (the subspace-fusion "
        "original: 0.1, 0.01 for diagnosis).")
    multitask: bool = Field(
        False, description="Train one head per task of `tasks` jointly (summed losses, `loss_weights`); each "
        "job (model x task x fold) still writes the predictions of its own task and selects its epoch on it.")
    loss_weights: dict[str, float] = Field(
        {}, description="Per-task loss weights in multitask mode ({survival: 1.0, grade: 0.5}); missing: 1.0.")
    gene_sets: list[str] = Field(
        ["tumour", "microenvironment"], min_length=1, description="Gene sets (gliofuse.omics.genesets names, "
        "matched by symbol) fed as separate omics vectors to gene-subspace models (subspace_fusion: the first "
        "two are its tumour and microenvironment subspaces); each z-scored on the training patients.")
    bag_level: Literal["patient", "slide"] = Field(
        "patient", description="'patient': one bag of all of a patient's slides (slides laid out side by side on "
        "the 2-D token map); 'slide': one sample per slide, predictions averaged per patient (head outputs).")
    folds_per_job: Literal["one", "all"] = Field(
        "one", description="Workflow jobs of training (the results are the same either way): 'one' = one job per "
        "model x task x fold (rule train_fold; SLURM job arrays, one GPU per fold); 'all' = one job per model x "
        "task that trains its folds one after another in one process (rule train_folds; saves the ~4 s Python/"
        "torch start-up per fold: the local demo). Not a per-model setting, not part of the fold's provenance.")
    model_training: dict[str, dict[str, Any]] = Field(
        {}, description="Per-model overrides of the training settings above: {model_name: {setting: value}} "
        "(e.g. subspace_fusion: {lr: 2.0e-4, optimizer: adam, survival_loss: nll}; m2f: {tasks: [survival, grade], "
        "multitask: true}); not models, model_overrides or model_training. A per-model `tasks` list (a subset of "
        "`tasks`) selects the model's jobs and, with `multitask`, its jointly trained heads.")

    #: settings that cannot be overridden per model
    NOT_PER_MODEL: ClassVar[frozenset[str]] = frozenset({"models", "model_overrides", "model_training",
                                                         "folds_per_job"})

    @model_validator(mode="before")
    @classmethod
    def _apply_preset(cls, data: Any) -> Any:
        return apply_preset(data) if isinstance(data, dict) else data

    @model_validator(mode="after")
    def _check_bin_edges(self) -> TrainingConfig:
        if not isinstance(self.bin_edges, str):
            e = self.bin_edges
            if len(e) != self.n_bins - 1 or any(b <= a for a, b in pairwise(e)) or min(e) <= 0:
                raise ValueError(f"bin_edges {e} must be n_bins - 1 = {self.n_bins - 1} increasing positive "
                                 "times in days (or 'train' / 'cohort')")
        return self

    @model_validator(mode="after")
    def _check_model_training(self) -> TrainingConfig:
        for name, overrides in self.model_training.items():
            bad = sorted(k for k in overrides if k in self.NOT_PER_MODEL or k not in type(self).model_fields)
            if bad:
                raise ValueError(f"model_training.{name}: {bad} cannot be set per model; allowed keys are the "
                                 "training settings except models, model_overrides, model_training and "
                                 "folds_per_job")
            extra = sorted({str(getattr(t, "value", t)) for t in overrides.get("tasks", [])}
                           - {t.value for t in self.tasks})
            if extra:
                raise ValueError(f"model_training.{name}.tasks: {extra} are not in training.tasks "
                                 f"{[t.value for t in self.tasks]}; a model trains a subset of the tasks")
            try:
                self.for_model(name)
            except ValidationError as exc:
                err = exc.errors()[0]
                key = ".".join(str(p) for p in err["loc"])
                raise ValueError(f"model_training.{name}.{key} = {str(err.get('input'))[:40]!r}: {err['msg']}") from None
        return self

    def model_training_for(self, name: str) -> dict[str, Any]:
        """The per-model training settings of ``name``: for a registered ablation (:data:`gliofuse.ablations.
        ABLATIONS`) its parent's ``model_training``, then the ablated switch, then its own keys; else its own."""
        merged: dict[str, Any] = {}
        ablation = ABLATIONS.get(name)
        if ablation is not None:
            merged.update(self.model_training.get(ablation.parent, {}))
            merged.update(ablation.training)
        merged.update(self.model_training.get(name, {}))
        return merged

    def model_overrides_for(self, name: str) -> tuple[dict[str, Any], dict[str, Any]]:
        """``(inherited, own)`` model overrides of ``name``: a registered ablation inherits its parent's
        ``model_overrides`` (the registry drops the keys its card lacks: the ablated parts); ``own`` are
        ``model_overrides[name]`` and win key by key."""
        ablation = ABLATIONS.get(name)
        inherited = dict(self.model_overrides.get(ablation.parent, {})) if ablation is not None else {}
        return inherited, dict(self.model_overrides.get(name, {}))

    def for_model(self, name: str) -> TrainingConfig:
        """These settings with the model's per-model settings applied (:meth:`model_training_for`; validated)."""
        overrides = self.model_training_for(name)
        if not overrides:
            return self
        data = self.model_dump()
        data.update(overrides)
        data["model_training"] = {}
        data["preset"] = None  # already applied: validate the per-model keys without re-applying it
        return type(self).model_validate(data).model_copy(update={"preset": self.preset})

    def for_task(self, task: str) -> TrainingConfig:
        """These settings for a job of ``task``: ``weight_decay_by_task[task]`` replaces ``weight_decay``."""
        wd = {str(getattr(k, "value", k)): v for k, v in self.weight_decay_by_task.items()}.get(str(task))
        return self if wd is None else self.model_copy(update={"weight_decay": wd})

    def jobs(self) -> list[tuple[str, str]]:
        """``(model, task)`` pairs to train, in ``models`` order: each model's tasks (``model_training.<m>.tasks``
        where set, else ``tasks``), one job per pair and fold."""
        return [(m, t.value) for m in self.models for t in self.for_model(m).tasks]
