# Configuration, sample and job lists, shared path templates, wildcard constraints and the input/params
# functions of every rule file. Rule files read only what is defined here (and their own rules).
import json
import re
from pathlib import Path

from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

from gliofuse.cohorts.sheet import SAFE_ID_PATTERN, read_slide_sheet_, tcga_slide_sheet
from gliofuse.config import SECTIONS, parse_config, resolve_reference_model, section_snapshot
from gliofuse.demo.site_plan import GROUND_TRUTH_TSV, SITE_FILES, SLIDES_CSV, plan_external_site, with_demo_site
from gliofuse.errors import ConfigError, InputDataError
from gliofuse.labels.clinical_sheet import read_clinical_table_
from gliofuse.reproduce.jobs import ValidationJob, job_prediction_paths, job_table_inputs, validation_jobs
from gliofuse.wsi.overrides import check_override_slides, read_overrides

validate(config, schema="../schemas/config.schema.yaml")
# cohort: demo + demo.external.enabled: the demo's external site (rule demo_external writes it under
# DEMO_SITE_DIR) becomes the external cohort demo.external.name, its paths and columns from the generator.
DEMO_SITE_DIR = "results/demo_external"
try:
    CFG = with_demo_site(parse_config(config, source="config.yaml (merged with --config/--configfile)"),
                         DEMO_SITE_DIR)
except ConfigError as exc:
    raise WorkflowError(str(exc)) from None
DEMO_SITE = CFG.demo.external.name if CFG.cohort.value == "demo" and CFG.demo.external.enabled else None

DATA_ROOT = str(CFG.resolved_data_root())
ENCODER = re.sub(r"[^A-Za-z0-9_.-]+", "-", CFG.features.encoder)
MODELS = list(CFG.training.models)
TASKS = [t.value for t in CFG.training.tasks]
JOBS = CFG.training.jobs()  # (model, task) pairs: each model's tasks (training.model_training.<m>.tasks or tasks)
FOLDS = list(range(CFG.data.n_fold_ids))  # global fold ids: repeat j holds j*n_folds .. (j+1)*n_folds-1
GPU_FEATURES = 1 if CFG.features.device.startswith("cuda") else 0
GPU_TRAINING = 1 if CFG.training.device.startswith("cuda") else 0


# cohort: tcga + gdc.download: true -> query + download (workflow/rules/gdc.smk); the slide list comes from
# the gdc_query checkpoint's manifest. cohort: sheet -> your slide sheet and clinical table (section sheet),
# both checked here, before any job runs. Otherwise the slides are the demo plan's or those already on disk.
if CFG.gdc.download and CFG.cohort.value != "tcga":
    raise WorkflowError("gdc.download: true needs cohort: tcga (the demo cohort is generated, not downloaded).")
GDC_DOWNLOAD = CFG.cohort.value == "tcga" and CFG.gdc.download
SHEET_COHORT = CFG.cohort.value == "sheet"
if SHEET_COHORT:
    try:
        SHEET_SLIDES, SHEET_CLINICAL = CFG.sheet_files()
        USER_SHEET = read_slide_sheet_(SHEET_SLIDES)
        read_clinical_table_(SHEET_CLINICAL, sheet=CFG.sheet, strict=CFG.labels.who2021_strict)
    except (ConfigError, InputDataError) as exc:
        raise WorkflowError(str(exc)) from None
    validate(USER_SHEET, schema="../schemas/slides.schema.yaml")
# cohort: sheet with sheet.expression: the omics rule imports that matrix instead of reading STAR files
SHEET_EXPRESSION = SHEET_COHORT and CFG.sheet.expression is not None


CONFIG_SNAPSHOT = "results/config/{section}.yaml"


def cfg_path(section: str) -> str:
    return CONFIG_SNAPSHOT.format(section=section)


def data_path(*parts: str) -> str:
    return str(Path(DATA_ROOT, *parts))


def _list_slides() -> list[str]:
    if SHEET_COHORT:
        return list(USER_SHEET["slide_id"])
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
            "GDC, or set data_root to the folder that holds slides/, rnaseq/ and metadata/, or list your slides "
            "in a slide sheet (cohort: sheet)."
        )
    try:
        tcga_slide_sheet(sorted(slide_dir.glob("*.svs")))  # TCGA names give the patients of results/cohort/slides.tsv
    except InputDataError as exc:
        raise WorkflowError(f"cohort 'tcga', {slide_dir}: {exc}") from None
    return found


SLIDES = _list_slides()
SHEET_SLIDE_PATHS = dict(zip(USER_SHEET["slide_id"], USER_SHEET["slide_path"])) if SHEET_COHORT else {}


DEMO_SITE_SLIDE_PATHS = ({p.slide_id: str(Path(DEMO_SITE_DIR, p.slide_relpath)) for p in
                          plan_external_site(seed=CFG.seed, cfg=CFG.demo).patients} if DEMO_SITE else {})
DEMO_SITE_SHEET = str(Path(DEMO_SITE_DIR, SLIDES_CSV))
DEMO_SITE_TABLES = [str(Path(DEMO_SITE_DIR, f)) for f in SITE_FILES if f != SLIDES_CSV]  # clinical, TPM, yaml, truth
DEMO_SITE_TRUTH = str(Path(DEMO_SITE_DIR, GROUND_TRUTH_TSV))


def _check_external_cohorts() -> dict[str, dict[str, str]]:
    """External cohorts (section external): each slide sheet and clinical table checked now; returns
    ``{cohort: {slide_id: slide_path}}``. Their outputs are namespaced (results/external/<cohort>/), but slide ids
    must differ from the development cohort's (wsi.overrides_csv rows are matched by slide id)."""
    from gliofuse.models.registry import get_model_card

    reads_rna = sorted(m for m in MODELS if "omics" in get_model_card(m).modalities)
    out = {}
    for name, ext in CFG.external.items():
        if name == DEMO_SITE:  # generated by demo_external: its slides are planned, not yet on disk
            out[name] = dict(DEMO_SITE_SLIDE_PATHS)
            continue
        try:
            sheet = read_slide_sheet_(ext.slides)
            read_clinical_table_(ext.clinical, sheet=ext, strict=CFG.labels.who2021_strict, key=f"external.{name}")
        except (ConfigError, InputDataError) as exc:
            raise WorkflowError(f"external cohort {name!r}: {exc}") from None
        validate(sheet, schema="../schemas/slides.schema.yaml")
        clash = sorted(set(sheet["slide_id"]) & set(SLIDES))
        if clash:
            raise WorkflowError(f"external cohort {name!r}, {ext.slides}: slide id(s) {clash[:5]} are also slides of "
                                "the development cohort. Rename them in the external sheet (e.g. prefix the site).")
        if reads_rna and ext.expression is None:
            raise WorkflowError(f"external cohort {name!r}: models {reads_rna} read RNA; set external.{name}."
                                "expression (path, unit, gene_id) or train only slide models.")
        out[name] = dict(zip(sheet["slide_id"], sheet["slide_path"]))
    return out


EXTERNAL_SLIDE_PATHS = _check_external_cohorts()
EXTERNAL = list(EXTERNAL_SLIDE_PATHS)

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
TCGA_SLIDE_FILE = data_path("slides", "{slide}.svs")  # GDC layout: written by demo_generate / gdc_download_slide
SLIDE_SHEET = "results/cohort/slides.tsv"  # every route's slide sheet (patient_id, slide_id, slide_path)
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
MODELS_DIR = "results/models"
BUNDLE_JSON = f"{MODELS_DIR}/{{model}}/{{task}}/bundle/bundle.json"
BUNDLES = [BUNDLE_JSON.format(model=m, task=t) for m, t in JOBS]
PREDICT_DIR = "results/predict/{model}/{task}"
EXTERNAL_DIR = "results/external/{ext}"  # every output of one external cohort (docs/data-contracts.md §12)
EXT_LABELS = f"{EXTERNAL_DIR}/labels.tsv"
EXT_OMICS = f"{EXTERNAL_DIR}/omics/expression.h5"
EXT_WSI_DIR = f"{EXTERNAL_DIR}/wsi"
EXT_FEATURES = f"{EXTERNAL_DIR}/features/{ENCODER}/{{slide}}.h5"
EXT_FEATURES_STATUS = f"{EXTERNAL_DIR}/features/{ENCODER}/status/{{slide}}.json"
EXT_FEATURE_SHARD = f"{EXTERNAL_DIR}/features/{ENCODER}/shards/shard_{{shard}}.tsv"
EXT_PREDICT_DIR = f"{EXTERNAL_DIR}/predict"
EXT_PREDICTIONS = [f"{EXT_PREDICT_DIR}/{m}/{t}/predictions.tsv" for m, t in JOBS]  # {ext} left as a wildcard
EXT_EVALUATION = f"{EXTERNAL_DIR}/evaluation"
EXT_KM_FIGURE = f"{EXTERNAL_DIR}/figures/km.png"
EXT_CALIBRATION_FIGURE = f"{EXTERNAL_DIR}/figures/calibration.png"
EXT_SUMMARY_MD = f"{EXTERNAL_DIR}/summary.md"
VALIDATION_DIR = "results/validation"
VALIDATION_JOB_DIR = f"{VALIDATION_DIR}/{{vprotocol}}/{{vmodel}}/{{vtask}}/{{vcohort}}/split_{{vsplit}}"


wildcard_constraints:
    slide=SAFE_ID_PATTERN,
    fold=r"\d+",
    model="|".join(MODELS),
    task="|".join(TASKS),
    section="|".join(SECTIONS),
    ext="|".join(EXTERNAL),


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


def get_demo_site_dir(wildcards, output) -> str:
    """Site folder written by demo_external: the folder of its slide sheet (slides.csv)."""
    return str(Path(output.sheet).parent)


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


def _slide_file(slide: str) -> str:
    """The file of one slide: its slide-sheet row (cohort: sheet, any format) or GDC layout slides/<slide>.svs."""
    if SHEET_COHORT:
        return SHEET_SLIDE_PATHS[slide]
    return TCGA_SLIDE_FILE.format(slide=slide)


def SLIDE_FILE(wildcards) -> str:
    """Input function: the file of slide {slide} (see _slide_file)."""
    return _slide_file(wildcards.slide)


def get_all_slide_files(wildcards=None) -> list[str]:
    """Every slide file of the run (checkpoint-aware in GDC download mode)."""
    return [_slide_file(s) for s in get_slides()]


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


def _pick_shard(shards: list[list[str]], shard: str, what: str) -> list[str]:
    """Slide ids of features shard ``shard`` of ``shards``; WorkflowError naming ``what`` when it does not exist."""
    k = int(shard)
    if k >= len(shards):
        raise WorkflowError(f"features shard {shard} does not exist: {what} make {len(shards)} shards of "
                            f"features.shard_size={CFG.features.shard_size}.")
    return shards[k]


def _shard_slides(wildcards) -> list[str]:
    return _pick_shard(_feature_shards(), wildcards.shard, describe_slides())


def get_shard_slide_files(wildcards) -> list[str]:
    return [_slide_file(s) for s in _shard_slides(wildcards)]


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


# --- model bundles and predictions for new patients ---
def get_all_fold_checkpoints(wildcards=None) -> list[str]:
    return [f"{FOLD_DIR}/checkpoint.pt".format(model=m, task=t, fold=k) for m, t in JOBS for k in FOLDS]


def get_all_fold_predictions(wildcards=None) -> list[str]:
    return [FOLD_PREDICTIONS.format(model=m, task=t, fold=k) for m, t in JOBS for k in FOLDS]


def get_models_root(wildcards, output) -> str:
    """The folder above <model>/<task>/bundle/bundle.json (MODELS_DIR)."""
    return str(Path(output.bundles[0]).parents[3])


def get_bundle_dir(wildcards, input) -> str:
    return str(Path(input.bundle).parent)


def get_output_dir(wildcards, output) -> str:
    return str(Path(output[0]).parent)


def get_predict_features(wildcards=None) -> list[str]:
    """The new cohort's feature files (predict.features_dir/*.h5); none when unset."""
    folder = CFG.predict.features_dir
    return sorted(str(p) for p in Path(folder).glob("*.h5")) if folder else []


def get_predict_omics(wildcards=None) -> list[str]:
    return [CFG.predict.omics] if CFG.predict.omics else []


def get_predict_slides(wildcards=None) -> list[str]:
    """The new cohort's slide sheet (predict.slides): the patient of each feature file; none when unset."""
    return [CFG.predict.slides] if CFG.predict.slides else []


def get_predict_wsi_flag(wildcards=None) -> str:
    """``--wsi-dir <predict.wsi_dir>`` (attention heatmaps), or nothing when unset."""
    return f"--wsi-dir {CFG.predict.wsi_dir}" if CFG.predict.wsi_dir else ""


def get_predict_outputs(wildcards=None) -> list[str]:
    """predictions.tsv of every model x task whose inputs predict.features_dir / predict.omics provide."""
    from gliofuse.models.registry import get_model_card

    given = {"wsi": bool(CFG.predict.features_dir), "omics": bool(CFG.predict.omics)}
    out = [f"{PREDICT_DIR}/predictions.tsv".format(model=m, task=t) for m, t in JOBS
           if all(given[x] for x in get_model_card(m).modalities)]
    if not out:
        raise WorkflowError("the `predict` target has nothing to run: set predict.features_dir (slide feature "
                            "files of the new cohort) and/or predict.omics (its expression matrix) in the config.")
    return out


# --- external validation cohorts (section external) ---
def get_external_slide_file(wildcards) -> str:
    return EXTERNAL_SLIDE_PATHS[wildcards.ext][wildcards.slide]


def get_external_sheet(wildcards) -> str:
    return CFG.external[wildcards.ext].slides


def get_external_clinical(wildcards) -> str:
    return CFG.external[wildcards.ext].clinical


def _external_shards(ext: str) -> list[list[str]]:
    """Slide ids of each features shard of an external cohort (as the development cohort's)."""
    from gliofuse.features.shard_table import assign_shards

    return assign_shards(list(EXTERNAL_SLIDE_PATHS[ext]), CFG.features.shard_size)


def get_external_feature_shards(wildcards) -> list[str]:
    return [EXT_FEATURE_SHARD.format(ext=wildcards.ext, shard=f"{k:04d}")
            for k in range(len(_external_shards(wildcards.ext)))]


def _external_shard_slides(wildcards) -> list[str]:
    return _pick_shard(_external_shards(wildcards.ext), wildcards.shard, f"the slides of external cohort {wildcards.ext}")


def get_external_shard_slide_files(wildcards) -> list[str]:
    return [EXTERNAL_SLIDE_PATHS[wildcards.ext][s] for s in _external_shard_slides(wildcards)]


def get_external_shard_coords(wildcards) -> list[str]:
    return [f"{EXT_WSI_DIR}/coords/{s}.h5".format(ext=wildcards.ext) for s in _external_shard_slides(wildcards)]


def get_external_shard_features(wildcards) -> list[str]:
    return [EXT_FEATURES.format(ext=wildcards.ext, slide=s) for s in _external_shard_slides(wildcards)]


def get_external_shard_feature_status(wildcards) -> list[str]:
    return [EXT_FEATURES_STATUS.format(ext=wildcards.ext, slide=s) for s in _external_shard_slides(wildcards)]


def get_external_matrix(wildcards) -> str:
    return CFG.external[wildcards.ext].expression.path


def get_external_import_flags(wildcards) -> str:
    return CFG.external[wildcards.ext].expression.import_flags()


def get_external_omics(wildcards) -> list[str]:
    """The cohort's expression imported onto the development genes, or nothing (no model reads RNA)."""
    return [EXT_OMICS.format(ext=wildcards.ext)] if CFG.external[wildcards.ext].expression else []


def get_bundle_dirs(wildcards=None) -> list[str]:
    return [str(Path(b).parent) for b in BUNDLES]


def get_external_truth(wildcards) -> list[str]:
    """The demo site's ground truth (true_risk) for the demo's external cohort, or nothing for a real one."""
    return [DEMO_SITE_TRUTH] if wildcards.ext == DEMO_SITE else []


def get_external_predict_root(wildcards) -> str:
    """results/external/<cohort>/predict: bundle outputs go to <root>/<model>/<task>/."""
    return EXT_PREDICT_DIR.format(ext=wildcards.ext)


def get_input_dir(wildcards, input) -> str:
    return str(Path(input[0]).parent)


def get_survival_fold_predictions(wildcards=None) -> list[str]:
    """Development fold predictions of the survival jobs: the risk cut-offs of the external KM groups."""
    from gliofuse.tasks import task_kind

    return [FOLD_PREDICTIONS.format(model=m, task=t, fold=k) for m, t in JOBS if task_kind(t) == "survival"
            for k in FOLDS]


def get_external_sections(wildcards=None) -> list[str]:
    """Each external cohort's Markdown section, appended to results/summary.md."""
    return [EXT_SUMMARY_MD.format(ext=e) for e in EXTERNAL]


def get_all_external_outputs(wildcards=None) -> list[str]:
    return [t.format(ext=e) for e in EXTERNAL for t in (EXT_SUMMARY_MD, EXT_KM_FIGURE, EXT_CALIBRATION_FIGURE)]


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
    out += BUNDLES  # the trained models, ready for `gliofuse predict` (one export job for all of them)
    out += get_all_external_outputs()  # external validation: metrics, KM and calibration per external cohort
    return out
