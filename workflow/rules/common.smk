# Configuration, sample lists, wildcard constraints and input functions shared by every rule file.
import re
from pathlib import Path

from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

from gliofuse.config import SECTIONS, parse_config, section_snapshot
from gliofuse.errors import ConfigError

validate(config, schema="../schemas/config.schema.yaml")
try:
    CFG = parse_config(config, source="config.yaml (merged with --config/--configfile)")
except ConfigError as exc:
    raise WorkflowError(str(exc)) from None

DATA_ROOT = str(CFG.resolved_data_root())
ENCODER = re.sub(r"[^A-Za-z0-9_.-]+", "-", CFG.features.encoder)
MODELS = list(CFG.training.models)
TASKS = [t.value for t in CFG.training.tasks]
FOLDS = list(range(CFG.data.n_folds))
GPU_FEATURES = 1 if CFG.features.device.startswith("cuda") else 0
GPU_TRAINING = 1 if CFG.training.device.startswith("cuda") else 0


def _list_slides() -> list[str]:
    if CFG.cohort.value == "demo":
        from gliofuse.demo.plan import plan_cohort

        return list(plan_cohort(seed=CFG.seed, cfg=CFG.demo).slide_ids)
    slide_dir = Path(DATA_ROOT, "slides")
    found = sorted(p.stem for p in slide_dir.glob("*.svs"))
    if not found:
        raise WorkflowError(
            f"cohort 'tcga': no .svs slide under {slide_dir}. Download them first (gdc stage) "
            "or set data_root to the folder that holds slides/, rnaseq/ and metadata/."
        )
    return found


SLIDES = _list_slides()


wildcard_constraints:
    slide=r"TCGA-[A-Z0-9]{2}-[A-Z0-9]{4}-[^/]+",
    fold=r"\d+",
    model="|".join(MODELS),
    task="|".join(TASKS),
    section="|".join(SECTIONS),


def get_config_snapshot(wildcards) -> dict:
    """The merged, validated config restricted to one section (results/config/<section>.yaml)."""
    return section_snapshot(CFG.model_dump(mode="json"), wildcards.section)


def get_demo_root(wildcards, output) -> str:
    """Data root written by demo_generate: the folder two levels above metadata/cases.json."""
    return str(Path(output.cases).parent.parent)


def cfg_path(section: str) -> str:
    return f"results/config/{section}.yaml"


def data_path(*parts: str) -> str:
    return str(Path(DATA_ROOT, *parts))


def get_molecular_table() -> str:
    if CFG.labels.molecular_table:
        return CFG.labels.molecular_table
    if CFG.cohort.value == "demo":
        return data_path("labels", "molecular.tsv")
    from gliofuse.labels.tables import shipped_molecular_table

    return str(shipped_molecular_table())


def feature_path(slide: str) -> str:
    return f"results/features/{ENCODER}/{slide}.h5"


def get_all_features(wildcards=None) -> list[str]:
    return [feature_path(s) for s in SLIDES]


def get_all_slide_status(wildcards=None) -> list[str]:
    return [f"results/wsi/status/{s}.json" for s in SLIDES]


def get_all_slide_qc(wildcards=None) -> list[str]:
    return [f"results/wsi/qc/{s}.png" for s in SLIDES]


def get_fold_predictions(wildcards) -> list[str]:
    return [
        f"results/training/{wildcards.model}/{wildcards.task}/fold_{k}/predictions.tsv" for k in FOLDS
    ]


def get_all_metrics(wildcards=None) -> list[str]:
    return [f"results/evaluation/{m}/{t}/metrics.tsv" for m in MODELS for t in TASKS]


def get_final_output(wildcards=None) -> list[str]:
    out = ["results/evaluation/summary.tsv", "results/figures/summary.png", "results/figures/cohort.png",
           "results/qc/slides.tsv", "results/figures/qc_slides.png"]
    out += [f"results/figures/{m}/{t}.png" for m in MODELS for t in TASKS]
    return out
