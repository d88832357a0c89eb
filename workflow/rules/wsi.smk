# Tissue segmentation and patch coordinates, one job per slide.


rule wsi_patch:
    input:
        cfg=cfg_path("wsi"),
        slide=data_path("slides", "{slide}.svs"),
    output:
        coords="results/wsi/coords/{slide}.h5",
        qc="results/wsi/qc/{slide}.png",
        status="results/wsi/status/{slide}.json",
    log:
        "results/logs/wsi_patch/{slide}.log",
    benchmark:
        "results/benchmarks/wsi_patch/{slide}.tsv"
    threads: 1
    resources:
        mem_mb=2000,
    conda:
        "../../envs/data.yaml"
    shell:
        "gliofuse wsi patch --config {input.cfg} --slide {input.slide} --out-coords {output.coords}"
        " --out-qc {output.qc} --out-status {output.status} > {log} 2>&1"
