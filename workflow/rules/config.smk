# Per-section snapshots of the merged, validated config: each stage's rules take theirs as input, so a
# config edit reruns only the stages whose section changed.


rule config_snapshot:
    output:
        CONFIG_SNAPSHOT,
    params:
        snapshot=get_config_snapshot,
    log:
        "results/logs/config_snapshot/{section}.log",
    localrule: True
    conda:
        "../../envs/data.yaml"
    script:
        "../scripts/config_snapshot.py"
