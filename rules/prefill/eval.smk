"""Zero-shot evaluation of a model under a mask mode (Stages 1, 2 and 4)."""


rule eval_model:
    input:
        unpack(eval_inputs),
    output:
        metrics=eval_dir(RESULTS, "{model}", "{mask}") / METRICS_FILE,
        samples=eval_dir(RESULTS, "{model}", "{mask}") / SAMPLES_FILE,
    log:
        LOGS / "eval_model/{model}/{mask}.log",
    params:
        **eval_job_params(
            model_id=lambda wildcards: model_reference(wildcards.model),
            revision=lambda wildcards: model_revision(wildcards.model),
        ),
    threads: config["resources"]["eval"]["threads"]
    resources:
        **scheduler_resources("eval"),
    conda:
        "../../envs/ablation.yaml"
    script:
        "../../workflow/scripts/prefill/eval_model.py"
