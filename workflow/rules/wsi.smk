# Tissue segmentation and patch coordinates, one job per slide.
# An unreadable slide is recorded `failed` in its status JSON (the job succeeds, with empty outputs), so the
# study goes on without it; data_splits stops when more than data.max_failed_slide_fraction of the slides failed.


rule wsi_patch:
    input:
        cfg=cfg_path("wsi"),
        slide=SLIDE_FILE,
    output:
        coords=WSI_COORDS,
        qc=WSI_QC,
        status=WSI_STATUS,
        geojson="results/wsi/geojson/{slide}.geojson",
        thumbnail=WSI_THUMBNAIL,
        contours="results/wsi/contours/{slide}.jpg",
    params:
        # this slide's row of wsi.overrides_csv: a rerun trigger, so editing one row redoes one slide
        override=get_wsi_override,
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
        # --slide-id: a sheet's file name need not be the slide id (a DICOM WSI's level_0.dcm)
        "gliofuse wsi patch --config {input.cfg} --slide {input.slide} --slide-id {wildcards.slide}"
        " --out-coords {output.coords}"
        " --out-qc {output.qc} --out-status {output.status} --out-geojson {output.geojson}"
        " --out-thumbnail {output.thumbnail} --out-contours {output.contours} > {log} 2>&1"
