# Expression matrix (results/omics/expression.h5, contract §6): from GDC STAR - Counts files, or (cohort: sheet
# with sheet.expression) imported from your gene x sample matrix with its declared unit; then the matrix's genes
# are the gene space and its sample ids are the patient ids. External cohorts: their matrix is imported onto
# the development matrix's genes and unit (rule external_omics, workflow/rules/external.smk).


if SHEET_EXPRESSION:

    rule omics_matrix:
        input:
            cfg=cfg_path("omics"),
            matrix=CFG.sheet.expression.path,
        output:
            matrix=OMICS_MATRIX,
        params:
            flags=CFG.sheet.expression.import_flags(),
        log:
            "results/logs/omics_matrix/omics.log",
        resources:
            mem_mb=4000,
        conda:
            "../../envs/data.yaml"
        shell:
            "gliofuse omics import --config {input.cfg} --matrix {input.matrix} {params.flags}"
            " --out {output.matrix} > {log} 2>&1"

else:

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
