# Embedded demo cohort (cohort: demo): slides, STAR counts, GDC metadata and molecular labels.


rule config_snapshot:
    output:
        "results/config/{section}.yaml",
    params:
        snapshot=get_config_snapshot,
    log:
        "results/logs/config_snapshot/{section}.log",
    localrule: True
    conda:
        "../../envs/data.yaml"
    script:
        "../scripts/config_snapshot.py"


if CFG.cohort.value == "demo":

    rule demo_generate:
        input:
            cfg=cfg_path("demo"),
        output:
            slides=expand(data_path("slides", "{slide}.svs"), slide=SLIDES),
            rnaseq=directory(data_path("rnaseq")),
            files_rnaseq=data_path("metadata", "files_rnaseq.json"),
            files_slides=data_path("metadata", "files_slides.json"),
            cases=data_path("metadata", "cases.json"),
            molecular=data_path("labels", "molecular.tsv"),
            truth=data_path("truth", "ground_truth.tsv"),
        params:
            out=get_demo_root,
        log:
            "results/logs/demo_generate/demo.log",
        benchmark:
            "results/benchmarks/demo_generate/demo.tsv"
        threads: 1
        resources:
            mem_mb=2000,
        conda:
            "../../envs/data.yaml"
        shell:
            "gliofuse demo generate --config {input.cfg} --out {params.out} > {log} 2>&1"
