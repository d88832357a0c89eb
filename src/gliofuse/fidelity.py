"""The fidelity table (docs/fidelity.md): per component, the original, gliofuse's default and each preset's value.

The rows hold the original's value and the reason the default differs; the default and preset columns are read
from :class:`gliofuse.config.TrainingConfig` and the model cards, so no number is stated twice. Regenerate the
document with ``python -m gliofuse.fidelity docs/fidelity.md`` (a test keeps it in sync and checks that the
``zhang2024`` preset sets every original value it claims to).
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gliofuse.config import TrainingConfig
from gliofuse.presets import PRESET_NAMES, SUBSPACE_GLOBAL_QUARTILES_DAYS, VARIANTS

MAIN_PRESETS: tuple[str, ...] = tuple(n for n in PRESET_NAMES if n not in VARIANTS)
ABSENT = object()
"""``setting_value`` of a model switch when the model is not trained."""


@dataclass(frozen=True)
class Row:
    """One component.

    Attributes
    ----------
    component : what it is.
    key : training setting (``"lr"``) or model switch (``"subspace_fusion.gc_mode"``); None: not a setting.
    original : the subspace-fusion original's value in config terms (None: stated in ``original_text`` only).
    why : why gliofuse's default differs (or "same").
    original_text : the original in words, where a value does not say it.
    preset_departs : why the zhang2024 preset does not use the original's value ("" = it does).
    """

    component: str
    key: str | None
    original: Any
    why: str
    original_text: str = ""
    preset_departs: str = ""


SPEC = "specs/subspace_fusion.md §§4-5, official code config_mine.yaml / train_test.py"
ROWS: tuple[Row, ...] = (
    Row("diagnosis endpoint", "diagnosis_classes", 4,
        "3 classes are the WHO-2021 types themselves and need no CDKN2A/B call; 4 splits astrocytoma by grade"),
    Row("grade label", "grade_label", "histologic", "the WHO-2021 integrated grade is the current definition",
        original_text="histologic grade G2/G3/G4 of the original's CSV (labels.tsv column histologic_grade)"),
    Row("class weights (CE)", "class_weights",
        {"diagnosis": [2.93, 4.15, 2.43, 1.0], "grade": [1.47, 1.51, 1.0]},
        "the original's weights fit its TCGA class frequencies; 'balanced' refits them per fold",
        original_text="diag [1.0, 4.15, 2.93, 2.43] in the order GBM, astro G4, astro G2/3, oligo"),
    Row("survival loss", "survival_loss", "nll", "Cox uses exact times and needs no bin edges"),
    Row("survival bins", "n_bins", 4, "same"),
    Row("NLL alpha", "nll_alpha", 0.0, "same"),
    Row("bin edges", "bin_edges", SUBSPACE_GLOBAL_QUARTILES_DAYS,
        "edges from the training fold only: the original's quartiles of the whole table include test times",
        preset_departs="leakage-free; preset zhang2024_global_bins uses the original's edges"),
    Row("bin convention", "bin_closed", "left", "right-closed (q, q] as torch.bucketize; only ties at an edge move"),
    Row("optimiser", "optimizer", "adam", "AdamW decouples weight decay from the adaptive step"),
    Row("weight decay", "weight_decay", 0.1, "1e-4 suits AdamW; 0.1 is coupled L2 under Adam"),
    Row("weight decay per task", "weight_decay_by_task", {"diagnosis": 0.01}, "one weight decay for every task"),
    Row("learning rate", "lr", 2e-4, "5e-4 default (the demo config trains its models at 2e-3)"),
    Row("schedule", "scheduler", "cosine", "same"),
    Row("epochs", "epochs", 20, "30 with early stopping"),
    Row("batch", "batch_size", 16, "same (the original: 2 x 8 with drop_last)"),
    Row("model selection", "monitor", "metric", "validation loss is smoother on small validation sets",
        original_text="best validation AUC-or-accuracy / C-index"),
    Row("early stopping", "patience", 20, "early stopping saves time; the original trains every epoch",
        original_text="no early stopping (patience = epochs)"),
    Row("epoch kept", "select_epoch", "best", "same"),
    Row("L1 penalty", "l1", 0.0, "same"),
    Row("balanced sampling", "weighted_sampler", False, "same"),
    Row("patches per bag (training)", "max_patches", 2500, "512 keeps the demo and CPU runs small"),
    Row("patches per bag (inference)", "inference_max_patches", 2500,
        "null = every patch: predictions use all the tissue (transmil, path_gptomic*: 4,096, their self-attention "
        "is quadratic in the bag)",
        original_text="the same 2,500 tokens as in training"),
    Row("unit of a sample", "bag_level", "slide", "one bag per patient, its slides side by side"),
    Row("gene sets", "gene_sets", None, "the original's 59 + 361 gene lists are not public",
        original_text="59 tumour + 361 immune genes, raw FPKM(-UQ)",
        preset_departs="gliofuse's curated tumour / microenvironment markers (50 + 58), z-scored"),
    Row("token map", "subspace_fusion.token_map", "raster", "'coords' places each patch at its grid cell"),
    Row("token map size", "subspace_fusion.grid_size", 50, "same"),
    Row("gradient coordination", "subspace_fusion.gc_mode", "reflect",
        "PCGrad-style projection removes only the conflicting component"),
    Row("consistency loss", "subspace_fusion.consistency", "original",
        "'sample' is the intended per-group sample x sample form; 'original' reproduces the reshape"),
    Row("out-of-map keys", "subspace_fusion.mask_out_of_map_keys", False,
        "masked: zero-feature keys outside the map get no attention"),
    Row("batch C-index (ties)", None, None, "tie handling follows sksurv (issue 14, item 4; objectives.py)",
        original_text="sksurv concordance_index_censored"),
)


def _card_default(model: str, param: str) -> Any:
    from gliofuse.models.registry import get_model_card

    return get_model_card(model).defaults.get(param, "(not a parameter yet)")


def setting_value(training: TrainingConfig, key: str) -> Any:
    """The value of a setting (``"lr"``) or model switch (``"<model>.<param>"``) in ``training``; :data:`ABSENT`
    when the model is not among ``training.models``."""
    if "." not in key:
        return training.model_dump(mode="json")[key]
    model, param = key.split(".", 1)
    if model not in training.models:
        return ABSENT
    inherited, own = training.model_overrides_for(model)
    merged = {**inherited, **own}
    return merged[param] if param in merged else _card_default(model, param)


def _fmt(value: Any) -> str:
    if value is ABSENT:
        return "—"
    if value is None:
        return "null"
    return json.dumps(value) if not isinstance(value, str) else value


def render_markdown() -> str:
    """The text of docs/fidelity.md."""
    default = TrainingConfig()
    presets = {n: TrainingConfig(preset=n) for n in MAIN_PRESETS}
    head = ["component", "setting", "original (Zhang 2024)", "default", *MAIN_PRESETS, "why the default differs"]
    lines = [
        "# Fidelity: the originals, gliofuse's defaults and the protocol presets",
        "",
        "<!-- Generated by `python -m gliofuse.fidelity docs/fidelity.md` from src/gliofuse/fidelity.py and the",
        "     presets (src/gliofuse/presets.py); tests/unit/test_fidelity.py keeps it in sync. Do not edit. -->",
        "",
        ("Choose a paper's protocol with one key, `training.preset: <name>`, or one file, "
        "`snakemake --configfile config/presets/<name>.yaml`. A preset sets every training key (models included) "
        "except device, amp, amp_dtype, resume, keep_epoch_checkpoints, n_top_genes and folds_per_job; the data "
        "sections stay the config's. The defaults stay leakage-free; every departure below is a setting. "
        "Ablations train with every setting of the model they ablate (gliofuse.ablations)."),
        "",
        (f"Original: Zhang et al., MICCAI 2024 ({SPEC}). Settings are `training.<key>`; `<model>.<param>` are "
        "model switches (`training.model_overrides`). Values are read from the code; — = the preset does not "
        "train that model."),
        "",
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
    ]
    for row in ROWS:
        original = row.original_text or _fmt(row.original)
        if row.original_text and row.original is not None and row.key is not None:
            original = f"{_fmt(row.original)} ({row.original_text})"
        if row.key is None:
            cells = ["—"] * (1 + len(MAIN_PRESETS))
        else:
            cells = [_fmt(setting_value(default, row.key) if "." not in row.key
                          else _card_default(*row.key.split(".", 1)))]
            cells += [_fmt(setting_value(p, row.key)) for p in presets.values()]
        why = row.why + (f". zhang2024 departs: {row.preset_departs}" if row.preset_departs else "")
        lines.append("| " + " | ".join([row.component, f"`{row.key}`" if row.key else "—", original, *cells, why])
                     + " |")
    lines += ["", "## Presets", ""]
    for name in MAIN_PRESETS:
        models = ", ".join(presets[name].models)
        lines.append(f"- `{name}`: {models}; tasks {', '.join(t.value for t in presets[name].tasks)}.")
    for name, (base, changes, what) in VARIANTS.items():
        lines.append(f"- `{name}`: `{base}` with {json.dumps(changes)}: {what}.")
    lines += [
        "",
        ("`chen2020` and `chen2021` take their optimiser, epochs, loss, L1 and sampler from the published-table "
        "reproduction's protocols (`validation.pf`, `validation.mcat`; docs/validation.md), without early "
        "stopping; their train/test splits (PF's 15 pnas_splits, MCAT's 5 folds) are that reproduction's, not "
        "the pipeline's `data` splits. `wang2024` (Path-GPTOmic: epochs, lr and optimiser not reported) and "
        "`lu2022` (M2F: only the abstract is public) use Pathomic Fusion's optimiser with batch 32. MCAT's "
        "`mcat.snn_activation: elu` and `mcat.post_pool_fc: true` and subspace fusion's "
        "`mask_out_of_map_keys: false` are model switches added with issue 14 (models/mcat.py, models/subspace.py)."),
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":  # pragma: no cover - the generator's command line
    Path(sys.argv[1]).write_text(render_markdown())
