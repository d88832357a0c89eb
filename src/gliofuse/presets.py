"""Protocol presets: one named set of training settings per paper (``training.preset``).

A preset fixes the paper's models, endpoints and label definitions, class weights, survival loss and bins,
optimiser, epochs, batch, selection rule and model switches (docs/fidelity.md compares every value with the
original and gliofuse's default). It is complete on its own: every training setting it does not name takes its
default, whatever the rest of the config sets, except the machine and bookkeeping keys of :data:`USER_KEYS`.
Where the original leaks test information into training (survival bins from the whole table), the preset is
leakage-free and a ``<name>_<variant>`` preset is the original's leaky variant.

The Pathomic Fusion (``chen2020``) and MCAT (``chen2021``) optimiser settings are read from the published-table
reproduction's protocol configs (:class:`gliofuse.config.PFValidationConfig`, :class:`~gliofuse.config.
MCATValidationConfig`), their single source. Torch-free.
"""

from __future__ import annotations

import copy
from typing import Any

USER_KEYS: frozenset[str] = frozenset({"device", "amp", "amp_dtype", "resume", "keep_epoch_checkpoints",
                                       "n_top_genes", "preset", "folds_per_job"})
"""Training keys a preset leaves to the config: where and how the jobs run, not what they compute."""

SUBSPACE_MODELS: list[str] = ["subspace_fusion", "subspace_fusion_no_split", "subspace_fusion_no_deform",
                              "subspace_fusion_no_cons", "subspace_fusion_no_gc"]
MCAT_GENE_SETS: list[str] = ["mcat.tumor_suppressor_genes", "mcat.oncogenes", "mcat.protein_kinases",
                             "mcat.cell_differentiation_markers", "mcat.transcription_factors",
                             "mcat.cytokines_and_growth_factors"]

SUBSPACE_GLOBAL_QUARTILES_DAYS: list[float] = [233.5, 511.0, 929.0]
"""The subspace-fusion original's fixed survival-bin edges: quartiles of its whole TCGA table (test included)."""

ZHANG2024: dict[str, Any] = {
    # Zhang et al., MICCAI 2024 (specs/subspace_fusion.md §§4-5; official code config_mine.yaml, train_test.py)
    "models": SUBSPACE_MODELS,
    "tasks": ["survival", "grade", "diagnosis"],
    "diagnosis_classes": 4,
    "grade_label": "histologic",
    # original order [GBM, astro G4, astro G2/3, oligo] = [1.0, 4.15, 2.93, 2.43], in gliofuse's class order
    # (gliofuse.tasks.DIAGNOSIS4_CLASSES: astro G2/3, astro G4, oligo, GBM)
    "class_weights": {"diagnosis": [2.93, 4.15, 2.43, 1.0], "grade": [1.47, 1.51, 1.0]},
    "survival_loss": "nll", "n_bins": 4, "nll_alpha": 0.0, "bin_edges": "train", "bin_closed": "left",
    "optimizer": "adam", "lr": 2e-4, "weight_decay": 0.1, "weight_decay_by_task": {"diagnosis": 0.01},
    "scheduler": "cosine", "epochs": 20, "batch_size": 16,
    "monitor": "metric", "patience": 20, "select_epoch": "best",
    "max_patches": 2500, "inference_max_patches": 2500,
    "bag_level": "slide",
    "gene_sets": ["tumour", "microenvironment"],
    "model_overrides": {"subspace_fusion": {"token_map": "raster", "grid_size": 50, "gc_mode": "reflect",
                                            "consistency": "original", "mask_out_of_map_keys": False}},
}

VARIANTS: dict[str, tuple[str, dict[str, Any], str]] = {
    "zhang2024_global_bins": ("zhang2024", {"bin_edges": SUBSPACE_GLOBAL_QUARTILES_DAYS},
                              ("the original's fixed bin edges 233.5/511/929 days, quartiles of its whole TCGA "
                               "table (test patients included: leaks; meaningful on TCGA-GBMLGG only)")),
    "chen2021_cohort_bins": ("chen2021", {"bin_edges": "cohort"},
                             "MCAT's bins: quartiles over the whole cohort, test patients included (leaks)"),
}
"""``{variant: (preset, changed settings, what it reproduces)}``: the originals' leaky options."""


def _from_validation(protocol: str) -> dict[str, Any]:
    """The optimiser settings of a published-table protocol (``validation.pf`` / ``validation.mcat`` defaults),
    as training settings: its epochs without early stopping, its loss, L1, sampler and epoch selection."""
    from gliofuse.config import MCATValidationConfig, PFValidationConfig

    pc = PFValidationConfig() if protocol == "pf" else MCATValidationConfig()
    optim = pc.optim().model_dump(include={"epochs", "batch_size", "lr", "weight_decay", "patience", "optimizer",
                                           "scheduler", "l1", "select_epoch", "weighted_sampler", "monitor"})
    return {**optim, "survival_loss": pc.survival_loss, "model_overrides": dict(pc.model_overrides)}


def _chen2020() -> dict[str, Any]:
    # Pathomic Fusion (Chen et al., IEEE TMI 2020): survival (Cox) and 3-class grade, 15 train/test splits
    return {**_from_validation("pf"), "models": ["pathomic_fusion", "snn"], "tasks": ["survival", "grade"]}


def _chen2021() -> dict[str, Any]:
    # MCAT (Chen et al., ICCV 2021): survival only, 4-bin NLL (alpha 0), bins [q, q) (pd.cut right=False)
    base = _from_validation("mcat")
    base["model_overrides"] = {**base["model_overrides"], "mcat": {"snn_activation": "elu", "post_pool_fc": True}}
    return {**base, "models": ["mcat", "snn", "abmil"], "tasks": ["survival"], "n_bins": 4, "nll_alpha": 0.0,
            "bin_edges": "train", "bin_closed": "left", "gene_sets": MCAT_GENE_SETS}


def _wang2024() -> dict[str, Any]:
    # Path-GPTOmic (Wang et al., 2024): survival (Cox) on PF's splits, batch 32; epochs, lr and optimiser are not
    # reported, so PF's (chen2020) are used (specs/pathgptomic_m2f_baselines.md §2)
    return {**_from_validation("pf"), "models": ["path_gptomic", "path_gptomic_no_gm", "path_gptomic_no_fm"],
            "tasks": ["survival"], "batch_size": 32, "l1": 0.0, "model_overrides": {}}


def _lu2022() -> dict[str, Any]:
    # M2F (Lu et al., 2022): joint survival (Cox) + grade, L = L_surv + 1 * L_grade, batch 32; the rest is not
    # published: PF's optimiser (chen2020)
    return {**_from_validation("pf"), "models": ["m2f", "m2f_uncertainty", "m2f_single_task"],
            "tasks": ["survival", "grade"], "multitask": True, "loss_weights": {"survival": 1.0, "grade": 1.0},
            "batch_size": 32, "l1": 0.0, "model_overrides": {}, "gene_sets": MCAT_GENE_SETS}


PRESET_NAMES: tuple[str, ...] = ("zhang2024", "wang2024", "lu2022", "chen2020", "chen2021", *VARIANTS)


def preset_settings(name: str) -> dict[str, Any]:
    """The training settings a preset fixes (a fresh dict).

    Raises
    ------
    ValueError
        Unknown preset name (the message lists the names).
    """
    if name in VARIANTS:
        base, changes, _ = VARIANTS[name]
        return {**preset_settings(base), **changes}
    builders = {"zhang2024": lambda: ZHANG2024, "wang2024": _wang2024, "lu2022": _lu2022, "chen2020": _chen2020,
                "chen2021": _chen2021}
    if name not in builders:
        raise ValueError(f"unknown preset {name!r}; presets are {list(PRESET_NAMES)}")
    return copy.deepcopy(builders[name]())


def apply_preset(data: dict[str, Any]) -> dict[str, Any]:
    """``training`` mapping with its ``preset`` applied: the preset's settings, the config's :data:`USER_KEYS`,
    every other key at its default. Without a preset, ``data`` unchanged."""
    name = data.get("preset")
    if not name:
        return data
    out = {k: v for k, v in data.items() if k in USER_KEYS}
    out.update(preset_settings(str(name)))
    return out
