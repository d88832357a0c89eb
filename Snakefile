# gliofuse: multi-modal glioma diagnosis, grading and survival prediction.
# This file is a table of contents; rules live in workflow/rules/*.smk, logic in src/gliofuse.
from snakemake.utils import min_version

min_version("9.0")


configfile: "config.yaml"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/config.smk"
include: "workflow/rules/gdc.smk"
include: "workflow/rules/demo.smk"
include: "workflow/rules/cohort.smk"
include: "workflow/rules/labels.smk"
include: "workflow/rules/wsi.smk"
include: "workflow/rules/features.smk"
include: "workflow/rules/omics.smk"
include: "workflow/rules/training.smk"
include: "workflow/rules/evaluation.smk"
include: "workflow/rules/deploy.smk"
include: "workflow/rules/external.smk"
include: "workflow/rules/report.smk"
include: "workflow/rules/validation.smk"


onstart:
    print(f"gliofuse: cohort={CFG.cohort.value}, {describe_slides()}, models={MODELS}, tasks={TASKS}")


onsuccess:
    print("gliofuse: done. Build the report with: snakemake --report results/report.html")


onerror:
    print("gliofuse: a job failed; its log is under results/logs/<rule>/. Finished outputs are kept.")


rule all:
    default_target: True
    input:
        get_final_output,
