# Expression matrix from GDC STAR - Counts files.


rule omics_matrix:
    input:
        cfg=cfg_path("omics"),
        files=FILES_RNASEQ_JSON,
        star=get_rnaseq_inputs,
    output:
        matrix=OMICS_MATRIX,
        samples="results/omics/samples.tsv",
    params:
        rnaseq_dir=RNASEQ_DIR,
    log:
        "results/logs/omics_matrix/omics.log",
    resources:
        mem_mb=4000,
    conda:
        "../../envs/data.yaml"
    shell:
        "gliofuse omics matrix --config {input.cfg} --files-meta {input.files} --rnaseq-dir {params.rnaseq_dir}"
        " --out {output.matrix} --out-samples {output.samples} > {log} 2>&1"
