"""Full-weight fine-tunes under a training mask (Stages 3A, 3B and 5)."""


rule finetune:
    input:
        unpack(finetune_inputs),
    output:
        final=directory(finetune_dir(RESULTS, "{run}") / FINAL_MODEL_DIR),
        summary=finetune_dir(RESULTS, "{run}") / SUMMARY_FILE,
        history=finetune_dir(RESULTS, "{run}") / LOSS_HISTORY_FILE,
    log:
        LOGS / "finetune/{run}.log",
    params:
        **finetune_job_params(lambda wildcards: finetune_settings(config, wildcards.run)),
    threads: config["resources"]["finetune"]["threads"]
    resources:
        **scheduler_resources("finetune"),
    priority: 2  # the fine-tunes gate the study's last evaluations: first once the base model is ready
    conda:
        "../../envs/ablation.yaml"
    script:
        "../../workflow/scripts/prefill/finetune.py"
