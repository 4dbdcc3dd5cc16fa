"""Downloads on the submit host, so that GPU jobs on offline compute nodes find everything cached."""


rule prefetch:
    output:
        record=PREFETCH_RECORD,
    log:
        "logs/prefetch/prefetch.log",
    params:
        model_id=config["model"]["id"],
        revision=config["model"]["revision"],
        tasks=prefetched_tasks(),
        finetune_dataset=prefetched_finetune_dataset(),
    localrule: True
    conda:
        "../envs/ablation.yaml"
    script:
        "../workflow/scripts/prefetch.py"
