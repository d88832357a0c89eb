# Cohort, patient-level splits and one training job per model x task x fold.


rule data_splits:
    input:
        cfg=cfg_path("data"),
        labels=LABELS,
        omics=OMICS_MATRIX,
        slides=SLIDE_SHEET,
        status=get_all_slide_status,
        # a slide whose extraction failed is left out; ancient: re-extracting a slide does not redo the folds
        feature_status=ancient(get_all_feature_status),
    output:
        cohort="results/splits/cohort.tsv",
        folds=expand(SPLIT, fold=FOLDS),
    log:
        "results/logs/data_splits/splits.log",
    conda:
        "../../envs/data.yaml"
    shell:
        "gliofuse data splits --config {input.cfg} --labels {input.labels} --omics {input.omics}"
        " --slides {input.slides} --slide-status {input.status} --feature-status {input.feature_status}"
        " --out-cohort {output.cohort} --out-folds {output.folds} > {log} 2>&1"


rule train_fold:
    input:
        cfg=cfg_path("training"),
        split=SPLIT,
        labels=LABELS,
        omics=OMICS_MATRIX,
        features=get_all_features,
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
        " --features {input.features} --slides {input.slides} --threads {threads} --out-dir {params.out_dir}"
        " > {log} 2>&1"
