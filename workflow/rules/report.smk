# Figures and tables annotated for `snakemake --report`. Every figure is rebuilt from stored tables only:
# `snakemake --forcerun report_model report_training ...` never retrains, and gives identical bytes.


# Report figures and tables beyond the core outputs; targets of `rule all` (get_final_output in common.smk).
REPORT_OUTPUTS = ["results/evaluation/comparisons.tsv", "results/figures/forest.png", "results/summary.md"]
REPORT_OUTPUTS += [
    f"results/figures/{m}/{t}_{kind}" for m, t in JOBS for kind in ("training.png", "attention")
]


rule report_model:
    input:
        oof="results/evaluation/{model}/{task}/predictions_oof.tsv",
    output:
        png=report(
            "results/figures/{model}/{task}.png",
            caption="../report/model_task.rst",
            category="2. Models",
            subcategory="{model}",
            labels={"model": "{model}", "task": "{task}", "figure": "out-of-fold predictions"},
        ),
        svg="results/figures/{model}/{task}.svg",
    params:
        dpi=CFG.report.dpi,
    log:
        "results/logs/report_model/{model}/{task}.log",
    conda:
        "../../envs/stats.yaml"
    shell:
        "gliofuse report model --oof {input.oof} --task {wildcards.task} --out {output.png}"
        " --out-vector {output.svg} --dpi {params.dpi} > {log} 2>&1"


rule report_training:
    input:
        history=lambda wc: [f"results/training/{wc.model}/{wc.task}/fold_{k}/history.tsv" for k in FOLDS],
    output:
        png=report(
            "results/figures/{model}/{task}_training.png",
            caption="../report/training.rst",
            category="3. Training",
            subcategory="{model}",
            labels={"model": "{model}", "task": "{task}", "figure": "training curves"},
        ),
        svg="results/figures/{model}/{task}_training.svg",
        gc=report(
            directory("results/figures/{model}/{task}_gc"),
            patterns=["{name}.png"],
            caption="../report/gc_dynamics.rst",
            category="3. Training",
            subcategory="{model}",
            labels={"model": "{model}", "task": "{task}", "figure": "gradient coordination"},
        ),
    params:
        dpi=CFG.report.dpi,
    log:
        "results/logs/report_training/{model}/{task}.log",
    conda:
        "../../envs/stats.yaml"
    shell:
        "gliofuse report training --history {input.history} --out {output.png} --out-vector {output.svg}"
        " --gc-out-dir {output.gc} --dpi {params.dpi} > {log} 2>&1"


rule report_attention:
    input:
        oof="results/evaluation/{model}/{task}/predictions_oof.tsv",
        predictions=get_fold_predictions,
        thumbnails=lambda wc: [f"results/wsi/thumbnails/{s}.jpg" for s in get_slides()],
        coords=lambda wc: [f"results/wsi/coords/{s}.h5" for s in get_slides()],
    output:
        heatmaps=report(
            directory("results/figures/{model}/{task}_attention"),
            patterns=["{patient}.png"],
            caption="../report/attention.rst",
            category="4. Attention",
            subcategory="{model}",
            labels={"model": "{model}", "task": "{task}", "patient": "{patient}"},
        ),
    params:
        fold_dirs=lambda wc: [f"results/training/{wc.model}/{wc.task}/fold_{k}" for k in FOLDS],
        n_patients=CFG.report.attention_patients,
        dpi=CFG.report.dpi,
    log:
        "results/logs/report_attention/{model}/{task}.log",
    conda:
        "../../envs/stats.yaml"
    shell:
        "gliofuse report attention --oof {input.oof} --fold-dirs {params.fold_dirs} --thumbnails {input.thumbnails}"
        " --coords {input.coords} --out-dir {output.heatmaps} --n-patients {params.n_patients}"
        " --dpi {params.dpi} > {log} 2>&1"


rule report_summary:
    input:
        summary="results/evaluation/summary.tsv",
    output:
        png=report(
            "results/figures/summary.png",
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
        predictions=[f"results/training/{m}/{CFG.training.for_model(m).tasks[0].value}/fold_0/predictions.tsv" for m in MODELS],
    output:
        cards="results/evaluation/model_cards.json",
    params:
        models=MODELS,
    log:
        "results/logs/report_model_cards/cards.log",
    conda:
        "../../envs/torch.yaml"
    shell:
        "gliofuse report cards --models {params.models} --predictions {input.predictions} --out {output.cards}"
        " > {log} 2>&1"


rule report_forest:
    input:
        comparisons="results/evaluation/comparisons.tsv",
        ablation="results/evaluation/ablation.tsv",
    output:
        png=report(
            "results/figures/forest.png",
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
        summary="results/evaluation/summary.tsv",
        comparisons="results/evaluation/comparisons.tsv",
        ablation="results/evaluation/ablation.tsv",
        cards="results/evaluation/model_cards.json",
    output:
        md=report(
            "results/summary.md",
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
        " --ablation {input.ablation} --cards {input.cards} --out {output.md} > {log} 2>&1"


rule report_cohort:
    input:
        labels="results/labels/labels.tsv",
    output:
        png=report(
            "results/figures/cohort.png",
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
        feature_status=ancient(lambda wc: [f"results/features/{ENCODER}/status/{s}.json" for s in get_slides()]),
    output:
        table=report(
            "results/qc/slides.tsv",
            caption="../report/qc_table.rst",
            category="0. Cohort",
            labels={"table": "slide QC"},
        ),
        png=report(
            "results/figures/qc_slides.png",
            caption="../report/qc_mosaic.rst",
            category="0. Cohort",
            labels={"figure": "slide QC mosaic"},
        ),
    log:
        "results/logs/report_qc/qc.log",
    conda:
        "../../envs/stats.yaml"
    shell:
        "gliofuse report qc --status {input.status} --qc {input.qc} --feature-status {input.feature_status}"
        " --out-table {output.table} --out-png {output.png} > {log} 2>&1"
