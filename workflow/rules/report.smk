# Figures and tables annotated for `snakemake --report`. Every figure is rebuilt from stored tables only:
# `snakemake --forcerun report_model_task report_summary ...` never retrains, and gives identical bytes.


rule report_model_task:
    # one job (one process) per model x task for its four figures; each reads only its own tables
    input:
        oof=OOF,
        history=get_fold_histories,
        predictions=get_fold_predictions,
        thumbnails=get_all_slide_thumbnails,
        coords=get_all_slide_coords,
    output:
        png=report(
            MODEL_FIGURE,
            caption="../report/model_task.rst",
            category="2. Models",
            subcategory="{model}",
            labels={"model": "{model}", "task": "{task}", "figure": "out-of-fold predictions"},
        ),
        svg="results/figures/{model}/{task}.svg",
        training=report(
            TRAINING_FIGURE,
            caption="../report/training.rst",
            category="3. Training",
            subcategory="{model}",
            labels={"model": "{model}", "task": "{task}", "figure": "training curves"},
        ),
        training_svg="results/figures/{model}/{task}_training.svg",
        gc=report(
            directory("results/figures/{model}/{task}_gc"),
            patterns=["{name}.png"],
            caption="../report/gc_dynamics.rst",
            category="3. Training",
            subcategory="{model}",
            labels={"model": "{model}", "task": "{task}", "figure": "gradient coordination"},
        ),
        heatmaps=report(
            directory(ATTENTION_DIR),
            patterns=["{patient}.png"],
            caption="../report/attention.rst",
            category="4. Attention",
            subcategory="{model}",
            labels={"model": "{model}", "task": "{task}", "patient": "{patient}"},
        ),
    params:
        fold_dirs=get_fold_dirs,
        n_patients=CFG.report.attention_patients,
        dpi=CFG.report.dpi,
    log:
        "results/logs/report_model_task/{model}/{task}.log",
    conda:
        "../../envs/stats.yaml"
    shell:
        "gliofuse report model-task --oof {input.oof} --task {wildcards.task} --fold-dirs {params.fold_dirs}"
        " --thumbnails {input.thumbnails} --coords {input.coords} --out-model {output.png}"
        " --out-training {output.training} --gc-out-dir {output.gc} --attention-out-dir {output.heatmaps}"
        " --n-patients {params.n_patients} --dpi {params.dpi} > {log} 2>&1"


rule report_summary:
    input:
        summary=SUMMARY,
    output:
        png=report(
            SUMMARY_FIGURE,
            caption="../report/summary.rst",
            category="1. Results",
            labels={"figure": "metrics overview"},
        ),
        svg="results/figures/summary.svg",
    params:
        dpi=CFG.report.dpi,
    log:
        "results/logs/report_summary/summary.log",
    conda:
        "../../envs/stats.yaml"
    shell:
        "gliofuse report summary --summary {input.summary} --out {output.png} --out-vector {output.svg}"
        " --dpi {params.dpi} > {log} 2>&1"


rule report_model_cards:
    input:
        predictions=get_model_card_predictions,
    output:
        cards=MODEL_CARDS,
    params:
        models=MODELS,
    log:
        "results/logs/report_model_cards/cards.log",
    conda:
        "../../envs/stats.yaml"
    shell:
        "gliofuse report cards --models {params.models} --predictions {input.predictions} --out {output.cards}"
        " > {log} 2>&1"


rule report_forest:
    input:
        comparisons=COMPARISONS,
        ablation=ABLATION,
    output:
        png=report(
            FOREST_FIGURE,
            caption="../report/forest.rst",
            category="1. Results",
            labels={"figure": "model comparison (forest plot)"},
        ),
        svg="results/figures/forest.svg",
    params:
        dpi=CFG.report.dpi,
    log:
        "results/logs/report_forest/forest.log",
    conda:
        "../../envs/stats.yaml"
    shell:
        "gliofuse report forest --comparisons {input.comparisons} --ablation {input.ablation} --out {output.png}"
        " --out-vector {output.svg} --dpi {params.dpi} > {log} 2>&1"


rule report_markdown:
    input:
        cfg=cfg_path("report"),
        summary=SUMMARY,
        comparisons=COMPARISONS,
        ablation=ABLATION,
        cards=MODEL_CARDS,
        external=get_external_sections,  # one section per external cohort (section external); none without
    output:
        md=report(
            SUMMARY_MD,
            caption="../report/summary_md.rst",
            category="1. Results",
            labels={"table": "summary (Markdown)"},
        ),
    log:
        "results/logs/report_markdown/summary.log",
    conda:
        "../../envs/stats.yaml"
    shell:
        "gliofuse report markdown --config {input.cfg} --summary {input.summary} --comparisons {input.comparisons}"
        " --ablation {input.ablation} --cards {input.cards} --external {input.external} --out {output.md} > {log} 2>&1"


rule report_cohort:
    input:
        labels=LABELS,
    output:
        png=report(
            COHORT_FIGURE,
            caption="../report/cohort.rst",
            category="0. Cohort",
            labels={"figure": "cohort overview"},
        ),
        svg="results/figures/cohort.svg",
    params:
        dpi=CFG.report.dpi,
    log:
        "results/logs/report_cohort/cohort.log",
    conda:
        "../../envs/stats.yaml"
    shell:
        "gliofuse report cohort --labels {input.labels} --out {output.png} --out-vector {output.svg}"
        " --dpi {params.dpi} > {log} 2>&1"


rule report_qc:
    input:
        status=get_all_slide_status,
        qc=get_all_slide_qc,
        # features_* columns; ancient: re-extracting one slide does not redo the table (--forcerun report_qc does)
        feature_shards=ancient(get_all_feature_shards),
    output:
        table=report(
            QC_TABLE,
            caption="../report/qc_table.rst",
            category="0. Cohort",
            labels={"table": "slide QC"},
        ),
        png=report(
            QC_MOSAIC,
            caption="../report/qc_mosaic.rst",
            category="0. Cohort",
            labels={"figure": "slide QC mosaic"},
        ),
    log:
        "results/logs/report_qc/qc.log",
    conda:
        "../../envs/stats.yaml"
    shell:
        "gliofuse report qc --status {input.status} --qc {input.qc} --feature-shards {input.feature_shards}"
        " --out-table {output.table} --out-png {output.png} > {log} 2>&1"
