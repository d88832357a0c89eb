# Validation of the omics models on published TCGA-GBMLGG tables (docs/validation.md). Not part of `all`:
#   snakemake validation_all --cores 2 --configfile config/real_gbmlgg_omics.yaml
# The jobs (VALIDATION_JOBS, common.smk) and their inputs come from the package's job list.


rule validation_fit:
    input:
        cfg=cfg_path("validation"),
        tables=get_validation_tables,
    output:
        predictions=f"{VALIDATION_JOB_DIR}/predictions.tsv",
        history=f"{VALIDATION_JOB_DIR}/history.tsv",
        checkpoint=f"{VALIDATION_JOB_DIR}/checkpoint.pt",
    wildcard_constraints:
        vprotocol=validation_choices("protocol"),
        vtask=validation_choices("task"),
        vcohort=validation_choices("cohort"),
        vsplit=r"\d+",
    params:
        out_dir=get_validation_fit_root,
    log:
        f"results/logs/validation_fit/{{vprotocol}}/{{vmodel}}/{{vtask}}/{{vcohort}}/split_{{vsplit}}.log",
    benchmark:
        f"results/benchmarks/validation_fit/{{vprotocol}}/{{vmodel}}/{{vtask}}/{{vcohort}}/split_{{vsplit}}.tsv"
    threads: 1
    resources:
        mem_mb=2000,
    conda:
        "../../envs/torch.yaml"
    shell:
        "gliofuse validate fit --config {input.cfg} --protocol {wildcards.vprotocol} --model {wildcards.vmodel}"
        " --task {wildcards.vtask} --cohort {wildcards.vcohort} --split {wildcards.vsplit}"
        " --out-dir {params.out_dir} --threads {threads} > {log} 2>&1"


rule validation_report:
    input:
        cfg=cfg_path("validation"),
        predictions=get_validation_predictions,
    output:
        report=f"{VALIDATION_DIR}/report.md",
        summary=f"{VALIDATION_DIR}/summary.tsv",
        metrics=f"{VALIDATION_DIR}/metrics.tsv",
        figure=f"{VALIDATION_DIR}/validation.png",
    params:
        out_dir=get_validation_report_root,
    log:
        "results/logs/validation_report/report.log",
    conda:
        "../../envs/torch.yaml"
    shell:
        "gliofuse validate report --config {input.cfg} --out-dir {params.out_dir} > {log} 2>&1"


rule validation_all:
    input:
        rules.validation_report.output,
