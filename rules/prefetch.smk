"""Downloads on the submit host, so that GPU jobs on offline compute nodes find everything cached."""


rule prefetch:
    output:
        record=PREFETCH_RECORD,
    log:
        LOGS / "prefetch/prefetch.log",
    params:
        library_code=library_code("prefetch.py"),
        model_id=prefetched_model(),
        revision=config["model"]["revision"],
        tasks=prefetched_tasks(),
        finetune_dataset=prefetched_finetune_dataset(),
        bridge_models=lambda wildcards: bridge_hub_models(),
        bridge_datasets=lambda wildcards: bridge_hub_datasets(),
    localrule: True
    conda:
        "../envs/ablation.yaml"
    script:
        "../workflow/scripts/prefetch.py"
