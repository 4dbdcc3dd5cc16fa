"""Free-form generation under each mask mode: task set, generations per (model, mask), scores, report."""


rule freeform_tasks:
    input:
        unpack(freeform_task_inputs),
    output:
        tasks=freeform_paths.tasks_path(RESULTS),
    log:
        LOGS / "freeform_tasks/tasks.log",
    params:
        library_code=library_code("prefill/freeform_tasks.py"),
        freeform=FREEFORM,
        world_seed=config["world"]["seed"],
    localrule: True
    conda:
        "../../envs/ablation.yaml"
    script:
        "../../workflow/scripts/prefill/freeform_tasks.py"


rule generate_freeform:
    input:
        unpack(freeform_generation_inputs),
    output:
        generations=freeform_paths.generations_path(RESULTS, "{model}", "{mask}"),
    log:
        LOGS / "generate_freeform/{model}/{mask}.log",
    params:
        library_code=library_code("prefill/generate_freeform.py"),
        model_id=lambda wildcards: model_reference(wildcards.model),
        revision=lambda wildcards: model_revision(wildcards.model),
    threads: config["resources"]["eval"]["threads"]
    resources:
        **scheduler_resources("eval"),
    conda:
        "../../envs/ablation.yaml"
    script:
        "../../workflow/scripts/prefill/generate_freeform.py"


rule judge_freeform:
    """The LLM judge's 1-5 score of every response; on the submit host, which has the network."""
    input:
        generations=freeform_paths.generations_path(RESULTS, "{model}", "{mask}"),
    output:
        judgments=freeform_paths.judgments_path(RESULTS, "{model}", "{mask}"),
    log:
        LOGS / "judge_freeform/{model}/{mask}.log",
    params:
        library_code=library_code("prefill/judge_freeform.py"),
        judge=FREEFORM["judge"],
        cache=freeform_paths.judge_cache_path(RESULTS),
    localrule: True
    conda:
        "../../envs/ablation.yaml"
    script:
        "../../workflow/scripts/prefill/judge_freeform.py"


rule score_freeform:
    input:
        generations=freeform_generation_files(),
        judgments=freeform_judgment_files(),
    output:
        scores=freeform_paths.scores_path(RESULTS),
    log:
        LOGS / "score_freeform/scores.log",
    params:
        library_code=library_code("prefill/score_freeform.py"),
        configurations=FREEFORM_CONFIGURATIONS,
        resamples=FREEFORM["bootstrap_resamples"],
    localrule: True
    conda:
        "../../envs/ablation.yaml"
    script:
        "../../workflow/scripts/prefill/score_freeform.py"


rule report_freeform:
    input:
        generations=freeform_generation_files(),
        scores=rules.score_freeform.output.scores,
    output:
        tables=report(
            update(FREEFORM_REPORT_FILES["tables"]), caption="../../workflow/report/freeform.rst", category="Free-form"
        ),
        figures=report(
            update(FREEFORM_REPORT_FILES["figures"]),
            caption="../../workflow/report/freeform.rst",
            category="Free-form",
        ),
        page=report(
            update(FREEFORM_REPORT_FILES["page"][0]),
            caption="../../workflow/report/freeform.rst",
            category="Free-form",
        ),
    log:
        LOGS / "report_freeform/report.log",
    params:
        library_code=library_code("prefill/report_freeform.py"),
        configurations=FREEFORM_CONFIGURATIONS,
        examples_shown=FREEFORM["examples_shown"],
        experiment=config["experiment"],
        allow_mixed_code=config["report"]["allow_mixed_code"],
    localrule: True
    conda:
        "../../envs/ablation.yaml"
    script:
        "../../workflow/scripts/prefill/report_freeform.py"
