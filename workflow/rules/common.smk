# Configuration, sample and job lists, shared path templates, wildcard constraints and the input/params
# functions of every rule file. Rule files read only what is defined here (and their own rules).
import json
import re
from pathlib import Path

from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

from gliofuse.config import SECTIONS, parse_config, resolve_reference_model, section_snapshot
from gliofuse.errors import ConfigError
from gliofuse.reproduce.jobs import ValidationJob, job_prediction_paths, job_table_inputs, validation_jobs
from gliofuse.wsi.overrides import check_override_slides, read_overrides

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


CONFIG_SNAPSHOT = "results/config/{section}.yaml"


def cfg_path(section: str) -> str:
    return CONFIG_SNAPSHOT.format(section=section)


def data_path(*parts: str) -> str:
    return str(Path(DATA_ROOT, *parts))


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

# Parse-time checks of the sections whose errors would otherwise surface inside a job.
try:
    REFERENCE_MODEL = resolve_reference_model(CFG.evaluation, MODELS)
    # wsi.overrides_csv: bad column, value or slide id gives a clear error now
    WSI_OVERRIDES = read_overrides(CFG.wsi.overrides_csv) if CFG.wsi.overrides_csv else {}
    if WSI_OVERRIDES and SLIDES:
        check_override_slides(WSI_OVERRIDES, SLIDES, path=CFG.wsi.overrides_csv)
    VALIDATION_JOBS = validation_jobs(CFG.validation)  # empty unless validation.pf_dir / mcat_dir is set
except ConfigError as exc:
    raise WorkflowError(str(exc)) from None


# Path templates shared by several rules (inputs of one rule, outputs of another), each defined once.
SLIDE_FILE = data_path("slides", "{slide}.svs")
CASES_JSON = data_path("metadata", "cases.json")
FILES_SLIDES_JSON = data_path("metadata", "files_slides.json")
FILES_RNASEQ_JSON = data_path("metadata", "files_rnaseq.json")
RNASEQ_DIR = data_path("rnaseq")
DEMO_MOLECULAR = data_path("labels", "molecular.tsv")
DEMO_TRUTH = data_path("truth", "ground_truth.tsv")
LABELS = "results/labels/labels.tsv"
OMICS_MATRIX = "results/omics/expression.h5"
WSI_COORDS = "results/wsi/coords/{slide}.h5"
WSI_QC = "results/wsi/qc/{slide}.png"
WSI_STATUS = "results/wsi/status/{slide}.json"
WSI_THUMBNAIL = "results/wsi/thumbnails/{slide}.jpg"
FEATURES = f"results/features/{ENCODER}/{{slide}}.h5"
FEATURES_STATUS = f"results/features/{ENCODER}/status/{{slide}}.json"
FEATURE_SHARD = f"results/features/{ENCODER}/shards/shard_{{shard}}.tsv"
SPLIT = "results/splits/fold_{fold}.json"
FOLD_DIR = "results/training/{model}/{task}/fold_{fold}"
FOLD_PREDICTIONS = f"{FOLD_DIR}/predictions.tsv"
FOLD_HISTORY = f"{FOLD_DIR}/history.tsv"
OOF = "results/evaluation/{model}/{task}/predictions_oof.tsv"
METRICS = "results/evaluation/{model}/{task}/metrics.tsv"
SUMMARY = "results/evaluation/summary.tsv"
COMPARISONS = "results/evaluation/comparisons.tsv"
ABLATION = "results/evaluation/ablation.tsv"
MODEL_CARDS = "results/evaluation/model_cards.json"
MODEL_FIGURE = "results/figures/{model}/{task}.png"
TRAINING_FIGURE = "results/figures/{model}/{task}_training.png"
ATTENTION_DIR = "results/figures/{model}/{task}_attention"
SUMMARY_FIGURE = "results/figures/summary.png"
COHORT_FIGURE = "results/figures/cohort.png"
FOREST_FIGURE = "results/figures/forest.png"
QC_TABLE = "results/qc/slides.tsv"
QC_MOSAIC = "results/figures/qc_slides.png"
SUMMARY_MD = "results/summary.md"
VALIDATION_DIR = "results/validation"
VALIDATION_JOB_DIR = f"{VALIDATION_DIR}/{{vprotocol}}/{{vmodel}}/{{vtask}}/{{vcohort}}/split_{{vsplit}}"


wildcard_constraints:
    slide=r"TCGA-[A-Z0-9]{2}-[A-Z0-9]{4}-[^/]+",
    fold=r"\d+",
    model="|".join(MODELS),
    task="|".join(TASKS),
    section="|".join(SECTIONS),


def validation_choices(field: str) -> str:
    """Regex alternation of one ValidationJob field over the configured jobs (a wildcard constraint of
    validation_fit); with no job configured it is empty, i.e. unconstrained, and nothing requests the rule."""
    return "|".join(sorted({str(getattr(job, field)) for job in VALIDATION_JOBS}))


# --- config snapshots, demo and GDC acquisition ---
def get_config_snapshot(wildcards) -> dict:
    """The merged, validated config restricted to one section (results/config/<section>.yaml)."""
    return section_snapshot(CFG.model_dump(mode="json"), wildcards.section)


def get_demo_root(wildcards, output) -> str:
    """Data root written by demo_generate: the folder two levels above metadata/cases.json."""
    return str(Path(output.cases).parent.parent)


def get_ground_truth(wildcards=None) -> list[str]:
    """The demo generator's ground truth (true_risk), or nothing for a real cohort."""
    return [DEMO_TRUTH] if CFG.cohort.value == "demo" else []


def get_molecular_table() -> str:
    if CFG.labels.molecular_table:
        return CFG.labels.molecular_table
    if CFG.cohort.value == "demo":
        return DEMO_MOLECULAR
    from gliofuse.labels.tables import shipped_molecular_table

    return str(shipped_molecular_table())


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
    return [RNASEQ_DIR]


def get_all_gdc_files(wildcards=None) -> list[str]:
    """Every file of the GDC manifest at its data-root path (target of gdc_download_all)."""
    return [data_path(str(r.relpath)) for r in _gdc_rows()]


# --- per-slide files ---
def get_wsi_override(wildcards) -> str:
    """This slide's row of wsi.overrides_csv as canonical JSON ("{}" when it has none)."""
    return json.dumps(WSI_OVERRIDES.get(wildcards.slide, {}), sort_keys=True)


def _per_slide(template: str) -> list[str]:
    return [template.format(slide=s) for s in get_slides()]


def get_all_slide_status(wildcards=None) -> list[str]:
    return _per_slide(WSI_STATUS)


def get_all_slide_qc(wildcards=None) -> list[str]:
    return _per_slide(WSI_QC)


def get_all_slide_thumbnails(wildcards=None) -> list[str]:
    return _per_slide(WSI_THUMBNAIL)


def get_all_slide_coords(wildcards=None) -> list[str]:
    return _per_slide(WSI_COORDS)


# --- feature shards (features_extract: one job per shard of features.shard_size slides) ---
def _feature_shards() -> list[list[str]]:
    """Slide ids of each shard: the sorted slides in chunks of features.shard_size (checkpoint-aware)."""
    from gliofuse.features.shard_table import assign_shards

    return assign_shards(get_slides(), CFG.features.shard_size)


def get_all_feature_shards(wildcards=None) -> list[str]:
    """Every shard table; consumers of features read the per-slide files through them (gliofuse.features.shard_table)."""
    return [FEATURE_SHARD.format(shard=f"{k:04d}") for k in range(len(_feature_shards()))]


def _shard_slides(wildcards) -> list[str]:
    shards = _feature_shards()
    k = int(wildcards.shard)
    if k >= len(shards):
        raise WorkflowError(f"features shard {wildcards.shard} does not exist: {describe_slides()} make {len(shards)} "
                            f"shards of features.shard_size={CFG.features.shard_size}.")
    return shards[k]


def get_shard_slide_files(wildcards) -> list[str]:
    return [SLIDE_FILE.format(slide=s) for s in _shard_slides(wildcards)]


def get_shard_coords(wildcards) -> list[str]:
    return [WSI_COORDS.format(slide=s) for s in _shard_slides(wildcards)]


def get_shard_features(wildcards) -> list[str]:
    return [FEATURES.format(slide=s) for s in _shard_slides(wildcards)]


def get_shard_feature_status(wildcards) -> list[str]:
    return [FEATURES_STATUS.format(slide=s) for s in _shard_slides(wildcards)]


# --- training folds and evaluation ---
def _per_fold(template: str, wildcards) -> list[str]:
    return [template.format(model=wildcards.model, task=wildcards.task, fold=k) for k in FOLDS]


def get_fold_dirs(wildcards) -> list[str]:
    return _per_fold(FOLD_DIR, wildcards)


def get_fold_predictions(wildcards) -> list[str]:
    return _per_fold(FOLD_PREDICTIONS, wildcards)


def get_fold_histories(wildcards) -> list[str]:
    return _per_fold(FOLD_HISTORY, wildcards)


def get_model_card_predictions(wildcards=None) -> list[str]:
    """Fold 0 predictions.tsv of each model's first job: its provenance sidecar holds the model's card."""
    first_task: dict[str, str] = {}
    for model, task in JOBS:
        first_task.setdefault(model, task)
    return [FOLD_PREDICTIONS.format(model=m, task=first_task[m], fold=0) for m in MODELS]


def get_all_oof(wildcards=None) -> list[str]:
    return [OOF.format(model=m, task=t) for m, t in JOBS]


def get_all_metrics(wildcards=None) -> list[str]:
    return [METRICS.format(model=m, task=t) for m, t in JOBS]


# --- validation on published tables ---
def get_validation_tables(wildcards) -> list[str]:
    """The published tables one validation job reads."""
    return job_table_inputs(CFG.validation, wildcards.vprotocol, wildcards.vcohort)


def get_validation_predictions(wildcards=None) -> list[str]:
    """predictions.tsv of every configured validation job (none configured: ConfigError naming the keys)."""
    return job_prediction_paths(CFG.validation, VALIDATION_DIR)


def get_validation_fit_root(wildcards, output) -> str:
    """The validation folder above a job's folder (ValidationJob.rel_dir: <protocol>/.../split_<k>)."""
    job = ValidationJob(wildcards.vprotocol, wildcards.vmodel, wildcards.vtask, int(wildcards.vsplit),
                        wildcards.vcohort)
    job_depth = len(Path(job.rel_dir).parts)
    return str(Path(output.predictions).parents[job_depth])  # parents[0] is the job's folder


def get_validation_report_root(wildcards, output) -> str:
    """The validation folder: the one that holds report.md."""
    return str(Path(output.report).parent)


# --- targets of `rule all` ---
def get_final_output(wildcards=None) -> list[str]:
    out = [SUMMARY, SUMMARY_FIGURE, COHORT_FIGURE, QC_TABLE, QC_MOSAIC]
    out += [MODEL_FIGURE.format(model=m, task=t) for m, t in JOBS]
    # report figures and tables: comparisons, forest plot, summary.md, training and attention figures
    out += [COMPARISONS, FOREST_FIGURE, SUMMARY_MD]
    out += [t.format(model=m, task=task) for m, task in JOBS for t in (TRAINING_FIGURE, ATTENTION_DIR)]
    # Features are products in their own right (reused across models and experiments): every shard table is a
    # target, so a deleted table is rebuilt even though its consumers are up to date. A deleted slide h5 is not a
    # declared output: its readers name the table to --forcerun, which re-encodes only slides without a complete h5.
    out += get_all_feature_shards()
    return out
