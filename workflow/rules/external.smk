# External validation cohorts (section external; docs/data-contracts.md §12): for each cohort, its slides are
# patched and encoded like the development slides (outputs namespaced under results/external/<cohort>/), its
# clinical table becomes a label table, its expression matrix is imported onto the development genes, every
# development bundle is applied to it frozen (one job), and one job scores them (metrics, KM, calibration).


use rule wsi_patch as external_wsi_patch with:
    input:
        cfg=cfg_path("wsi"),
        slide=get_external_slide_file,
    output:
        coords=f"{EXT_WSI_DIR}/coords/{{slide}}.h5",
        qc=f"{EXT_WSI_DIR}/qc/{{slide}}.png",
        status=f"{EXT_WSI_DIR}/status/{{slide}}.json",
        geojson=f"{EXT_WSI_DIR}/geojson/{{slide}}.geojson",
        thumbnail=f"{EXT_WSI_DIR}/thumbnails/{{slide}}.jpg",
        contours=f"{EXT_WSI_DIR}/contours/{{slide}}.jpg",
    params:
        override="{}",  # wsi.overrides_csv rows name development slides
    log:
        "results/logs/external_wsi_patch/{ext}/{slide}.log",
    benchmark:
        "results/benchmarks/external_wsi_patch/{ext}/{slide}.tsv"


use rule features_extract as external_features_extract with:
    input:
        cfg=cfg_path("features"),
        slides=get_external_shard_slide_files,
        coords=get_external_shard_coords,
    output:
        table=EXT_FEATURE_SHARD,
    params:
        features=get_external_shard_features,
        status=get_external_shard_feature_status,
    log:
        f"results/logs/external_features_extract/{{ext}}/{ENCODER}/shard_{{shard}}.log",
    benchmark:
        f"results/benchmarks/external_features_extract/{{ext}}/{ENCODER}/shard_{{shard}}.tsv"


rule external_labels:
    input:
        cfg=cfg_path("external"),
        clinical=get_external_clinical,
    output:
        labels=EXT_LABELS,
    log:
        "results/logs/external_labels/{ext}.log",
    conda:
        "../../envs/data.yaml"
    shell:
        "gliofuse labels build --config {input.cfg} --external {wildcards.ext} --clinical {input.clinical}"
        " --out {output.labels} > {log} 2>&1"


rule external_omics:
    input:
        matrix=get_external_matrix,
        reference=OMICS_MATRIX,  # the development gene space, unit and fill of missing genes
    output:
        matrix=EXT_OMICS,
    params:
        flags=get_external_import_flags,
    log:
        "results/logs/external_omics/{ext}.log",
    resources:
        mem_mb=4000,
    conda:
        "../../envs/data.yaml"
    shell:
        "gliofuse omics import --matrix {input.matrix} --reference {input.reference} {params.flags}"
        " --out {output.matrix} > {log} 2>&1"


rule external_predict:
    input:
        cfg=cfg_path("external"),
        bundles=BUNDLES,
        slides=get_external_sheet,
        feature_shards=get_external_feature_shards,
        omics=get_external_omics,
    output:
        predictions=EXT_PREDICTIONS,
    params:
        bundles=get_bundle_dirs,
        out_root=get_external_predict_root,
    log:
        "results/logs/external_predict/{ext}.log",
    conda:
        "../../envs/torch.yaml"
    shell:
        "gliofuse external predict --config {input.cfg} --bundles {params.bundles} --slides {input.slides}"
        " --feature-shards {input.feature_shards} --omics {input.omics} --out-root {params.out_root} > {log} 2>&1"


rule external_evaluate:
    input:
        cfg=cfg_path("external"),
        predictions=EXT_PREDICTIONS,
        bundles=BUNDLES,  # class maps of the tasks
        labels=EXT_LABELS,
        development=get_survival_fold_predictions,  # the risk cut-offs come from the development cohort only
        truth=get_external_truth,  # the demo site's true_risk (C-index vs true risk); none for a real cohort
    output:
        metrics=report(
            f"{EXT_EVALUATION}/metrics.tsv",
            caption="../report/external_metrics.rst",
            category="External validation — {ext}",
            labels={"table": "metrics"},
        ),
        cutoffs=f"{EXT_EVALUATION}/cutoffs.tsv",
        km=f"{EXT_EVALUATION}/km.tsv",
        calibration=f"{EXT_EVALUATION}/calibration.tsv",
    params:
        out_dir=get_output_dir,
    log:
        "results/logs/external_evaluate/{ext}.log",
    conda:
        "../../envs/stats.yaml"
    shell:
        "gliofuse external evaluate --config {input.cfg} --cohort {wildcards.ext} --predictions {input.predictions}"
        " --bundles {input.bundles} --labels {input.labels} --development-predictions {input.development}"
        " --truth {input.truth} --out-dir {params.out_dir} > {log} 2>&1"


rule external_report:
    input:
        metrics=f"{EXT_EVALUATION}/metrics.tsv",
        cutoffs=f"{EXT_EVALUATION}/cutoffs.tsv",
        km=f"{EXT_EVALUATION}/km.tsv",
        calibration=f"{EXT_EVALUATION}/calibration.tsv",
    output:
        km=report(
            EXT_KM_FIGURE,
            caption="../report/external_km.rst",
            category="External validation — {ext}",
            labels={"figure": "Kaplan-Meier by risk group"},
        ),
        calibration=report(
            EXT_CALIBRATION_FIGURE,
            caption="../report/external_calibration.rst",
            category="External validation — {ext}",
            labels={"figure": "calibration"},
        ),
        km_svg=f"{EXTERNAL_DIR}/figures/km.svg",
        calibration_svg=f"{EXTERNAL_DIR}/figures/calibration.svg",
        md=EXT_SUMMARY_MD,
    params:
        evaluation_dir=get_input_dir,
        dpi=CFG.report.dpi,
    log:
        "results/logs/external_report/{ext}.log",
    conda:
        "../../envs/stats.yaml"
    shell:
        "gliofuse external report --cohort {wildcards.ext} --evaluation-dir {params.evaluation_dir}"
        " --out-km {output.km} --out-calibration {output.calibration} --out-md {output.md}"
        " --dpi {params.dpi} > {log} 2>&1"
