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
        settings=lambda wildcards: finetune_settings(config, wildcards.run),
        base_model_id=model_reference("base"),
        base_model_revision=model_revision("base"),
        dataset=instruction_dataset(),
        attn_implementation=config["model"]["attn_implementation"],
        device=config["model"]["device"],
        processes=max(1, config["resources"]["finetune"]["gpus"]),
        strategy=config["finetune"]["distributed"],
    threads: config["resources"]["finetune"]["threads"]
    resources:
        **scheduler_resources("finetune"),
    conda:
        "../envs/ablation.yaml"
    script:
        "../workflow/scripts/finetune.py"
