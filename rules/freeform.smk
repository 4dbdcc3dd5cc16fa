"""Free-form generation under each mask mode: task set, generations per (model, mask), scores, report."""

from ablation.freeform import paths as freeform_paths

FREEFORM = config["freeform"]
FREEFORM_ACTIVE = PREFILL_ACTIVE and FREEFORM["activate"]
FREEFORM_CONFIGURATIONS = freeform_paths.configurations(RUNS, FREEFORM["masks"])
FREEFORM_REPORT_FILES = freeform_paths.report_files(RESULTS)
FREEFORM_JUDGED = FREEFORM["judge"]["activate"]


def freeform_outputs():
    """The free-form report (and through it every generation), when the section is active."""
    if not FREEFORM_ACTIVE:
        return []
    return [path for files in FREEFORM_REPORT_FILES.values() for path in files]


def freeform_generation_files():
    """Every configuration's generations, in the order of FREEFORM_CONFIGURATIONS."""
    return [freeform_paths.generations_path(RESULTS, model, mask) for model, mask in FREEFORM_CONFIGURATIONS]


def freeform_judgment_files():
    """Every configuration's judgments when the judge is on, else none."""
    if not FREEFORM_JUDGED:
        return []
    return [freeform_paths.judgments_path(RESULTS, model, mask) for model, mask in FREEFORM_CONFIGURATIONS]


def freeform_task_inputs(wildcards):
    """The real task set's JSON file is an input, so editing it regenerates everything after it."""
    if FREEFORM["task_set"] == "real" and FREEFORM["tasks_file"]:
        return {"tasks_file": FREEFORM["tasks_file"]}
    return {}


def freeform_generation_inputs(wildcards):
    """A generation needs the task set and, like an evaluation, a locally built or fine-tuned model."""
    inputs = {"tasks": freeform_paths.tasks_path(RESULTS)}
    if PREFETCH:
        inputs["prefetch"] = PREFETCH_RECORD
    if wildcards.model != "base" or EMBEDDED_MODEL:
        inputs["model"] = model_reference(wildcards.model)
    return inputs


rule freeform_tasks:
    input:
        unpack(freeform_task_inputs),
    output:
        tasks=freeform_paths.tasks_path(RESULTS),
    log:
        LOGS / "freeform_tasks/tasks.log",
    params:
        freeform=FREEFORM,
        world_seed=config["world"]["seed"],
    localrule: True
    conda:
        "../envs/ablation.yaml"
    script:
        "../workflow/scripts/freeform_tasks.py"


rule generate_freeform:
    input:
        unpack(freeform_generation_inputs),
    output:
        generations=RESULTS / "freeform" / "{model}" / "{mask}" / "generations.jsonl",
    log:
        LOGS / "generate_freeform/{model}/{mask}.log",
    params:
        model_id=lambda wildcards: model_reference(wildcards.model),
        revision=lambda wildcards: model_revision(wildcards.model),
    threads: config["resources"]["eval"]["threads"]
    resources:
        **scheduler_resources("eval"),
    conda:
        "../envs/ablation.yaml"
    script:
        "../workflow/scripts/generate_freeform.py"


rule judge_freeform:
    """The LLM judge's 1-5 score of every response; on the submit host, which has the network."""
    input:
        generations=RESULTS / "freeform" / "{model}" / "{mask}" / "generations.jsonl",
    output:
        judgments=RESULTS / "freeform" / "{model}" / "{mask}" / "judgments.jsonl",
    log:
        LOGS / "judge_freeform/{model}/{mask}.log",
    params:
        judge=FREEFORM["judge"],
        cache=freeform_paths.judge_cache_path(RESULTS),
    localrule: True
    conda:
        "../envs/ablation.yaml"
    script:
        "../workflow/scripts/judge_freeform.py"


rule score_freeform:
    input:
        generations=freeform_generation_files(),
        judgments=freeform_judgment_files(),
    output:
        scores=freeform_paths.scores_path(RESULTS),
    log:
        LOGS / "score_freeform/scores.log",
    params:
        configurations=FREEFORM_CONFIGURATIONS,
        resamples=FREEFORM["bootstrap_resamples"],
    localrule: True
    conda:
        "../envs/ablation.yaml"
    script:
        "../workflow/scripts/score_freeform.py"


rule report_freeform:
    input:
        generations=freeform_generation_files(),
        scores=rules.score_freeform.output.scores,
    output:
        tables=report(update(FREEFORM_REPORT_FILES["tables"]), caption="../workflow/report/freeform.rst", category="Free-form"),
        figures=report(update(FREEFORM_REPORT_FILES["figures"]), caption="../workflow/report/freeform.rst", category="Free-form"),
        page=report(update(FREEFORM_REPORT_FILES["page"][0]), caption="../workflow/report/freeform.rst", category="Free-form"),
    log:
        LOGS / "report_freeform/report.log",
    params:
        configurations=FREEFORM_CONFIGURATIONS,
        examples_shown=FREEFORM["examples_shown"],
        experiment=config["experiment"],
    localrule: True
    conda:
        "../envs/ablation.yaml"
    script:
        "../workflow/scripts/report_freeform.py"
