# Validation of the omics models on published TCGA-GBMLGG tables (docs/validation.md). Not part of `all`:
#   snakemake validation_all --cores 2 --configfile config/real_gbmlgg_omics.yaml
from gliofuse.reproduce.jobs import job_prediction_paths, job_table_inputs, validation_jobs

try:
    validation_jobs(CFG.validation)  # fail at parse time on a bad validation section
except ConfigError as exc:
    raise WorkflowError(str(exc)) from None
VALIDATION_DIR = "results/validation"


rule validation_fit:
    input:
        cfg=cfg_path("validation"),
        tables=lambda w: job_table_inputs(CFG.validation, w.vprotocol, w.vcohort),
    output:
        predictions=f"{VALIDATION_DIR}/{{vprotocol}}/{{vmodel}}/{{vtask}}/{{vcohort}}/split_{{vsplit}}/predictions.tsv",
        history=f"{VALIDATION_DIR}/{{vprotocol}}/{{vmodel}}/{{vtask}}/{{vcohort}}/split_{{vsplit}}/history.tsv",
        checkpoint=f"{VALIDATION_DIR}/{{vprotocol}}/{{vmodel}}/{{vtask}}/{{vcohort}}/split_{{vsplit}}/checkpoint.pt",
    wildcard_constraints:
        vprotocol="pf|mcat",
        vtask="survival|grade",
        vcohort="all|rnaseq",
        vsplit=r"\d+",
    params:
        out_dir=lambda w, output: str(Path(output.predictions).parents[5]),  # results/validation
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
        predictions=lambda w: job_prediction_paths(CFG.validation, VALIDATION_DIR),
    output:
        report=f"{VALIDATION_DIR}/report.md",
        summary=f"{VALIDATION_DIR}/summary.tsv",
        metrics=f"{VALIDATION_DIR}/metrics.tsv",
        figure=f"{VALIDATION_DIR}/validation.png",
    params:
        out_dir=lambda w, output: str(Path(output.report).parent),
    log:
        "results/logs/validation_report/report.log",
    conda:
        "../../envs/torch.yaml"
    shell:
        "gliofuse validate report --config {input.cfg} --out-dir {params.out_dir} > {log} 2>&1"


rule validation_all:
    input:
        rules.validation_report.output,
