"""The bridge study's helpers: resolved runs, which run trains for which, and each job's files."""

import sys

from ablation.bridge.cache_plan import cache_plan, cached_run_keys, format_plan, informative, longest_first
from ablation.bridge.settings import (
    default_processes,
    embedded_model_name,
    forced_prompt_modes,
    inference_run,
    resolve_runs,
    source_state_name,
    trained_run_of,
)
from ablation.bridge.parity import parity_config
from ablation.bridge.roles import reproductions, role_runs, run_descriptions
from ablation.config import load_schema
from ablation.bridge.run_format import HISTORY_FILE, LOSS_HISTORY_FILE, SUMMARY_FILE, TRANSLATOR_FILE
from ablation.layout import (
    METRICS_FILE,
    SAMPLES_FILE,
    bridge_baseline_dir,
    bridge_cache_index,
    bridge_inference_dir,
    bridge_legacy_dir,
    bridge_report_files,
    bridge_report_paths,
    bridge_run_dir,
    bridge_world_dir,
    embedded_model_dir,
)
from ablation.references import is_local_reference
from ablation.world.corpus import DOCUMENT_SEPARATOR

BRIDGE = config["bridge"]
BRIDGE_ACTIVE = "bridge" in config["studies"]
BRIDGE_RUNS = resolve_runs(BRIDGE, load_schema(), config["seed"], default_processes(config)) if BRIDGE_ACTIVE else {}
# seed 004's "2c = reuse 1a": runs with equal settings share the first one's translator
BRIDGE_TRAINED_BY = trained_run_of(BRIDGE_RUNS)
BRIDGE_TRAINED_RUNS = list(dict.fromkeys(BRIDGE_TRAINED_BY.values()))
BRIDGE_TRAINED_SETTINGS = {run: BRIDGE_RUNS[run] for run in BRIDGE_TRAINED_RUNS}
BRIDGE_WORLD = bridge_world_dir(RESULTS)
# the bridge's own tiny LMs (bridge.world.models), by their embedded name
BRIDGE_LMS = BRIDGE["world"]["models"]
BRIDGE_LM_PATTERN = "|".join(BRIDGE_LMS)
# the frozen-output caches (ablation.bridge.frozen_cache) the trained runs read: run -> key, key name -> the first run with it
BRIDGE_SOURCE_STATE_KEYS, BRIDGE_KL_BASELINE_KEYS = (
    cached_run_keys(BRIDGE_TRAINED_SETTINGS, BRIDGE, config["model"]["device"]) if BRIDGE_ACTIVE else ({}, {})
)
# the runs expected to take longest start first (priorities 1 to 1.9, below the caches' and baselines' 2)
BRIDGE_RUN_PRIORITY = longest_first(BRIDGE_TRAINED_SETTINGS, BRIDGE_SOURCE_STATE_KEYS, BRIDGE_KL_BASELINE_KEYS)
BRIDGE_SOURCE_STATE_RUNS, BRIDGE_KL_BASELINE_RUNS = {}, {}
for _keys, _first_runs in (
    (BRIDGE_SOURCE_STATE_KEYS, BRIDGE_SOURCE_STATE_RUNS),
    (BRIDGE_KL_BASELINE_KEYS, BRIDGE_KL_BASELINE_RUNS),
):
    for _run, _key in _keys.items():
        _first_runs.setdefault(source_state_name(_key), _run)
# each cache's estimated size and whether it is built, on the dry run too (once, not in every job's own parse)
if BRIDGE_ACTIVE and BRIDGE["source_state_cache"]["enabled"] and workflow.is_main_process:
    _plan = cache_plan(BRIDGE_TRAINED_SETTINGS, BRIDGE, config["model"]["device"])
    if informative(_plan):
        print(format_plan(_plan, BRIDGE["source_state_cache"]), file=sys.stderr)
BRIDGE_RUN_FILES = (SUMMARY_FILE, HISTORY_FILE, LOSS_HISTORY_FILE, TRANSLATOR_FILE)
# preserved runs of the original code, imported into the run format (rules/bridge/report.smk)
BRIDGE_LEGACY = {entry["name"]: entry for entry in BRIDGE["legacy"]} if BRIDGE_ACTIVE else {}
BRIDGE_REPORT_FILES = bridge_report_files(RESULTS, [ablation["name"] for ablation in BRIDGE["report"]["ablations"]])


def bridge_train_resources():
    """A bridge run's cluster request: resources.bridge_train's, with one GPU per process of the run where GPUs are requested."""
    request = scheduler_resources("bridge_train")
    if "gpu" in request:
        request["gpu"] = lambda wildcards: BRIDGE_RUNS[wildcards.bridge_run]["processes"]
    return request


def bridge_hub_models():
    """The bridge's models that come from the hub (not built by the workflow, not a local path)."""
    if not BRIDGE_ACTIVE:
        return {}
    return {
        name: model
        for name, model in BRIDGE["models"].items()
        if embedded_model_name(model["id"]) is None and not is_local_reference(model["id"])
    }


def bridge_hub_datasets():
    """The bridge's datasets read from the hub, for prefetch."""
    if not BRIDGE_ACTIVE:
        return []
    used = {settings["dataset"] for settings in BRIDGE_RUNS.values()}
    return [
        source
        for dataset, source in BRIDGE["datasets"].items()
        if dataset in used and source["path"] != "embedded" and not is_local_reference(source["path"])
    ]


def bridge_model_path(name):
    """What from_pretrained loads for a bridge model: the tiny world's build, a local path or a hub id."""
    model_id = BRIDGE["models"][name]["id"]
    embedded = embedded_model_name(model_id)
    return str(embedded_model_dir(RESULTS, embedded)) if embedded else model_id


def bridge_model_inputs(name):
    """The files a job needs for model ``name``: its tiny-world build, or its local directory (ancient:
    it must exist, but restoring or touching it reruns nothing; its content is in the provenance)."""
    model_id = BRIDGE["models"][name]["id"]
    embedded = embedded_model_name(model_id)
    if embedded:
        return [embedded_model_dir(RESULTS, embedded)]
    return [ancient(model_id)] if is_local_reference(model_id) else []


def bridge_dataset_inputs(dataset):
    source = BRIDGE["datasets"][dataset]
    return [BRIDGE_WORLD / dataset] if source["path"] == "embedded" else []


def bridge_job_model(name):
    """The model entry a job loads: path resolved, revision as configured (pinned from prefetch in the job)."""
    return {**BRIDGE["models"][name], "id": bridge_model_path(name)}


def bridge_baseline_files(model, dataset):
    directory = bridge_baseline_dir(RESULTS, model, dataset)
    return {"metrics": directory / METRICS_FILE, "samples": directory / SAMPLES_FILE}


def bridge_baseline_inputs(wildcards):
    inputs = prefetch_inputs()
    return {
        **inputs,
        "model": bridge_model_inputs(wildcards.bridge_model),
        "data": bridge_dataset_inputs(wildcards.bridge_dataset),
    }


def bridge_run_inputs(wildcards):
    settings = BRIDGE_RUNS[wildcards.bridge_run]
    source_baseline = bridge_baseline_files(settings["source"], settings["dataset"])
    inputs = prefetch_inputs()
    return {
        **inputs,
        "source_model": bridge_model_inputs(settings["source"]),
        "target_model": bridge_model_inputs(settings["target"]),
        "data": bridge_dataset_inputs(settings["dataset"]),
        "source_samples": source_baseline["samples"],
        "source_metrics": source_baseline["metrics"],
        "target_samples": bridge_baseline_files(settings["target"], settings["dataset"])["samples"],
        **bridge_source_state_inputs(wildcards.bridge_run),
        **bridge_kl_baseline_inputs(wildcards.bridge_run),
    }


def bridge_source_state_index(key_name):
    return bridge_cache_index(RESULTS, "source_states", key_name)


def bridge_source_state_inputs(run):
    """A run's source-state cache, when bridge.source_state_cache is on."""
    if run not in BRIDGE_SOURCE_STATE_KEYS:
        return {}
    return {"source_states": bridge_source_state_index(source_state_name(BRIDGE_SOURCE_STATE_KEYS[run]))}


def bridge_source_state_build_inputs(wildcards):
    settings = BRIDGE_RUNS[BRIDGE_SOURCE_STATE_RUNS[wildcards.source_state_key]]
    inputs = prefetch_inputs()
    return {
        **inputs,
        "model": bridge_model_inputs(settings["source"]),
        "data": bridge_dataset_inputs(settings["dataset"]),
    }


def bridge_kl_baseline_index(key_name):
    return bridge_cache_index(RESULTS, "kl_baselines", key_name)


def bridge_kl_baseline_inputs(run):
    """A run's KL-baseline cache, when bridge.source_state_cache is on and the run has a KL."""
    if run not in BRIDGE_KL_BASELINE_KEYS:
        return {}
    return {"kl_baselines": bridge_kl_baseline_index(source_state_name(BRIDGE_KL_BASELINE_KEYS[run]))}


def bridge_kl_baseline_build_inputs(wildcards):
    settings = BRIDGE_RUNS[BRIDGE_KL_BASELINE_RUNS[wildcards.kl_baseline_key]]
    inputs = prefetch_inputs()
    return {
        **inputs,
        "model": bridge_model_inputs(settings["target"]),
        "data": bridge_dataset_inputs(settings["dataset"]),
    }


def bridge_inference_inputs(wildcards):
    """The benchmark's inputs: the translator of the run that trained for this one, its models and data."""
    settings = BRIDGE_RUNS[wildcards.bridge_run]
    inputs = prefetch_inputs()
    return {
        **inputs,
        "translator": bridge_run_dir(RESULTS, BRIDGE_TRAINED_BY[wildcards.bridge_run]) / TRANSLATOR_FILE,
        "source_model": bridge_model_inputs(settings["source"]),
        "target_model": bridge_model_inputs(settings["target"]),
        "data": bridge_dataset_inputs(settings["dataset"]),
    }


def bridge_outputs():
    """Every bridge run's trained files (a reused run points at the run that trained for it), and the
    inference benchmark of bridge.inference.run (default the first run with a fixed K)."""
    outputs = [bridge_run_dir(RESULTS, run) / SUMMARY_FILE for run in BRIDGE_TRAINED_RUNS]
    if inference_run(BRIDGE, BRIDGE_RUNS):
        outputs.append(bridge_inference_dir(RESULTS, inference_run(BRIDGE, BRIDGE_RUNS)) / SUMMARY_FILE)
    return outputs + bridge_report_outputs()


def bridge_report_inputs():
    """The bridge report's input key -> file: every run's summary (legacy imports included) and the benchmark."""
    benchmarked = [inference_run(BRIDGE, BRIDGE_RUNS)] if inference_run(BRIDGE, BRIDGE_RUNS) else []
    return bridge_report_paths(RESULTS, BRIDGE_TRAINED_BY, BRIDGE_LEGACY, benchmarked)


def bridge_report_outputs():
    """The bridge report's tables, figures and RESULTS.md; none without the bridge study."""
    return [path for files in BRIDGE_REPORT_FILES.values() for path in files] if BRIDGE_ACTIVE else []
