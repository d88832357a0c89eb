# Patch features with the configured encoder, one job per slide.


rule features_extract:
    input:
        cfg=cfg_path("features"),
        slide=SLIDE_FILE,
        coords=WSI_COORDS,
    output:
        features=FEATURES,
        status=FEATURES_STATUS,
    log:
        f"results/logs/features_extract/{ENCODER}/{{slide}}.log",
    benchmark:
        f"results/benchmarks/features_extract/{ENCODER}/{{slide}}.tsv"
    threads: max(1, CFG.features.num_workers or 1)
    resources:
        mem_mb=4000,
        gpu=GPU_FEATURES,
    conda:
        "../../envs/torch.yaml"
    shell:
        "gliofuse features extract --config {input.cfg} --slide {input.slide} --coords {input.coords}"
        " --threads {threads} --out {output.features} --out-status {output.status} > {log} 2>&1"
