"""Full-weight fine-tunes under a training mask (Stages 3A, 3B and 5)."""


rule finetune:
    input:
        unpack(finetune_inputs),
    output:
        final=directory(RESULTS / "finetune" / "{run}" / "final"),
        summary=RESULTS / "finetune" / "{run}" / "summary.json",
        history=RESULTS / "finetune" / "{run}" / "loss_history.csv",
    log:
        LOGS / "finetune/{run}.log",
    params:
        **finetune_job_params(lambda wildcards: finetune_settings(config, wildcards.run)),
    threads: config["resources"]["finetune"]["threads"]
    resources:
        **scheduler_resources("finetune"),
    conda:
        "../../envs/ablation.yaml"
    script:
        "../../workflow/scripts/prefill/finetune.py"
