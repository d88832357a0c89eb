# The slide sheet of the run (results/cohort/slides.tsv: patient_id, slide_id, slide_path), written by every
# route so that the rules downstream read one contract: your sheet, checked and copied (cohort: sheet), or the
# sheet of the TCGA-named slides of the demo / GDC routes (patient = TCGA barcode).


if SHEET_COHORT:

    rule cohort_sheet:
        input:
            sheet=SHEET_SLIDES,
        output:
            sheet=SLIDE_SHEET,
        log:
            "results/logs/cohort_sheet/sheet.log",
        localrule: True
        conda:
            "../../envs/data.yaml"
        shell:
            "gliofuse cohort sheet --sheet {input.sheet} --out {output.sheet} > {log} 2>&1"

else:

    rule cohort_sheet:
        input:
            slides=get_all_slide_files,
        output:
            sheet=SLIDE_SHEET,
        log:
            "results/logs/cohort_sheet/sheet.log",
        localrule: True
        conda:
            "../../envs/data.yaml"
        shell:
            "gliofuse cohort sheet --tcga-slides {input.slides} --out {output.sheet} > {log} 2>&1"
