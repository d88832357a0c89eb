# Expression matrix from GDC STAR - Counts files.


rule omics_matrix:
    input:
        cfg=cfg_path("omics"),
        files=data_path("metadata", "files_rnaseq.json"),
        rnaseq=data_path("rnaseq"),
    output:
        matrix="results/omics/expression.h5",
        samples="results/omics/samples.tsv",
    log:
        "results/logs/omics_matrix/omics.log",
    resources:
        mem_mb=4000,
    conda:
        "../../envs/data.yaml"
    shell:
        "gliofuse omics matrix --config {input.cfg} --files-meta {input.files} --rnaseq-dir {input.rnaseq}"
        " --out {output.matrix} --out-samples {output.samples} > {log} 2>&1"
