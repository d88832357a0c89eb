# TCGA acquisition from the NCI GDC (cohort: tcga with gdc.download: true).
# The checkpoint writes the manifest; the slide and STAR file lists of the DAG are read from it.
# Query and downloads need internet, so they run on the submit/login node (localrule).


if GDC_DOWNLOAD:

    checkpoint gdc_query:
        input:
            cfg=cfg_path("gdc"),
            user_manifest=get_user_manifest,
        output:
            manifest=data_path("metadata", "manifest.tsv"),
            files_slides=FILES_SLIDES_JSON,
            files_rnaseq=FILES_RNASEQ_JSON,
            cases=CASES_JSON,
        params:
            out=get_gdc_root,
        log:
            "results/logs/gdc_query/query.log",
        localrule: True
        resources:
            gdc_conn=1,
        conda:
            "../../envs/data.yaml"
        shell:
            "gliofuse gdc query --config {input.cfg} --data-root {params.out} > {log} 2>&1"

    rule gdc_download_slide:
        input:
            cfg=ancient(cfg_path("gdc")),
            manifest=ancient(get_gdc_manifest),
        output:
            slide=TCGA_SLIDE_FILE,
        log:
            "results/logs/gdc_download/slides/{slide}.log",
        localrule: True
        resources:
            gdc_conn=1,
        conda:
            "../../envs/data.yaml"
        shell:
            "gliofuse gdc download --config {input.cfg} --manifest {input.manifest}"
            " --file-name {wildcards.slide}.svs --out {output.slide} > {log} 2>&1"

    rule gdc_download_rnaseq:
        input:
            cfg=ancient(cfg_path("gdc")),
            manifest=ancient(get_gdc_manifest),
        output:
            star=data_path("rnaseq", "{file_id}", "{file_name}"),
        wildcard_constraints:
            file_id=r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}",
            file_name=r"[^/]+",
        log:
            "results/logs/gdc_download/rnaseq/{file_id}/{file_name}.log",
        localrule: True
        resources:
            gdc_conn=1,
        conda:
            "../../envs/data.yaml"
        shell:
            "gliofuse gdc download --config {input.cfg} --manifest {input.manifest}"
            " --file-id {wildcards.file_id} --out {output.star} > {log} 2>&1"

    rule gdc_download_all:
        input:
            get_all_gdc_files,
        localrule: True
