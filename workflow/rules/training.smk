# Cohort, patient-level splits and the training jobs: training.folds_per_job picks one rule of two with the same
# outputs (results/training/<model>/<task>/fold_<k>/). `one`: train_fold, one job per model x task x fold (SLURM
# job arrays, a GPU per fold). `all`: train_folds, one job per model x task training its folds one after another
# in one process (the local demo: one Python/torch start-up instead of one per fold). Same results either way.


rule data_splits:
    input:
        cfg=cfg_path("data"),
        labels=LABELS,
        omics=OMICS_MATRIX,
        slides=SLIDE_SHEET,
        status=get_all_slide_status,
        # a slide whose extraction failed is left out; ancient: re-extracting a slide does not redo the folds
        feature_shards=ancient(get_all_feature_shards),
    output:
        cohort="results/splits/cohort.tsv",
        folds=expand(SPLIT, fold=FOLDS),
    log:
        "results/logs/data_splits/splits.log",
    conda:
        "../../envs/data.yaml"
    shell:
        "gliofuse data splits --config {input.cfg} --labels {input.labels} --omics {input.omics}"
        " --slides {input.slides} --slide-status {input.status} --feature-shards {input.feature_shards}"
        " --out-cohort {output.cohort} --out-folds {output.folds} > {log} 2>&1"


if CFG.training.folds_per_job == "all" and not workflow.local_exec:
    from snakemake.logging import logger

    logger.warning("training.folds_per_job: all on a cluster executor trains each model x task's folds one after "
                   "another in one job (no job arrays, one GPU); set training.folds_per_job: one to train the folds "
                   "in parallel.")

if CFG.training.folds_per_job == "one":

    rule train_fold:
        input:
            cfg=cfg_path("training"),
            split=SPLIT,
            labels=LABELS,
            omics=OMICS_MATRIX,
            feature_shards=get_all_feature_shards,
            slides=SLIDE_SHEET,  # the patient of each feature file (any slide ids, not only TCGA barcodes)
        output:
            predictions=FOLD_PREDICTIONS,
            checkpoint=f"{FOLD_DIR}/checkpoint.pt",
            history=FOLD_HISTORY,
            gc_dynamics=f"{FOLD_DIR}/gc_dynamics.tsv",
        params:
            out_dir=FOLD_DIR,
        log:
            "results/logs/train_fold/{model}/{task}/fold_{fold}.log",
        benchmark:
            "results/benchmarks/train_fold/{model}/{task}/fold_{fold}.tsv"
        threads: 1
        resources:
            mem_mb=4000,
            gpu=GPU_TRAINING,
        conda:
            "../../envs/torch.yaml"
        shell:
            "gliofuse train fold --config {input.cfg} --model {wildcards.model} --task {wildcards.task}"
            " --split {input.split} --labels {input.labels} --omics {input.omics}"
            " --feature-shards {input.feature_shards} --slides {input.slides} --threads {threads} --out-dir {params.out_dir}"
            " > {log} 2>&1"

else:

    rule train_folds:
        input:
            cfg=cfg_path("training"),
            splits=expand(SPLIT, fold=FOLDS),
            labels=LABELS,
            omics=OMICS_MATRIX,
            feature_shards=get_all_feature_shards,
            slides=SLIDE_SHEET,  # the patient of each feature file (any slide ids, not only TCGA barcodes)
        output:
            # every fold's files: Snakemake deletes a job's declared outputs before it runs
            predictions=expand(FOLD_PREDICTIONS, fold=FOLDS, allow_missing=True),
            checkpoints=expand(f"{FOLD_DIR}/checkpoint.pt", fold=FOLDS, allow_missing=True),
            histories=expand(FOLD_HISTORY, fold=FOLDS, allow_missing=True),
            gc_dynamics=expand(f"{FOLD_DIR}/gc_dynamics.tsv", fold=FOLDS, allow_missing=True),
        params:
            out_dirs=get_fold_dirs,
        log:
            "results/logs/train_folds/{model}/{task}.log",
        benchmark:
            "results/benchmarks/train_folds/{model}/{task}.tsv"
        threads: 1
        resources:
            mem_mb=4000,
            gpu=GPU_TRAINING,
        conda:
            "../../envs/torch.yaml"
        shell:
            "gliofuse train folds --config {input.cfg} --model {wildcards.model} --task {wildcards.task}"
            " --splits {input.splits} --labels {input.labels} --omics {input.omics}"
            " --feature-shards {input.feature_shards} --slides {input.slides} --threads {threads} --out-dirs {params.out_dirs}"
            " > {log} 2>&1"
