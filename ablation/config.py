"""Config validation: JSON schema plus the checks a schema cannot express, before any job runs.

Like Snakemake's ``validate(config, schema, set_default=True)``, but every problem is reported
as one line naming the offending key and what is allowed there.
"""

from __future__ import annotations

import copy
import functools
from pathlib import Path

import jsonschema
import yaml

from ablation.bridge.roles import report_problems
from ablation.bridge.settings import run_problems
from ablation.seed_sweep import sweep_problems
from ablation.study import resolve_tasks
from ablation.tracking import tracking_problems

SCHEMA_PATH = Path(__file__).resolve().parent.parent / "workflow" / "schemas" / "config.schema.yaml"


class ConfigError(ValueError):
    """The config does not match the schema; the message lists every offending key."""


def load_schema(path: str | Path = SCHEMA_PATH) -> dict:
    """The schema, parsed once per process (the Snakefile asks several times); a fresh copy each call."""
    return copy.deepcopy(_parsed_schema(str(path)))


@functools.cache
def _parsed_schema(path: str) -> dict:
    return yaml.safe_load(Path(path).read_text())


def fill_defaults(config: dict, schema: dict, root: dict | None = None) -> None:
    """Set missing keys to their schema default, descending into objects and local ``$ref``s."""
    root = root or schema
    for key, subschema in schema.get("properties", {}).items():
        if key not in config and "default" in subschema:
            default = subschema["default"]
            config[key] = dict(default) if isinstance(default, dict) else default
        if "$ref" in subschema:
            subschema = {**_resolve_ref(root, subschema["$ref"]), **subschema}
        if isinstance(config.get(key), dict) and "properties" in subschema:
            fill_defaults(config[key], subschema, root)
        entries = subschema.get("additionalProperties")
        # a map of plain entries (bridge.models); maps of run settings ($ref) inherit instead
        if isinstance(config.get(key), dict) and isinstance(entries, dict) and "properties" in entries:
            for entry in config[key].values():
                if isinstance(entry, dict):
                    fill_defaults(entry, entries, root)
        items = subschema.get("items")
        # a list of plain entries (bridge.legacy)
        if isinstance(config.get(key), list) and isinstance(items, dict) and "properties" in items:
            for entry in config[key]:
                if isinstance(entry, dict):
                    fill_defaults(entry, items, root)


def sort_keys(node):
    """Order every mapping's keys, in place, so rules' params do not change when a YAML file is reordered."""
    if isinstance(node, dict):
        items = sorted(node.items())
        node.clear()
        node.update((key, sort_keys(value)) for key, value in items)
    elif isinstance(node, list):
        node[:] = [sort_keys(item) for item in node]
    return node


def _key_path(path) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "<top level>"


def describe_error(error: jsonschema.ValidationError, schema: dict) -> str:
    """One line: which key, what is wrong, what is allowed."""
    key = _key_path(error.absolute_path)
    if error.validator in ("additionalProperties", "unevaluatedProperties"):
        allowed = sorted(error.schema.get("properties", {}))
        if "$ref" in error.schema:
            allowed = sorted(set(allowed) | set(_resolve_ref(schema, error.schema["$ref"]).get("properties", {})))
        unknown = sorted(set(error.instance) - set(allowed))
        prefix = "" if key == "<top level>" else f"{key}."
        names = ", ".join(f"'{prefix}{name}'" for name in unknown)
        return f"unknown config key {names}; allowed keys here: {', '.join(allowed)}"
    if error.validator == "enum":
        allowed = ", ".join(str(value) for value in error.validator_value)
        return f"config key '{key}': {error.instance!r} is not allowed; allowed: {allowed}"
    if error.validator == "not":
        return f"config key '{key}': {error.instance!r} is not allowed ({error.schema.get('description', 'a reserved value')})"
    if error.validator == "type":
        expected = error.validator_value
        expected = " or ".join(expected) if isinstance(expected, list) else expected
        return f"config key '{key}': expected {expected}, got {type(error.instance).__name__} {error.instance!r}"
    return f"config key '{key}': {error.message}"


def _resolve_ref(schema: dict, ref: str) -> dict:
    """The subschema a local ``#/...`` reference points to."""
    node = schema
    for part in ref.removeprefix("#/").split("/"):
        node = node[part]
    return node


def cross_key_problems(config: dict, schema: dict) -> list[str]:
    """Problems no schema can see: values that must agree with other keys."""
    problems = []
    if "bridge" in config["studies"]:
        problems += run_problems(config["bridge"], schema, config["seed"]) + report_problems(config["bridge"])
    try:
        resolve_tasks(config["eval"]["task_set"], config["eval"]["tasks"])
    except ValueError as error:
        problems.append(f"config key 'eval.tasks': {error}")
    runs = config["finetune"]["runs"]
    replaying = [run for run in runs if finetune_settings(config, run)["replay_fraction"] > 0]
    if replaying and config["finetune"]["replay_corpus"] is None and config["finetune"]["dataset"] != "embedded":
        problems.append(
            f"config key 'finetune.replay_corpus': run(s) {', '.join(replaying)} replay pre-training text, "
            "but only the 'embedded' dataset has a corpus of its own; name a text file"
        )
    problems += sweep_problems(config) + tracking_problems(config)
    if config["planner"] is not None and config["planner"]["run"] not in runs:
        problems.append(
            f"config key 'planner.run': {config['planner']['run']!r} is not a fine-tune run; configured: {', '.join(runs) or 'none'}"
        )
    return problems


def validate_config(config: dict, schema_path: str | Path = SCHEMA_PATH) -> dict:
    """Complete ``config`` with defaults in place and check it; raise ``ConfigError`` listing every problem."""
    schema = load_schema(schema_path)
    fill_defaults(config, schema)
    validator = jsonschema.Draft202012Validator(schema)
    problems = sorted({describe_error(error, schema) for error in validator.iter_errors(config)})
    if not problems:
        problems += cross_key_problems(config, schema)
    if problems:
        raise ConfigError("invalid config:\n  " + "\n  ".join(problems))
    return sort_keys(config)


def finetune_settings(config: dict, run: str, schema_path: str | Path = SCHEMA_PATH) -> dict:
    """A run's settings: schema defaults, then the config's fine-tune defaults, then the run's overrides.

    Returned as a plain dict (Snakemake params); ``FinetuneSettings(**settings)`` checks it.
    """
    runs = config["finetune"]["runs"]
    if run not in runs:
        raise ValueError(f"unknown fine-tune run {run!r}; configured: {', '.join(runs) or 'none'}")
    schema = load_schema(schema_path)
    settings = copy.deepcopy({**config["finetune"]["defaults"], **runs[run]})
    fill_defaults(settings, schema["$defs"]["finetune_settings"], schema)  # nested ones too (auto_stop.mode)
    return settings
