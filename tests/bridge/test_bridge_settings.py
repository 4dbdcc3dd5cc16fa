"""Bridge config: run inheritance, reuse of equal runs, the prompt-teacher fix, and errors that name the key."""

from __future__ import annotations

import copy

import pytest
import yaml

from ablation.bridge.settings import inference_run, resolve_runs, run_settings, trained_run_of
from ablation.config import ConfigError, load_schema, validate_config

MICRO_BRIDGE = yaml.safe_load(open("tests/configs/micro_bridge.yaml"))


def config_with(**bridge_changes) -> dict:
    config = copy.deepcopy(MICRO_BRIDGE)
    config["bridge"].update(bridge_changes)
    return config


def test_a_run_inherits_from_its_base_then_overrides():
    runs = {"one": {"soft_tokens": 6, "lr": 0.01}, "two": {"base": "one", "soft_tokens": 8}, "three": {"base": "two", "depth": 3}}
    config = validate_config(config_with(runs=runs))
    settings = resolve_runs(config["bridge"], load_schema(), config["seed"])
    assert settings["three"]["soft_tokens"] == 8 and settings["three"]["lr"] == 0.01 and settings["three"]["depth"] == 3
    assert settings["one"]["depth"] == config["bridge"]["defaults"]["depth"]
    assert settings["two"]["translator"] == "cross"  # from bridge.defaults
    assert settings["one"]["seed"] == 7  # the config's seed when the run names none


def test_runs_with_equal_settings_share_one_translator():
    runs = {"1a": {"description": "stable"}, "2a": {"soft_tokens": 2}, "2c": {"base": "1a", "description": "reuse 1a"}, "2d": {"soft_tokens": 4}}
    config = validate_config(config_with(runs=runs))
    owner = trained_run_of(resolve_runs(config["bridge"], load_schema(), config["seed"]))
    # 2d spells out 1a's soft_tokens (4, from the defaults): the same experiment too
    assert owner == {"1a": "1a", "2a": "2a", "2c": "1a", "2d": "1a"}


def test_a_prompt_teacher_forces_soft_only_and_records_it():
    config = validate_config(config_with(runs={"swap": {"translator": "dit", "dit_teacher": "prompt", "prompt_mode": "soft_plus_text"}}))
    settings = run_settings(config["bridge"], "swap", load_schema(), config["seed"])
    assert settings["prompt_mode"] == "soft_only" and settings["prompt_mode_forced"] is True

    # the run the fix forces to soft_only and the one that asked for it are one experiment (trained under the first name)
    runs = {"swap": {"translator": "dit", "dit_teacher": "prompt", "prompt_mode": "soft_plus_text"}, "fixed": {"base": "swap", "prompt_mode": "soft_only"}}
    config = validate_config(config_with(runs=runs))
    assert trained_run_of(resolve_runs(config["bridge"], load_schema(), config["seed"])) == {"swap": "fixed", "fixed": "fixed"}


def test_the_prompt_teacher_fix_can_be_turned_off_to_rerun_the_first_swap():
    run = {"translator": "dit", "dit_teacher": "prompt", "prompt_mode": "soft_plus_text", "prompt_teacher_forces_soft_only": False}
    config = validate_config(config_with(runs={"swap": run}))
    settings = run_settings(config["bridge"], "swap", load_schema(), config["seed"])
    assert settings["prompt_mode"] == "soft_plus_text" and settings["prompt_mode_forced"] is False


def test_the_benchmark_reads_a_run_with_a_fixed_k():
    runs = {"all_tokens": {"soft_tokens": -1}, "fixed": {"soft_tokens": 4}}
    config = validate_config(config_with(runs=runs))
    assert inference_run(config["bridge"], resolve_runs(config["bridge"], load_schema(), config["seed"])) == "fixed"
    config = validate_config(config_with(runs={"all_tokens": {"soft_tokens": -1}}))
    assert inference_run(config["bridge"], resolve_runs(config["bridge"], load_schema(), config["seed"])) is None
    with pytest.raises(ConfigError, match="'bridge.runs.all_tokens.soft_tokens': the inference benchmark .* needs a fixed K"):
        validate_config(config_with(runs=runs, inference={"run": "all_tokens"}))


def test_the_benchmark_refuses_a_task_shown_or_scored_as_another():
    runs = {"first": {}, "hotpot": {"dataset": "hotpotqa"}}  # the benchmark reads the first run by default
    original = {"path": "embedded", "eval_split": "validation", "prompts": "gsm8k", "scoring": "gsm8k"}
    config = validate_config(config_with(runs=runs, datasets={**MICRO_BRIDGE["bridge"]["datasets"], "hotpotqa": original}))
    assert config["bridge"]["datasets"]["gsm8k"] | {"prompts": "own", "scoring": "own"} == config["bridge"]["datasets"]["gsm8k"]
    with pytest.raises(ConfigError, match="'bridge.datasets.hotpotqa': the inference benchmark .of run 'hotpot'. reads a task in its own"):
        validate_config(config_with(runs=runs, datasets={"hotpotqa": original}, inference={"run": "hotpot"}))
    with pytest.raises(ConfigError, match="'bridge.datasets.hotpotqa.scoring': 'f1' is not allowed; allowed: own, gsm8k"):
        validate_config(config_with(datasets={"hotpotqa": {**original, "scoring": "f1"}}))


@pytest.mark.parametrize(
    ("runs", "message"),
    [
        ({"r": {"translator": "lstm"}}, "'bridge.runs.r.translator': 'lstm' is not allowed; allowed: cross, dit"),
        ({"r": {"prompt_mode": "text"}}, "'bridge.runs.r.prompt_mode': 'text' is not allowed; allowed: soft_only, soft_plus_text"),
        ({"r": {"soft_tokens": 0}}, "'bridge.runs.r.soft_tokens': 0 is not allowed"),
        ({"r": {"soft_tokens": -2}}, "'bridge.runs.r.soft_tokens': -2 is less than the minimum of -1"),
        ({"r": {"kl_baseline": "question"}}, "'bridge.runs.r.kl_baseline': 'question' is not allowed; allowed: text_prompt, answer_alone"),
        ({"r": {"adam_betas": [0.9]}}, "'bridge.runs.r.adam_betas': [0.9] is too short"),
        ({"r": {"final_weigths": "last"}}, "unknown config key 'bridge.runs.r.final_weigths'"),
        ({"r": {"base": "nowhere"}}, "'bridge.runs.r.base': 'nowhere' is not a bridge run"),
        ({"a": {"base": "b"}, "b": {"base": "a"}}, "runs build on each other in a cycle"),
        ({"r": {"target": "gpt"}}, "'bridge.runs.r.target': 'gpt' is not in bridge.models"),
        ({"r": {"target": "mistral_tiny"}}, "source and target are the same model"),
        ({"r": {"heads": 3}}, "'bridge.runs.r.heads': 3 does not divide bottleneck 16"),
        ({"r": {"lerning_rate": 1}}, "unknown config key 'bridge.runs.r.lerning_rate'"),
        ({"r": {"dit_cfg": 2.0}}, "'bridge.runs.r.dit_cfg': guidance needs an unconditional velocity"),
    ],
)
def test_bad_run_settings_name_the_key(runs, message):
    with pytest.raises(ConfigError, match=None) as error:
        validate_config(config_with(runs=runs))
    assert message in str(error.value)


def test_unknown_embedded_model_and_missing_dataset_are_named():
    config = config_with(models={"mistral_tiny": {"id": "embedded:huge_model"}, "llama_tiny": {"id": "embedded:bridge_model"}})
    with pytest.raises(ConfigError, match="'bridge.models.mistral_tiny.id': unknown embedded model 'embedded:huge_model'"):
        validate_config(config)
    config = config_with(datasets={"gsm8k": {"path": "embedded"}}, runs={"r": {"dataset": "hotpotqa"}})
    with pytest.raises(ConfigError, match="'bridge.runs.r.dataset': 'hotpotqa' is not in bridge.datasets"):
        validate_config(config)


def test_an_eval_set_smaller_than_a_batch_is_refused_before_any_job():
    with pytest.raises(ConfigError, match="'bridge.eval.samples': 2 is fewer than one batch"):
        validate_config(config_with(eval={"samples": 2, "batch_size": 4}))


def test_the_bridge_section_is_ignored_when_its_study_is_off():
    config = copy.deepcopy(MICRO_BRIDGE)
    config["studies"] = ["prefill_mask"]
    config["bridge"]["runs"] = {"r": {"target": "gpt"}}
    validate_config(config)


def test_the_original_settings_overlay_changes_only_its_named_keys_against_1a_and_3a():
    config = yaml.safe_load(open("config.yaml"))
    overlay = yaml.safe_load(open("presets/tiny-bridge-original-settings.yaml"))
    config["bridge"]["runs"].update(overlay["bridge"]["runs"])  # how snakemake merges the two --configfile files
    config = validate_config(config)
    runs = resolve_runs(config["bridge"], load_schema(), config["seed"])
    original = {"prompt_mode": "soft_plus_text", "soft_tokens": -1, "final_weights": "last"}
    expected = {"1a_soft_plus_text": ("1a", ["prompt_mode"]), "1a_k_prompt": ("1a", ["soft_tokens"]),
                "1a_final_last": ("1a", ["final_weights"]), "1a_original_settings": ("1a", list(original)),
                "3a_original_settings": ("3a", list(original))}  # fmt: skip
    assert set(overlay["bridge"]) == {"runs"} and set(overlay["bridge"]["runs"]) == set(expected)
    for run, (base, keys) in expected.items():
        changed = {key for key in runs[run] if key != "description" and runs[run][key] != runs[base][key]}
        assert changed == set(keys), run
        assert all(runs[run][key] == original[key] for key in keys) and runs[run]["description"]
    assert set(trained_run_of(runs).values()) >= set(expected)  # each is its own experiment, none reused
