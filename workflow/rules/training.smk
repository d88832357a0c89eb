# Cohort, patient-level splits and one training job per model x task x fold.


rule data_splits:
    input:
        cfg=cfg_path("data"),
        labels=LABELS,
        omics=OMICS_MATRIX,
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
        " --slide-status {input.status} --feature-shards {input.feature_shards}"
        " --out-cohort {output.cohort} --out-folds {output.folds} > {log} 2>&1"


rule train_fold:
    input:
        cfg=cfg_path("training"),
        split=SPLIT,
        labels=LABELS,
        omics=OMICS_MATRIX,
        feature_shards=get_all_feature_shards,
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
        " --feature-shards {input.feature_shards} --threads {threads} --out-dir {params.out_dir} > {log} 2>&1"
