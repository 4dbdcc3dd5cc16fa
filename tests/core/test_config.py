"""Config validation: defaults filled in, every bad key named with what is allowed."""

from __future__ import annotations

import copy
import importlib.util
from pathlib import Path

import pytest
import yaml

from ablation.config import ConfigError, check_config_files, finetune_settings, validate_config
from ablation.prefill.seed_sweep import seed_results_dir, seed_study_config, sweep_seeds
from ablation.tracking import DEFAULT_TRACKERS

REPOSITORY = Path(__file__).resolve().parents[2]
CONFIGS = [REPOSITORY / "config.yaml", REPOSITORY / "presets" / "ministral-3b.yaml", REPOSITORY / "tests" / "configs" / "micro.yaml"]


def load(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


@pytest.mark.parametrize("path", CONFIGS, ids=lambda path: path.name)
def test_shipped_configs_are_valid(path):
    validate_config(load(path))


def test_a_tracker_that_is_not_installed_is_named_with_its_package():
    if importlib.util.find_spec("mlflow") is not None:
        pytest.skip("mlflow is installed here")
    message = invalid(lambda config: config.update(tracking=["tensorboard", "mlflow"]))
    assert "config key 'tracking' names 'mlflow', but its package is not installed: pip install mlflow" in message
    assert "names 'tensorboard'" not in message  # the installed one is fine
    assert "'tracking[0]'" in invalid(lambda config: config.update(tracking=["comet"]))


def test_the_tracking_default_is_tensorboard_in_schema_and_library():
    assert validate_config({})["tracking"] == list(DEFAULT_TRACKERS) == ["tensorboard"]


def test_defaults_are_filled_in():
    config = validate_config({"eval": {"masks": ["causal"]}})
    assert config["model"]["id"] == "embedded"
    assert config["eval"]["task_set"] == "tiny"
    assert config["world"]["model"]["num_hidden_layers"] >= 1
    assert config["eval"]["masks"] == ["causal"]


def invalid(change) -> str:
    config = copy.deepcopy(load(REPOSITORY / "config.yaml"))
    change(config)
    with pytest.raises(ConfigError) as raised:
        validate_config(config)
    return str(raised.value)


def test_a_misspelled_key_is_named_with_the_allowed_keys():
    message = invalid(lambda config: config["eval"].update(maks=["causal"]))
    assert "'eval.maks'" in message and "masks" in message


def test_a_misspelled_top_level_key_is_named():
    message = invalid(lambda config: config.update(modle={"id": "x"}))
    assert "'modle'" in message and "model" in message


def test_a_wrong_type_names_the_key_and_the_expected_type():
    message = invalid(lambda config: config["eval"].update(limit="ten"))
    assert "'eval.limit'" in message and "integer" in message and "'ten'" in message


def test_an_unknown_mask_names_the_allowed_modes():
    message = invalid(lambda config: config["eval"].update(masks=["causal", "prefill"]))
    assert "'eval.masks[1]'" in message and "prefill_bidir" in message and "full_bidir" in message


def test_an_unknown_task_names_the_allowed_tasks():
    message = invalid(lambda config: config["eval"].update(tasks=["tiny_piqa", "mmlu"]))
    assert "'eval.tasks[1]'" in message and "tiny_hellaswag" in message


def test_a_task_from_the_other_task_set_is_refused():
    message = invalid(lambda config: config["eval"].update(task_set="tiny", tasks=["piqa"]))
    assert "'eval.tasks'" in message and "tiny_piqa" in message


def test_the_original_task_set_takes_its_own_tasks_only():
    config = validate_config({"eval": {"task_set": "original", "tasks": ["original_piqa"]}})
    assert config["eval"]["tasks"] == ["original_piqa"]
    message = invalid(lambda config: config["eval"].update(task_set="original", tasks=["piqa"]))
    assert "'eval.tasks'" in message and "original_piqa" in message


def test_a_misspelled_fine_tune_hyperparameter_is_named():
    message = invalid(lambda config: config["finetune"]["runs"]["stage3a_causal"].update(lerning_rate=1e-3))
    assert "'finetune.runs.stage3a_causal.lerning_rate'" in message and "learning_rate" in message


def test_a_fine_tune_run_needs_a_train_mask():
    message = invalid(lambda config: config["finetune"]["runs"].update(extra={"max_steps": 5}))
    assert "finetune.runs.extra" in message and "train_mask" in message


def test_stop_rules_take_the_originals_mode_unless_told_and_refuse_an_unknown_one():
    preset = validate_config(load(REPOSITORY / "presets" / "ministral-3b.yaml"))
    stage5 = finetune_settings(preset, "stage5_6000")
    assert stage5["auto_stop"]["mode"] == "ignore_before_min_steps"
    assert stage5["kill_if_no_learning"]["mode"] == "first_log_to_best"
    plateau = {"patience_evals": 4, "min_delta": 0.003, "min_steps": 600, "mode": "sometimes"}
    message = invalid(lambda config: config["finetune"]["runs"]["stage3a_causal"].update(auto_stop=plateau))
    assert "'finetune.runs.stage3a_causal.auto_stop.mode'" in message and "count_before_min_steps" in message
    message = invalid(lambda config: config["finetune"]["defaults"].update(kill_if_no_learning={"after_steps": 1, "min_improvement": 0.1, "mode": "x"}))
    assert "'finetune.defaults.kill_if_no_learning.mode'" in message and "first_log_to_best" in message


def test_an_unknown_data_preparation_choice_is_named():
    message = invalid(lambda config: config["finetune"]["defaults"].update(long_rows="cut"))
    assert "'finetune.defaults.long_rows'" in message and "skip, truncate" in message
    message = invalid(lambda config: config["finetune"]["runs"]["stage3a_causal"].update(empty_responses="drop"))
    assert "'finetune.runs.stage3a_causal.empty_responses'" in message and "skip, keep" in message


def test_every_problem_is_reported_at_once():
    def break_twice(config):
        config["eval"]["batch_size"] = 0
        config["model"]["dtype"] = "float8"

    message = invalid(break_twice)
    assert "'eval.batch_size'" in message and "'model.dtype'" in message


def test_key_order_does_not_matter():
    config = load(REPOSITORY / "config.yaml")
    reordered = yaml.safe_load(yaml.safe_dump(config, sort_keys=True))
    assert repr(validate_config(config)) == repr(validate_config(reordered))


def test_the_planner_must_name_a_configured_run():
    def plan_unknown_run(config):
        config["planner"] = {"run": "stage9", "measured_on": {"gpu": "A100_SXM4"}, "steps": 10,
                             "offers": [{"name": "a", "gpu": "A100_SXM4", "gpus": 1, "price_per_hour": 1.0}]}

    message = invalid(plan_unknown_run)
    assert "'planner.run'" in message and "stage3a_causal" in message


def test_replay_needs_a_corpus_outside_the_tiny_world_and_a_share_below_one(tmp_path):
    def hub_dataset(config):
        config["finetune"]["dataset"] = "yahma/alpaca-cleaned"

    assert "'finetune.replay_corpus'" in invalid(hub_dataset) and "stage3b_prefix_lm" in invalid(hub_dataset)
    assert "replay_fraction" in invalid(lambda config: config["finetune"]["defaults"].update(replay_fraction=1.0))

    def named_corpus(config):
        hub_dataset(config)
        config["finetune"]["replay_corpus"] = str(tmp_path / "pretraining.txt")

    (tmp_path / "pretraining.txt").write_text("A document.\n")
    config = copy.deepcopy(load(REPOSITORY / "config.yaml"))
    named_corpus(config)
    validate_config(config)


def test_a_seed_sweep_needs_the_prefill_study_and_distinct_seeds():
    assert "'seeds'" in invalid(lambda config: config.update(seeds=[1, 2], studies=["bridge"]))
    assert "'seeds'" in invalid(lambda config: config.update(seeds=[1, 1]))
    assert "'seeds[0]'" in invalid(lambda config: config.update(seeds=[-1, 2]))


def test_each_seed_of_a_sweep_gets_its_own_config_and_directories():
    config = validate_config(load(REPOSITORY / "config.yaml") | {"seeds": [1234, 1235]})
    assert sweep_seeds(config) == [1234, 1235]
    assert seed_results_dir(config, 1234) == Path("results")  # the config's own study
    with pytest.raises(ValueError, match="config's own study"):
        seed_study_config(config, 1234)
    other = validate_config(seed_study_config(config, 1235))
    assert (other["seed"], other["world"]["seed"], other["seeds"]) == (1235, 1235, None)
    assert (other["results_dir"], other["logs_dir"]) == ("results/seeds/1235", "logs/seeds/1235")
    assert other["studies"] == ["prefill_mask"] and other["finetune"] == config["finetune"]
    assert config["seed"] == 1234 and config["world"]["seed"] == 1234  # the original is left as it was
    assert sweep_seeds(config | {"seeds": [1234]}) == []


def test_the_three_seed_overlay_sweeps_the_tiny_default():
    config = validate_config(load(REPOSITORY / "config.yaml") | load(REPOSITORY / "presets" / "tiny-three-seeds.yaml"))
    assert sweep_seeds(config) == [1234, 1235, 1236]
    assert [seed_results_dir(config, seed) for seed in (1234, 1236)] == [Path("results"), Path("results/seeds/1236")]


def test_the_tuning_grid_names_a_bad_key_or_value():
    message = invalid(lambda config: config["finetune"].update(tuning={"grid": {"learning_rates": [1e-3]}}))
    assert "'finetune.tuning.grid.learning_rates'" in message and "learning_rate" in message
    message = invalid(lambda config: config["finetune"].update(tuning={"grid": {"replay_fraction": [0.5, 1.0]}}))
    assert "'finetune.tuning.grid.replay_fraction[1]'" in message and "0.95" in message
    message = invalid(lambda config: config["finetune"].update(tuning={"grid": {"max_steps": []}}))
    assert "'finetune.tuning.grid.max_steps'" in message


def test_the_tuning_grid_defaults_try_the_configured_fine_tune():
    """The default grid contains the shipped settings, so tuning can confirm or replace them."""
    config = validate_config(load(REPOSITORY / "config.yaml"))
    grid, defaults = config["finetune"]["tuning"]["grid"], config["finetune"]["defaults"]
    assert all(defaults[key] in grid[key] for key in ("learning_rate", "max_steps", "replay_fraction"))


@pytest.mark.parametrize(
    ("text", "named"),
    [("", "is empty"), ("{}\n", "is empty"), ("- causal\n", "holds a list"), ("seed: 1\nmodel:\n  id: [unclosed\n", "line 4: not valid YAML")],
    ids=["empty", "empty-mapping", "not-a-mapping", "malformed"],
)
def test_a_config_file_naming_no_setting_is_refused_naming_the_file(tmp_path, text, named):
    path = tmp_path / "experiment.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=f"config file {path}.*{named}"):
        check_config_files([path])
    check_config_files([REPOSITORY / "config.yaml"])


def test_missing_local_paths_are_named_before_any_job(tmp_path):
    """A path-looking value is a local path, never a hub id: missing, it stops validation naming its key."""
    def bad_paths(config):
        config["model"]["id"] = "/nonexistent/model"
        config["bridge"]["models"]["mistral_tiny"]["id"] = "./missing_bridge_model"
        config["bridge"]["datasets"]["gsm8k"]["path"] = "/nonexistent/gsm8k"
        config["finetune"]["dataset"] = str(tmp_path / "instructions.jsonl")
        config["finetune"]["replay_corpus"] = str(tmp_path / "corpus.txt")

    message = invalid(bad_paths)
    assert "'model.id': the local model directory /nonexistent/model does not exist" in message
    assert "'bridge.models.mistral_tiny.id': the local model directory ./missing_bridge_model does not exist" in message
    assert "'bridge.datasets.gsm8k.path': the split file /nonexistent/gsm8k/train.jsonl does not exist" in message
    assert f"'finetune.dataset': the instruction data file {tmp_path / 'instructions.jsonl'} does not exist" in message
    assert f"'finetune.replay_corpus': the replay corpus {tmp_path / 'corpus.txt'} does not exist" in message


def test_a_local_model_without_its_files_is_named_and_a_complete_one_passes(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    message = invalid(lambda config: config["model"].update(id=str(tmp_path)))
    assert f"'model.id': the local model directory {tmp_path} lacks weights" in message and "a tokenizer" in message
    (tmp_path / "model.safetensors").write_bytes(b"")
    (tmp_path / "tokenizer.json").write_text("{}")
    config = load(REPOSITORY / "config.yaml")
    config["model"]["id"] = str(tmp_path)
    validate_config(config)


def test_nan_and_infinite_numbers_are_refused_wherever_they_are():
    message = invalid(lambda config: config["finetune"]["runs"]["stage3b_prefix_lm"].update(learning_rate=float("nan")))
    assert "'finetune.runs.stage3b_prefix_lm.learning_rate': nan is not a finite number" in message
    message = invalid(lambda config: config["world"].setdefault("model", {}).update(rope_theta=float("inf")))
    assert "'world.model.rope_theta': inf is not a finite number" in message


def test_token_budgets_beyond_the_context_window_are_refused(tmp_path):
    def long_budgets(config):
        config["finetune"]["runs"]["stage3b_prefix_lm"]["max_seq_len"] = 100000
        config["bridge"]["defaults"]["max_prompt_tokens"] = 100000

    message = invalid(long_budgets)
    assert "'finetune.runs.stage3b_prefix_lm.max_seq_len': 100000 tokens exceed the model's context window of 256" in message
    assert "max_prompt_tokens': 100000 tokens exceed the source model 'mistral_tiny''s context window of 256" in message
    # a local model's window comes from its config.json
    (tmp_path / "config.json").write_text('{"max_position_embeddings": 512}')
    (tmp_path / "model.safetensors").write_bytes(b"")
    (tmp_path / "tokenizer.json").write_text("{}")
    message = invalid(lambda config: config["model"].update(id=str(tmp_path)) or config["finetune"]["defaults"].update(max_seq_len=1024))
    assert "max_seq_len': 1024 tokens exceed the model's context window of 512" in message


def test_tiny_models_whose_heads_do_not_divide_their_widths_are_refused():
    message = invalid(lambda config: config["world"].setdefault("model", {}).update(hidden_size=100, num_attention_heads=8))
    assert "'world.model.num_attention_heads': 8 heads do not divide hidden_size 100" in message
    message = invalid(lambda config: config["bridge"]["world"]["models"]["bridge_source_model"]["model"].update(num_attention_heads=4, num_key_value_heads=3))
    assert "'bridge.world.models.bridge_source_model.model.num_key_value_heads': 3 key/value heads do not divide num_attention_heads 4" in message


def test_a_bridge_lm_block_must_name_every_key():
    message = invalid(lambda config: config["bridge"]["world"]["models"]["bridge_model"].pop("architecture"))
    assert "bridge.world.models.bridge_model" in message and "architecture" in message
    message = invalid(lambda config: config["bridge"]["world"]["models"]["bridge_model"].update(architecture="gpt2"))
    assert "bridge.world.models.bridge_model.architecture" in message and "mistral" in message
