# Figures and tables annotated for `snakemake --report`.


rule report_model:
    input:
        oof="results/evaluation/{model}/{task}/predictions_oof.tsv",
    output:
        png=report(
            "results/figures/{model}/{task}.png",
            caption="../report/model_task.rst",
            category="2. Models",
            subcategory="{model}",
            labels={"model": "{model}", "task": "{task}"},
        ),
    log:
        "results/logs/report_model/{model}/{task}.log",
    conda:
        "../../envs/stats.yaml"
    shell:
        "gliofuse report model --oof {input.oof} --task {wildcards.task} --out {output.png} > {log} 2>&1"


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
    log:
        "results/logs/report_summary/summary.log",
    conda:
        "../../envs/stats.yaml"
    shell:
        "gliofuse report summary --summary {input.summary} --out {output.png} > {log} 2>&1"


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
    log:
        "results/logs/report_cohort/cohort.log",
    conda:
        "../../envs/stats.yaml"
    shell:
        "gliofuse report cohort --labels {input.labels} --out {output.png} > {log} 2>&1"


rule report_qc:
    input:
        status=get_all_slide_status,
        qc=get_all_slide_qc,
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
        "gliofuse report qc --status {input.status} --qc {input.qc} --out-table {output.table}"
        " --out-png {output.png} > {log} 2>&1"
