# Patch features with the configured encoder, one job per shard of features.shard_size slides (one encoder build
# per shard). The declared output is the shard table; each slide's h5 + status JSON are written (and resumed)
# inside the job, so a killed shard keeps its finished slides and a bad slide fails only itself.


rule features_extract:
    input:
        cfg=cfg_path("features"),
        slides=get_shard_slide_files,
        coords=get_shard_coords,
    output:
        table=FEATURE_SHARD,
    params:
        # per-slide outputs, written inside the job (not declared: Snakemake would delete them before a rerun);
        # a rerun trigger too: a shard whose slide list changed is redone (finished slides are reused)
        features=get_shard_features,
        status=get_shard_feature_status,
    wildcard_constraints:
        shard=r"\d+",
    log:
        f"results/logs/features_extract/{ENCODER}/shard_{{shard}}.log",
    benchmark:
        f"results/benchmarks/features_extract/{ENCODER}/shard_{{shard}}.tsv"
    threads: max(1, CFG.features.num_workers or 1)
    resources:
        mem_mb=4000,
        gpu=GPU_FEATURES,
    conda:
        "../../envs/torch.yaml"
    shell:
        "gliofuse features extract --config {input.cfg} --slide {input.slides} --coords {input.coords}"
        " --threads {threads} --out {params.features} --out-status {params.status} --out-shard {output.table}"
        " > {log} 2>&1"
