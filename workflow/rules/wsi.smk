# Tissue segmentation and patch coordinates, one job per slide.
import json

from gliofuse.wsi.overrides import check_override_slides, read_overrides

# wsi.overrides_csv is validated when the workflow is parsed (bad column, value or slide id: clear error).
try:
    WSI_OVERRIDES = read_overrides(CFG.wsi.overrides_csv) if CFG.wsi.overrides_csv else {}
    if WSI_OVERRIDES and SLIDES:
        check_override_slides(WSI_OVERRIDES, SLIDES, path=CFG.wsi.overrides_csv)
except ConfigError as exc:
    raise WorkflowError(str(exc)) from None


rule wsi_patch:
    input:
        cfg=cfg_path("wsi"),
        slide=data_path("slides", "{slide}.svs"),
    output:
        coords="results/wsi/coords/{slide}.h5",
        qc="results/wsi/qc/{slide}.png",
        status="results/wsi/status/{slide}.json",
        geojson="results/wsi/geojson/{slide}.geojson",
        thumbnail="results/wsi/thumbnails/{slide}.jpg",
        contours="results/wsi/contours/{slide}.jpg",
    params:
        # this slide's row of wsi.overrides_csv: a rerun trigger, so editing one row redoes one slide
        override=lambda wc: json.dumps(WSI_OVERRIDES.get(wc.slide, {}), sort_keys=True),
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
        " --out-qc {output.qc} --out-status {output.status} --out-geojson {output.geojson}"
        " --out-thumbnail {output.thumbnail} --out-contours {output.contours} > {log} 2>&1"
