# Metrics from prediction files only (no model code).


rule evaluate_model:
    input:
        cfg=cfg_path("evaluation"),
        predictions=get_fold_predictions,
    output:
        oof="results/evaluation/{model}/{task}/predictions_oof.tsv",
        metrics="results/evaluation/{model}/{task}/metrics.tsv",
    log:
        "results/logs/evaluate_model/{model}/{task}.log",
    benchmark:
        "results/benchmarks/evaluate_model/{model}/{task}.tsv"
    conda:
        "../../envs/stats.yaml"
    shell:
        "gliofuse evaluate model --config {input.cfg} --model {wildcards.model} --task {wildcards.task}"
        " --predictions {input.predictions} --out-predictions {output.oof}"
        " --out-metrics {output.metrics} > {log} 2>&1"


rule evaluate_summary:
    input:
        metrics=get_all_metrics,
    output:
        summary=report(
            "results/evaluation/summary.tsv",
            caption="../report/summary_table.rst",
            category="1. Results",
            labels={"table": "summary"},
        ),
    log:
        "results/logs/evaluate_summary/summary.log",
    conda:
        "../../envs/stats.yaml"
    shell:
        "gliofuse evaluate summary --metrics {input.metrics} --out {output.summary} > {log} 2>&1"
