# Patient label table: survival (GDC clinical) + WHO-2021 diagnosis and grade (molecular table).


rule labels_build:
    input:
        cfg=cfg_path("labels"),
        cases=CASES_JSON,
        molecular=get_molecular_table(),
    output:
        labels=LABELS,
    log:
        "results/logs/labels_build/labels.log",
    resources:
        mem_mb=1000,
    conda:
        "../../envs/data.yaml"
    shell:
        "gliofuse labels build --config {input.cfg} --cases {input.cases}"
        " --molecular {input.molecular} --out {output.labels} > {log} 2>&1"
