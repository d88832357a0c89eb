# Metrics and model comparisons from prediction files only (no model code, no torch). The model cards of the
# comparisons come from the training provenance (the fold predictions' sidecars), not from a report rule.


rule evaluate_model:
    input:
        cfg=cfg_path("evaluation"),
        predictions=get_fold_predictions,
        # fold id -> repeat of a repeated cross-validation (data.n_repeats)
        splits=expand(SPLIT, fold=FOLDS),
    output:
        oof=OOF,
        metrics=METRICS,
    log:
        "results/logs/evaluate_model/{model}/{task}.log",
    benchmark:
        "results/benchmarks/evaluate_model/{model}/{task}.tsv"
    conda:
        "../../envs/stats.yaml"
    shell:
        "gliofuse evaluate model --config {input.cfg} --model {wildcards.model} --task {wildcards.task}"
        " --predictions {input.predictions} --splits {input.splits} --out-predictions {output.oof}"
        " --out-metrics {output.metrics} > {log} 2>&1"


rule evaluate_summary:
    input:
        metrics=get_all_metrics,
    output:
        summary=report(
            SUMMARY,
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
        oof=get_all_oof,
        card_predictions=get_model_card_predictions,
        # the demo's ground truth (true_risk): adds the C-index against the true risk; none for real cohorts
        truth=get_ground_truth,
    output:
        comparisons=report(
            COMPARISONS,
            caption="../report/comparisons.rst",
            category="1. Results",
            labels={"table": "model comparison"},
        ),
        ablation=report(
            ABLATION,
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
        " --predictions {input.card_predictions} --out-comparisons {output.comparisons}"
        " --out-ablation {output.ablation} --truth {input.truth} > {log} 2>&1"
