"""Whether a model id names a directory on disk, one of the tiny world's models or a hub repository: light enough for the Snakefile,
which asks it while the DAG is built (``ablation.models`` imports torch and transformers)."""

from __future__ import annotations

from pathlib import Path


PATH_PREFIXES = ("/", "./", "../", "~")
EMBEDDED_PREFIX = "embedded:"  # a model id naming one of the tiny world's models


def embedded_model_name(model_id: str) -> str | None:
    """``embedded:bridge_model`` -> ``bridge_model``; None for a hub id or a path."""
    return model_id.removeprefix(EMBEDDED_PREFIX) if model_id.startswith(EMBEDDED_PREFIX) else None


def is_local_reference(model_id: str) -> bool:
    """True when ``model_id`` names a directory on disk rather than a hub repository: it exists,
    or it looks like a path (absolute, ``./``, ``../``, ``~``), so a missing one is never taken for a hub id."""
    return Path(model_id).exists() or model_id.startswith(PATH_PREFIXES)


def local_model_problem(path: str) -> str | None:
    """What a local model directory lacks for ``from_pretrained``: the directory, its config, weights or tokenizer."""
    directory = Path(path).expanduser()
    if not directory.is_dir():
        return f"the local model directory {path} does not exist" if not directory.exists() else f"{path} is not a directory"
    missing = []
    if not (directory / "config.json").is_file():
        missing.append("config.json")
    if not any(directory.glob("*.safetensors")) and not any(directory.glob("pytorch_model*.bin")):
        missing.append("weights (*.safetensors or pytorch_model*.bin)")
    if not any((directory / name).is_file() for name in ("tokenizer.json", "tokenizer_config.json", "tokenizer.model")):
        missing.append("a tokenizer (tokenizer.json, tokenizer_config.json or tokenizer.model)")
    return f"the local model directory {path} lacks {', '.join(missing)}" if missing else None


def local_file_problem(path: str, what: str) -> str | None:
    """Why ``path`` cannot be read as ``what`` (a file), or None."""
    if Path(path).expanduser().is_file():
        return None
    return f"the {what} {path} does not exist" if not Path(path).expanduser().exists() else f"the {what} {path} is not a file"
