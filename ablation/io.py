"""Atomic file output (a killed job leaves either the old file or none, never a half-written one),
JSON reading that names a corrupt file, and the one settings hash and file hash every job shares."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` to a temporary sibling, then rename it over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(descriptor, "w") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temporary, 0o644)  # mkstemp creates owner-only files; outputs are for everyone to read
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


def atomic_write_json(path: str | Path, data) -> Path:
    return atomic_write_text(path, json.dumps(data, indent=2, sort_keys=True) + "\n")


@contextmanager
def atomic_directory(path: str | Path):
    """Yield a temporary sibling directory that replaces ``path`` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent))
    try:
        yield staging
        staging.chmod(0o755)  # mkdtemp creates an owner-only directory
        if path.exists():
            shutil.rmtree(path)
        os.replace(staging, path)
    finally:
        if staging.exists():
            shutil.rmtree(staging)


def atomic_write_jsonl(path: str | Path, rows) -> Path:
    """One JSON object per line, written atomically."""
    return atomic_write_text(path, "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))


def read_json(path: str | Path):
    """A JSON file's content; a truncated or malformed file raises naming the file, the line and the fix."""
    text = Path(path).read_text(encoding="utf-8")
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise CorruptFileError(path, f"line {error.lineno}, column {error.colno}: {error.msg}") from error


class CorruptFileError(ValueError):
    """An output of ours that cannot be parsed (a copy cut short, an edit gone wrong): it names the file and the fix."""

    def __init__(self, path: str | Path, problem: str) -> None:
        self.path = Path(path)
        super().__init__(
            f"{path} is corrupt ({problem}); nothing was deleted. Rebuild it with "
            f"`snakemake --forcerun {path}` plus your usual options, or delete it and rerun"
        )


def read_jsonl(path: str | Path) -> list[dict]:
    """The objects of a JSONL file; a bad line raises naming the file and line."""
    rows = []
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as error:
                    raise CorruptFileError(path, f"line {number}: not a JSON object ({error.msg})") from error
    return rows


def settings_sha256(settings) -> str:
    """Stable hash of JSON-like settings: equal settings, equal hash, whatever the key order."""
    canonical = json.dumps(settings, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def update_digest(digest, path: str | Path) -> None:
    """Feed a file's bytes to a hashlib ``digest``, in blocks (model weights do not fit in memory twice)."""
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)


def file_sha256(path: str | Path) -> str:
    """sha256 of a file's bytes: the one file hash of provenance records and resume claims."""
    digest = hashlib.sha256()
    update_digest(digest, path)
    return digest.hexdigest()
