"""The free-form study's settings and the helpers that map them to files (rules in rules/prefill/freeform.smk)."""

from ablation.prefill.freeform import paths as freeform_paths

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
    inputs.update(prefetch_inputs())
    if wildcards.model != "base" or EMBEDDED_MODEL:
        inputs["model"] = model_reference(wildcards.model)
    return inputs
