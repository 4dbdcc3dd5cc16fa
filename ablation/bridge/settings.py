"""A bridge run's effective settings: schema defaults, then ``bridge.defaults``, then the run it
builds on (``base:``), then its own overrides; and which runs are the same experiment.

Seed 004 reuses 1a as 2c rather than training it again: here any two runs whose effective
settings are equal share one trained translator, the first of them by name (validation sorts
the config's keys, so the choice never depends on how a YAML file is laid out). Kept free of
heavy imports: the Snakefile resolves runs while it parses.
"""

from __future__ import annotations

import hashlib
import json

from ablation.references import EMBEDDED_PREFIX, embedded_model_name

# the original's tokenizer caps under token_layout 'original': its trained text, and its KL baseline (kl_max_length)
ORIGINAL_TEXT_MAX_TOKENS = 8192
ORIGINAL_KL_MAX_TOKENS = 512

TRANSLATORS = ("cross", "dit")
PROMPT_MODES = ("soft_only", "soft_plus_text")
RUN_META_KEYS = ("base", "description")  # name a run's lineage and purpose, not its experiment
EMBEDDED_MODELS = ("base_model", "bridge_model", "bridge_source_model")


def schema_run_defaults(schema: dict) -> dict:
    properties = schema["$defs"]["bridge_run_settings"]["properties"]
    return {key: value["default"] for key, value in properties.items() if "default" in value}


def _lineage(runs: dict, run: str) -> list[str]:
    """``run`` and the runs it builds on, nearest first; a cycle or a missing base is an error."""
    chain = [run]
    while (base := runs[chain[-1]].get("base")) is not None:
        if base not in runs:
            raise ValueError(f"config key 'bridge.runs.{chain[-1]}.base': {base!r} is not a bridge run; configured: {', '.join(runs)}")
        if base in chain:
            raise ValueError(f"config key 'bridge.runs.{run}.base': runs build on each other in a cycle: {' -> '.join(chain + [base])}")
        chain.append(base)
    return chain


def default_processes(config: dict) -> int:
    """The processes a bridge run without its own ``processes`` trains on: one per GPU of ``resources.bridge_train``."""
    return max(1, config["resources"]["bridge_train"]["gpus"])


def run_settings(bridge: dict, run: str, schema: dict, seed: int, processes: int = 1) -> dict:
    """The settings ``run`` trains with; ``prompt_mode_forced`` records the seeds' prompt-teacher fix
    (``prompt_teacher_forces_soft_only: false`` turns it off, to re-run the original's first swap);
    ``processes`` is the run's own, else the given default (``default_processes``)."""
    runs = bridge["runs"]
    if run not in runs:
        raise ValueError(f"unknown bridge run {run!r}; configured: {', '.join(runs) or 'none'}")
    settings = {**schema_run_defaults(schema), **bridge["defaults"]}
    for name in reversed(_lineage(runs, run)):
        settings.update({key: value for key, value in runs[name].items() if key not in RUN_META_KEYS})
    settings["description"] = runs[run].get("description", "")
    if settings["seed"] is None:
        settings["seed"] = seed
    if settings["processes"] is None:
        settings["processes"] = processes
    # a prompt-supervised DiT reproduces the question: reading it twice hurt the target (seed 003)
    settings["prompt_mode_forced"] = (
        settings["prompt_teacher_forces_soft_only"] and settings["dit_teacher"] == "prompt" and settings["prompt_mode"] != "soft_only"
    )
    if settings["prompt_mode_forced"]:
        settings["prompt_mode"] = "soft_only"
    return settings


def experiment_key(settings: dict) -> str:
    """What makes two runs the same experiment: every setting but the description and the record of a forced prompt mode."""
    return json.dumps({k: v for k, v in settings.items() if k not in ("description", "prompt_mode_forced")}, sort_keys=True, default=str)


def source_state_key(settings: dict, model: dict, dataset_source: dict, eval_settings: dict, device: str) -> dict:
    """Everything the source's states of a run's training and eval prompts depend on: runs with
    equal keys share one source-state cache, and changing any of it builds another."""
    return {
        "source": {name: model.get(name) for name in ("id", "revision", "dtype")},
        "source_layer": settings["source_layer"],
        "dataset": settings["dataset"],
        "dataset_source": dataset_source,
        "train_prompt": settings["train_prompt"],
        "max_prompt_tokens": settings["max_prompt_tokens"],
        "eval_prompts": {name: eval_settings[name] for name in ("samples", "few_shot", "few_shot_seed")},
        "precision": settings["precision"],
        "device": device,
        **_layout(settings),
    }


def _layout(settings: dict) -> dict:
    """The original's token layout as part of a cache key: its runs read no cache, and the plan never
    groups them with ours; nothing for ours, so the keys of caches already built stay what they were."""
    return {"token_layout": settings["token_layout"]} if settings["token_layout"] != "ours" else {}


def kl_baseline_key(settings: dict, model: dict, dataset_source: dict, eval_settings: dict, device: str) -> dict:
    """Everything the target's KL baseline over a run's training rows depends on; the prompt (its
    form, truncation and shots) only when the baseline reads it (``kl_baseline: text_prompt``)."""
    reads_prompt = settings["kl_baseline"] == "text_prompt"
    return {
        "target": {name: model.get(name) for name in ("id", "revision", "dtype")},
        "dataset": settings["dataset"],
        "dataset_source": dataset_source,
        "kl_baseline": settings["kl_baseline"],
        "train_prompt": settings["train_prompt"] if reads_prompt else None,
        "max_prompt_tokens": settings["max_prompt_tokens"] if reads_prompt else None,
        "shots": {name: eval_settings[name] for name in ("few_shot", "few_shot_seed")} if reads_prompt else None,
        **{name: settings[name] for name in ("max_answer_tokens", "train_answer_eos", "kl_tokens", "precision")},
        "device": device,
        **_layout(settings),
    }


def source_state_name(key: dict) -> str:
    """The cache directory's name: a short hash of the key."""
    return hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:16]


def resolve_runs(bridge: dict, schema: dict, seed: int, processes: int = 1) -> dict[str, dict]:
    """Every run's effective settings, by run name (``processes``: the default, ``default_processes``)."""
    return {run: run_settings(bridge, run, schema, seed, processes) for run in bridge["runs"]}


def forced_prompt_modes(resolved: dict[str, dict]) -> dict[str, bool]:
    """Each run -> whether the prompt-teacher fix forced its prompt mode. A run that reuses another's
    translator (``trained_run_of``) has its own answer: ``experiment_key`` leaves it out."""
    return {run: settings["prompt_mode_forced"] for run, settings in resolved.items()}


def trained_run_of(resolved: dict[str, dict]) -> dict[str, str]:
    """Each run -> the run whose translator it uses: itself, or the first earlier run with equal settings."""
    first_by_key: dict[str, str] = {}
    owner = {}
    for run, settings in resolved.items():
        owner[run] = first_by_key.setdefault(experiment_key(settings), run)
    return owner


def inference_run(bridge: dict, resolved: dict[str, dict] | None = None) -> str | None:
    """The run the inference benchmark reads: ``bridge.inference.run``, or the first run with a fixed K
    (``resolved``: the runs' effective settings; the token-budget baseline spends K tokens on text, and
    a run with ``soft_tokens: -1`` has none to spend); None without such a run."""
    if bridge["inference"]["run"]:
        return bridge["inference"]["run"]
    return next((run for run in bridge["runs"] if resolved is None or resolved[run]["soft_tokens"] > 0), None)


def run_problems(bridge: dict, schema: dict, seed: int) -> list[str]:
    """Problems the schema cannot see: lineage, names that must exist, shapes that must divide."""
    problems = []
    models, datasets = bridge["models"], bridge["datasets"]
    if bridge["eval"]["samples"] < bridge["eval"]["batch_size"]:
        problems.append(f"config key 'bridge.eval.samples': {bridge['eval']['samples']} is fewer than one batch "
                        f"(bridge.eval.batch_size {bridge['eval']['batch_size']})")
    benchmarked = bridge["inference"]["run"]
    if benchmarked is not None and benchmarked not in bridge["runs"]:
        problems.append(f"config key 'bridge.inference.run': {benchmarked!r} is not a bridge run; configured: {', '.join(bridge['runs']) or 'none'}")
    for name, model in models.items():
        embedded = embedded_model_name(model["id"])
        if embedded is not None and embedded not in EMBEDDED_MODELS:
            problems.append(f"config key 'bridge.models.{name}.id': unknown embedded model {model['id']!r}; allowed: "
                            + ", ".join(EMBEDDED_PREFIX + m for m in EMBEDDED_MODELS))
    resolved = {}
    for run in bridge["runs"]:
        try:
            settings = resolved[run] = run_settings(bridge, run, schema, seed)
        except ValueError as error:
            problems.append(str(error))
            continue
        where = f"config key 'bridge.runs.{run}"
        for role in ("source", "target"):
            if settings[role] not in models:
                problems.append(f"{where}.{role}': {settings[role]!r} is not in bridge.models; configured: {', '.join(models) or 'none'}")
        if settings["source"] == settings["target"] and settings["source"] in models:
            problems.append(f"{where}': source and target are the same model {settings['source']!r}")
        if settings["dataset"] not in datasets:
            problems.append(f"{where}.dataset': {settings['dataset']!r} is not in bridge.datasets; configured: {', '.join(datasets) or 'none'}")
        if settings["dit_cfg"] > 0 and settings["dit_drop_cond"] == 0:
            problems.append(f"{where}.dit_cfg': guidance needs an unconditional velocity; set dit_drop_cond > 0")
        if settings["translator"] == "dit" and settings["dit_flow_warmup_steps"] > 0 and settings["translator_mode_in_training"] == "eval":
            problems.append(f"{where}.dit_flow_warmup_steps': {settings['dit_flow_warmup_steps']} flow-only steps would train nothing with "
                            "translator_mode_in_training 'eval' (a DiT in eval mode samples from noise and has no flow loss); "
                            "set dit_flow_warmup_steps 0 or translator_mode_in_training 'train'")
        if settings["token_layout"] == "original":
            needs = {"train_layout": "answer_alone", "train_answer_eos": False, "kl_baseline": "answer_alone", "decode_loss_weight": 0}
            wrong = [f"{key} {settings[key]!r}" for key, value in needs.items() if settings[key] != value]
            if wrong:
                problems.append(f"{where}.token_layout': 'original' trains on the original's [BOS answer] text with no decode loss; it needs "
                                f"train_layout 'answer_alone', train_answer_eos false, kl_baseline 'answer_alone' and decode_loss_weight 0, "
                                f"not {', '.join(wrong)}")  # fmt: skip
        for heads, width in (("heads", "bottleneck"), ("dit_heads", "dit_dim")):
            if settings[width] % settings[heads]:
                problems.append(f"{where}.{heads}': {settings[heads]} does not divide {width} {settings[width]}")
        if run == bridge["inference"]["run"] and settings["soft_tokens"] < 0:
            problems.append(f"{where}.soft_tokens': the inference benchmark (bridge.inference.run) needs a fixed K "
                            "for its token-budget baseline; benchmark a run with soft_tokens > 0")
    benchmarked = inference_run(bridge, resolved) if len(resolved) == len(bridge["runs"]) else None
    dataset = resolved[benchmarked]["dataset"] if benchmarked in resolved else None
    if dataset in datasets and (datasets[dataset]["prompts"], datasets[dataset]["scoring"]) != ("own", "own"):
        problems.append(f"config key 'bridge.datasets.{dataset}': the inference benchmark (of run {benchmarked!r}) reads a task in "
                        "its own prompts and scoring (prompts: own, scoring: own); benchmark a run on another task")
    return problems
