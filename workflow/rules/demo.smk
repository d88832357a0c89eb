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


if DEMO_SITE:

    rule demo_external:
        # The demo's external site (demo.external): validated as the external cohort demo.external.name
        # (workflow/rules/external.smk); its slides are those of the site plan.
        input:
            cfg=cfg_path("demo"),
        output:
            slides=list(DEMO_SITE_SLIDE_PATHS.values()),
            sheet=DEMO_SITE_SHEET,
            tables=DEMO_SITE_TABLES,
        params:
            out=get_demo_site_dir,
        log:
            "results/logs/demo_external/demo.log",
        benchmark:
            "results/benchmarks/demo_external/demo.tsv"
        threads: 4  # slide processes; Snakemake lowers it to --cores
        resources:
            mem_mb=2000,
        conda:
            "../../envs/data.yaml"
        shell:
            "gliofuse demo external --config {input.cfg} --out {params.out} --workers {threads} > {log} 2>&1"
