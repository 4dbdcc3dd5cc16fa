"""Fine-tune settings chosen on the tiny world's development split: ``snakemake tune_finetune`` (ablation.prefill.tuning).

Every grid point fine-tunes every run; the fine-tunes and the base model are evaluated on the
development tasks under causal and prefill_bidir, and one point is chosen for all runs. Nothing
here is part of the main command.
"""


rule tune_finetune:
    """Choose the fine-tunes' learning rate, steps and replay share on the development split."""
    input:
        unpack(tuning_inputs),
    output:
        tables=update(tuning_files(RESULTS)["tables"]),
        choice=update(tuning_files(RESULTS)["choice"][0]),
    log:
        LOGS / "tuning/choice.log",
    params:
        library_code=library_code("prefill/tune_finetune.py"),
        trials=TUNING_TRIALS,
        runs=RUNS,
        max_side_effect=TUNING["max_side_effect"],
        base_model_id=model_reference("base"),
        base_model_revision=model_revision("base"),
    conda:
        "../../envs/ablation.yaml"
    script:
        "../../workflow/scripts/prefill/tune_finetune.py"


rule build_dev_tasks:
    output:
        tasks=directory(DEV_TASKS_DIR),
    log:
        LOGS / "build_dev_tasks/world.log",
    params:
        library_code=library_code("prefill/build_dev_tasks.py"),
        world=config["world"],
        dev_examples_per_task=TUNING["dev_examples_per_task"],
    conda:
        "../../envs/ablation.yaml"
    script:
        "../../workflow/scripts/prefill/build_dev_tasks.py"


use rule finetune as tuning_finetune with:
    input:
        unpack(lambda wildcards: finetune_job_inputs(trial_run_settings(wildcards))),
    output:
        final=directory(tuning_finetune_dir(RESULTS, "{trial}", "{run}") / FINAL_MODEL_DIR),
        summary=tuning_finetune_dir(RESULTS, "{trial}", "{run}") / SUMMARY_FILE,
        history=tuning_finetune_dir(RESULTS, "{trial}", "{run}") / LOSS_HISTORY_FILE,
    log:
        LOGS / "tuning/{trial}/{run}/finetune.log",
    params:
        **finetune_job_params(trial_run_settings),


use rule eval_model as tuning_eval_base with:
    input:
        unpack(tuning_eval_inputs()),
    output:
        metrics=tuning_base_eval_dir(RESULTS, "{mask}") / METRICS_FILE,
        samples=tuning_base_eval_dir(RESULTS, "{mask}") / SAMPLES_FILE,
    log:
        LOGS / "tuning/base/{mask}.log",
    params:
        **eval_job_params(model_id=model_reference("base"), revision=model_revision("base")),


use rule eval_model as tuning_eval_trial with:
    input:
        unpack(tuning_eval_inputs(trial_model_dir)),
    output:
        metrics=tuning_eval_dir(RESULTS, "{trial}", "{run}", "{mask}") / METRICS_FILE,
        samples=tuning_eval_dir(RESULTS, "{trial}", "{run}", "{mask}") / SAMPLES_FILE,
    log:
        LOGS / "tuning/{trial}/{run}/dev_eval_{mask}.log",
    params:
        **eval_job_params(model_id=trial_model_dir, revision=None),
