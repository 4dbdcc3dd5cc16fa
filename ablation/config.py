"""Config validation: JSON schema plus the checks a schema cannot express, before any job runs.

Like Snakemake's ``validate(config, schema, set_default=True)``, but every problem is reported
as one line naming the offending key and what is allowed there.
"""

from __future__ import annotations

import copy
import functools
import json
import math
from collections.abc import Callable
from pathlib import Path

import jsonschema
import yaml

from ablation.references import embedded_model_name, is_local_reference
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


# Each study adds the checks only it knows (``register_study_checks``, called when its package is
# imported), so this module imports no study. A check takes (config, schema) and returns
# "config key '...': ..." problems; its budget check (``budgets``) runs only once no check found any.
STUDY_CHECKS: dict[str, tuple[Callable[[dict, dict], list[str]], Callable[[dict, dict], list[str]]]] = {}


def register_study_checks(
    study: str, checks: Callable[[dict, dict], list[str]], budgets: Callable[[dict, dict], list[str]]
) -> None:
    """Have ``validate_config`` run a study's cross-key ``checks`` and its token ``budgets``."""
    STUDY_CHECKS[study] = (checks, budgets)


def cross_key_problems(config: dict, schema: dict) -> list[str]:
    """Problems no schema can see: values that must agree with other keys."""
    problems = [problem for checks, _ in STUDY_CHECKS.values() for problem in checks(config, schema)]
    problems += tracking_problems(config)
    problems += shape_problems(config)
    if not problems:  # the budgets read the models' settings, which must be sound first
        problems += [problem for _, budgets in STUDY_CHECKS.values() for problem in budgets(config, schema)]
    return problems


def check_config_files(paths) -> None:
    """Refuse a config file that names no setting: empty, ``{}``, not a mapping, or not YAML.

    Such a file would otherwise run the schema's bare defaults as if they were an experiment.
    """
    for path in paths:
        try:
            content = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
        except yaml.YAMLError as error:
            mark = getattr(error, "problem_mark", None)
            where = f", line {mark.line + 1}" if mark is not None else ""
            raise ConfigError(f"config file {path}{where}: not valid YAML ({getattr(error, 'problem', None) or error})") from error
        if not isinstance(content, dict) or not content:
            what = "is empty" if content is None or content == {} else f"holds a {type(content).__name__}, not a mapping of config keys"
            raise ConfigError(
                f"config file {path} {what}; give the keys of an experiment (see config.yaml and presets/), "
                "or leave out --configfile to run config.yaml"
            )


def non_finite_problems(node, path=()) -> list[str]:
    """NaN and infinite numbers, anywhere: YAML's ``.nan`` passes every bound a schema sets."""
    if isinstance(node, float) and not math.isfinite(node):
        return [f"config key '{_key_path(path)}': {node} is not a finite number"]
    if isinstance(node, dict):
        return [problem for key, value in node.items() for problem in non_finite_problems(value, (*path, key))]
    if isinstance(node, list):
        return [problem for index, value in enumerate(node) for problem in non_finite_problems(value, (*path, index))]
    return []


def shape_problems(config: dict) -> list[str]:
    """Tiny-world models that cannot be built: query heads must divide the width, key/value heads the query heads."""
    problems = []
    shapes = [("world.model", config["world"]["model"])] + [
        (f"bridge.world.models.{name}.model", lm["model"]) for name, lm in config["bridge"]["world"]["models"].items()
    ]
    for key, shape in shapes:
        if shape["hidden_size"] % shape["num_attention_heads"]:
            problems.append(f"config key '{key}.num_attention_heads': {shape['num_attention_heads']} heads do not divide hidden_size {shape['hidden_size']}")
        elif shape["num_attention_heads"] % shape["num_key_value_heads"]:
            problems.append(f"config key '{key}.num_key_value_heads': {shape['num_key_value_heads']} key/value heads do not divide "
                            f"num_attention_heads {shape['num_attention_heads']}")
    return problems


def context_window(config: dict, model_id: str) -> int | None:
    """A model's context window where the config or a local model's config.json says it; None for a hub model."""
    embedded = "base_model" if model_id == "embedded" else embedded_model_name(model_id)
    if embedded is not None:
        lm = config["world"] if embedded == "base_model" else config["bridge"]["world"]["models"].get(embedded, {})
        return lm.get("model", {}).get("max_position_embeddings")
    config_file = Path(model_id).expanduser() / "config.json"
    if not is_local_reference(model_id) or not config_file.is_file():
        return None
    model_config = json.loads(config_file.read_text())
    window = model_config.get("max_position_embeddings") or (model_config.get("text_config") or {}).get("max_position_embeddings")
    return window if isinstance(window, int) else None


def validate_config(config: dict, schema_path: str | Path = SCHEMA_PATH) -> dict:
    """Complete ``config`` with defaults in place and check it; raise ``ConfigError`` listing every problem."""
    schema = load_schema(schema_path)
    fill_defaults(config, schema)
    validator = jsonschema.Draft202012Validator(schema)
    problems = sorted({describe_error(error, schema) for error in validator.iter_errors(config)} | set(non_finite_problems(config)))
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
