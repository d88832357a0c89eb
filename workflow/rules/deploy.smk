# Model bundles (docs/data-contracts.md §11): one job exports every model x task after training; the `predict`
# target applies them to a new cohort (predict.features_dir, predict.omics). No labels are read.


rule bundle_export:
    input:
        cfg=cfg_path("training"),
        checkpoints=get_all_fold_checkpoints,
        predictions=get_all_fold_predictions,  # the training rows give the Cox baseline hazard
        omics=OMICS_MATRIX,
        feature_shards=get_all_feature_shards,  # their h5 files' encoder attribute names the bundle's encoder
    output:
        bundles=BUNDLES,
    params:
        out_root=get_models_root,
    log:
        "results/logs/bundle_export/bundles.log",
    benchmark:
        "results/benchmarks/bundle_export/bundles.tsv"
    conda:
        "../../envs/torch.yaml"
    shell:
        "gliofuse bundle export --config {input.cfg} --checkpoints {input.checkpoints} --omics {input.omics}"
        " --feature-shards {input.feature_shards} --out-root {params.out_root} > {log} 2>&1"


rule predict_cohort:
    input:
        cfg=cfg_path("predict"),
        bundle=BUNDLE_JSON,
        features=get_predict_features,
        omics=get_predict_omics,
        slides=get_predict_slides,
    output:
        predictions=f"{PREDICT_DIR}/predictions.tsv",
    params:
        bundle=get_bundle_dir,
        out_dir=get_output_dir,
        wsi=get_predict_wsi_flag,
    log:
        "results/logs/predict_cohort/{model}/{task}.log",
    conda:
        "../../envs/torch.yaml"
    shell:
        "gliofuse predict --config {input.cfg} --bundle {params.bundle} --features {input.features}"
        " --omics {input.omics} --slides {input.slides} {params.wsi} --out-dir {params.out_dir} > {log} 2>&1"


rule predict:
    input:
        get_predict_outputs,
