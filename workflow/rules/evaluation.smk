# Metrics and model comparisons from prediction files only (no model code, no torch).
from gliofuse.config import resolve_reference_model

try:
    REFERENCE_MODEL = resolve_reference_model(CFG.evaluation, MODELS)
except ConfigError as exc:
    raise WorkflowError(str(exc)) from None

ALL_OOF = [f"results/evaluation/{m}/{t}/predictions_oof.tsv" for m, t in JOBS]


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
            labels={"table": "all metrics"},
        ),
    log:
        "results/logs/evaluate_summary/summary.log",
    conda:
        "../../envs/stats.yaml"
    shell:
        "gliofuse evaluate summary --metrics {input.metrics} --out {output.summary} > {log} 2>&1"


rule evaluate_compare:
    input:
        cfg=cfg_path("evaluation"),
        oof=ALL_OOF,
        cards="results/evaluation/model_cards.json",
    output:
        comparisons=report(
            "results/evaluation/comparisons.tsv",
            caption="../report/comparisons.rst",
            category="1. Results",
            labels={"table": "model comparison"},
        ),
        ablation=report(
            "results/evaluation/ablation.tsv",
            caption="../report/ablation.rst",
            category="1. Results",
            labels={"table": "ablations"},
        ),
    params:
        reference=REFERENCE_MODEL,
    log:
        "results/logs/evaluate_compare/compare.log",
    benchmark:
        "results/benchmarks/evaluate_compare/compare.tsv"
    conda:
        "../../envs/stats.yaml"
    shell:
        "gliofuse evaluate compare --config {input.cfg} --oof {input.oof} --reference {params.reference}"
        " --cards {input.cards} --out-comparisons {output.comparisons} --out-ablation {output.ablation} > {log} 2>&1"
