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
JOBS = CFG.training.jobs()  # (model, task) pairs: each model's tasks (training.model_training.<m>.tasks or tasks)
FOLDS = list(range(CFG.data.n_folds))
GPU_FEATURES = 1 if CFG.features.device.startswith("cuda") else 0
GPU_TRAINING = 1 if CFG.training.device.startswith("cuda") else 0


# cohort: tcga + gdc.download: true -> query + download (workflow/rules/gdc.smk); the slide list comes from
# the gdc_query checkpoint's manifest. Otherwise the slides are the demo plan's or those already on disk.
if CFG.gdc.download and CFG.cohort.value != "tcga":
    raise WorkflowError("gdc.download: true needs cohort: tcga (the demo cohort is generated, not downloaded).")
GDC_DOWNLOAD = CFG.cohort.value == "tcga" and CFG.gdc.download


def _list_slides() -> list[str]:
    if CFG.cohort.value == "demo":
        from gliofuse.demo.plan import plan_cohort

        return list(plan_cohort(seed=CFG.seed, cfg=CFG.demo).slide_ids)
    if GDC_DOWNLOAD:
        return []  # known once the gdc_query checkpoint has run: use get_slides()
    slide_dir = Path(DATA_ROOT, "slides")
    found = sorted(p.stem for p in slide_dir.glob("*.svs"))
    if not found:
        raise WorkflowError(
            f"cohort 'tcga': no .svs slide under {slide_dir}. Set gdc.download: true to download them from the "
            "GDC, or set data_root to the folder that holds slides/, rnaseq/ and metadata/."
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


def get_user_manifest(wildcards=None) -> list[str]:
    """The user-supplied GDC manifest (gdc.manifest) as a checkpoint input, or nothing."""
    return [CFG.gdc.manifest] if CFG.gdc.manifest else []


def get_gdc_root(wildcards, output) -> str:
    """Data root written by gdc_query: the folder two levels above metadata/manifest.tsv."""
    return str(Path(output.manifest).parent.parent)


def get_gdc_manifest(wildcards=None) -> str:
    """metadata/manifest.tsv written by the gdc_query checkpoint (waits for it)."""
    return checkpoints.gdc_query.get().output.manifest


def _gdc_rows():
    from gliofuse.gdc.manifest import read_manifest_

    return read_manifest_(Path(get_gdc_manifest()))


def get_slides() -> list[str]:
    """Slide ids of the run: the GDC manifest's (download mode, checkpoint-aware) or SLIDES."""
    if GDC_DOWNLOAD:
        from gliofuse.gdc.manifest import slide_ids

        return slide_ids(_gdc_rows())
    return SLIDES


def describe_slides() -> str:
    return "slides from the GDC manifest" if GDC_DOWNLOAD else f"{len(SLIDES)} slides"


def get_rnaseq_inputs(wildcards=None) -> list[str]:
    """STAR - Counts inputs of omics_matrix: each downloaded file (download mode) or the rnaseq/ folder."""
    if GDC_DOWNLOAD:
        return [data_path(str(r.relpath)) for r in _gdc_rows() if r.kind == "rnaseq"]
    return [data_path("rnaseq")]


def get_all_gdc_files(wildcards=None) -> list[str]:
    """Every file of the GDC manifest at its data-root path (target of gdc_download_all)."""
    return [data_path(str(r.relpath)) for r in _gdc_rows()]


def get_all_features(wildcards=None) -> list[str]:
    return [feature_path(s) for s in get_slides()]


def get_all_slide_status(wildcards=None) -> list[str]:
    return [f"results/wsi/status/{s}.json" for s in get_slides()]


def get_all_slide_qc(wildcards=None) -> list[str]:
    return [f"results/wsi/qc/{s}.png" for s in get_slides()]


def get_fold_predictions(wildcards) -> list[str]:
    return [
        f"results/training/{wildcards.model}/{wildcards.task}/fold_{k}/predictions.tsv" for k in FOLDS
    ]


def get_all_metrics(wildcards=None) -> list[str]:
    return [f"results/evaluation/{m}/{t}/metrics.tsv" for m, t in JOBS]


def get_final_output(wildcards=None) -> list[str]:
    out = ["results/evaluation/summary.tsv", "results/figures/summary.png", "results/figures/cohort.png",
           "results/qc/slides.tsv", "results/figures/qc_slides.png"]
    out += [f"results/figures/{m}/{t}.png" for m, t in JOBS]
    out += REPORT_OUTPUTS  # comparisons, forest plot, summary.md, training and attention figures (report.smk)
    # Per-slide features are products in their own right (reused across models and experiments). Listing them
    # as targets also makes a deleted feature file count as missing: Snakemake 9 does not rebuild a deleted
    # intermediate whose consumers are up to date, so without this `rm` of one h5 would go unnoticed.
    out += get_all_features()
    return out
