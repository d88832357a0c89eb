# Patient label table: survival + WHO-2021 diagnosis and grade, from GDC clinical records and a molecular
# table (demo, tcga) or from your own clinical table (cohort: sheet; columns mapped by sheet.columns).


if SHEET_COHORT:

    rule labels_build:
        input:
            cfg=cfg_path("labels"),
            clinical=SHEET_CLINICAL,
        output:
            labels=LABELS,
        log:
            "results/logs/labels_build/labels.log",
        resources:
            mem_mb=1000,
        conda:
            "../../envs/data.yaml"
        shell:
            "gliofuse labels build --config {input.cfg} --clinical {input.clinical} --out {output.labels} > {log} 2>&1"

else:

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
