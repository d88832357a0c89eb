# Embedded demo cohort (cohort: demo): slides, STAR counts, GDC metadata and molecular labels.


if CFG.cohort.value == "demo":

    rule demo_generate:
        input:
            cfg=cfg_path("demo"),
        output:
            slides=expand(TCGA_SLIDE_FILE, slide=SLIDES),
            rnaseq=directory(RNASEQ_DIR),
            files_rnaseq=FILES_RNASEQ_JSON,
            files_slides=FILES_SLIDES_JSON,
            cases=CASES_JSON,
            molecular=DEMO_MOLECULAR,
            truth=DEMO_TRUTH,
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
