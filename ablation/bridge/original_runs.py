"""Import a run of the original latent-bridge code into our run format (``run_format``).

The original (SujeethJinesh/LatentWire, ``paper_writing/``) left a run directory holding
``summary.log`` (run directory, end time, log path) and one experiment folder with ``train.log``
and ``eval_samples_step_{N|final}.jsonl``. The log is a raw torchrun
capture: rank prefixes, tqdm bars joined by carriage returns, library warnings, the echoed
``==== Config ====`` block, ``[Eval] Step N | …`` lines, ``[Early Stop] …`` lines and a
``[Final Eval] …`` line.

Every accuracy is recomputed from the JSONL samples; the log's printed accuracies are only
cross-checked, and every disagreement is reported in ``summary["log_check"]``. The output
directory appears whole or not at all.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from ablation.bridge.data import unscorable_note
from ablation.bridge.prompts import check_dataset
from ablation.bridge.run_format import (
    FINAL_STEP,
    HISTORY_FILE,
    LOSS_HISTORY_FILE,
    SCORED_FIELDS,
    SIDES,
    SUMMARY_FILE,
    history_row,
    samples_step,
    step_order,
    trained_evaluations,
)
from ablation.io import atomic_directory, atomic_write_json, file_sha256

ACCURACY_FIELDS = tuple(f"{side}_acc" for side in SIDES)
DEFAULT_DATASET = "gsm8k"  # the original's --dataset default, for logs whose config omits it
ORIGINAL_TASK = "gsm8k"  # the original showed every dataset in GSM8K's prompts and scored it with GSM8K's '#### n' rule
SOFT_TOKENS_CAP = 2048  # soft_tokens <= 0: the original fixed K = min(the source tokenizer's model_max_length, this)

LINE_BREAK = re.compile(r"\r\n|\r|\n")  # tqdm redraws its bar after a bare carriage return
RANK_PREFIX = re.compile(r"^\s*\[(?:rank\s*(?P<rank>\d+)(?:/(?P<world>\d+))?|default(?P<default>\d+))\]:?\s?", re.IGNORECASE)
NUMBER = r"-?\d+(?:\.\d+)?"
ACCURACIES = (  # the older format printed no source-alone accuracy
    rf"(?:Source-alone acc: (?P<source_acc>{NUMBER}) \| )?Target-alone acc: (?P<target_acc>{NUMBER})"
    rf" \| Bridged acc: (?P<bridged_acc>{NUMBER})"
)
EVAL_LINE = re.compile(rf"\[Eval\] Step (?P<step>\d+) \| {ACCURACIES}")
FINAL_LINE = re.compile(rf"\[Final Eval\] {ACCURACIES}")
EARLY_STOP_LINE = re.compile(r"\[Early Stop\]\s*(?P<message>.*\S)")
CAPPED_SOFT_TOKENS = re.compile(r"Soft tokens not specified; capping to (?P<k>\d+) tokens")
STOPPED = re.compile(r"\bstop", re.IGNORECASE)  # "Stopping early at step N…", not "No improvement…"
PATIENCE = re.compile(r"patience:?\s*(?P<used>\d+)\s*/\s*(?P<limit>\d+)", re.IGNORECASE)
OPTIONAL_FIELDS = ("source_extracted",)  # the older format evaluated no source alone
CONFIG_HEADER = "==== Config ===="
LOSS_LINE = re.compile(rf"Step (?P<step>\d+)/\d+ \| Loss \(avg over last (?P<window>\d+)\): (?P<total>{NUMBER}|nan|inf)(?P<terms>.*)")
LOSS_TERM = re.compile(rf"\|\s*(?P<name>[A-Za-z][\w ()-]*?):\s*(?P<value>{NUMBER}|nan|inf)")
CONFIG_ENTRY = re.compile(r"(?P<key>[A-Za-z_]\w*):(?: (?P<value>.*))?")
INT_VALUE = re.compile(r"-?\d+")
FLOAT_VALUE = re.compile(r"-?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?")
GLOG_STAMP = re.compile(r"\[?[IWEF](?P<month>\d{2})(?P<day>\d{2}) (?P<clock>\d{2}:\d{2}:\d{2})")  # c10 warnings
ISO_STAMP = re.compile(r"\[?(?P<stamp>\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}:\d{2})")
DATE_OUTPUT = re.compile(  # `date`: "Wed Nov 19 02:07:05 AM PST 2025"
    r"\w{3} (?P<month>\w{3}) +(?P<day>\d{1,2}) (?P<clock>\d{1,2}:\d{2}:\d{2})(?: (?P<meridiem>[AP]M))?"
    r"(?: [A-Za-z]{2,6})? (?P<year>\d{4})"
)


class LegacyImportError(ValueError):
    """A legacy run that cannot be imported; the message names the file (and line)."""


@dataclass
class LegacyLog:
    """What ``train.log`` says: settings, printed accuracies per step, early-stop messages, first timestamp."""

    settings: dict = field(default_factory=dict)
    printed: dict = field(default_factory=dict)  # step or "final" -> {"source_acc": "0.765", …} as printed (None: not printed)
    losses: dict = field(default_factory=dict)  # step -> {"total": mean loss over the log's window, "window": N, other printed terms}
    early_stop: list[str] = field(default_factory=list)
    first_stamp: re.Match | None = None
    capped_soft_tokens: int | None = None  # the K that soft_tokens <= 0 resolved to, as the log says


def config_value(text: str):
    """A config value as the original printed it (``str(value)``), back to int, float, bool or None."""
    if text in ("True", "False"):
        return text == "True"
    if text == "None":
        return None
    if INT_VALUE.fullmatch(text):
        return int(text)
    if FLOAT_VALUE.fullmatch(text):
        return float(text)
    return text


def ranked_lines(text: str) -> list[tuple[int | None, str]]:
    """The log's lines, carriage returns as breaks, as (rank of the torchrun prefix or None, line without it)."""
    lines = []
    for line in LINE_BREAK.split(text):
        prefix = RANK_PREFIX.match(line)
        rank = None if prefix is None else int(prefix["rank"] or prefix["default"])
        lines.append((rank, line[prefix.end() :] if prefix else line))
    return lines


def world_size(text: str) -> int | None:
    """The DDP world size the log's ``[Rank r/N]`` prefixes name (None: they name none)."""
    sizes = {int(prefix["world"]) for line in LINE_BREAK.split(text) if (prefix := RANK_PREFIX.match(line)) and prefix["world"]}
    return max(sizes) if sizes else None


def echoed_settings(blocks: list[dict], text: str) -> dict:
    """The settings a log echoes: its last ``==== Config ====`` block (of ``config_blocks``), and
    ``world_size`` where the rank prefixes of its ``text`` name it."""
    size = world_size(text)
    return {**(blocks[-1] if blocks else {}), **({"world_size": size} if size is not None else {})}


def _interleaved(rank: int | None, line: str, block_rank: int | None) -> bool:
    """Whether a line inside a config block is another process's output: another rank's line, an
    unprefixed line (a warning on stderr) in a prefixed log, or a warning and its indented source line."""
    if rank != block_rank:
        return True
    return bool(line[:1].isspace() or "Warning" in line or GLOG_STAMP.match(line))


def config_blocks(lines: list[tuple[int | None, str]]) -> list[dict]:
    """Every ``==== Config ====`` block, read to its end (a blank line or a line of its own rank
    that is no ``key: value``) past the lines other processes interleave."""
    blocks = []
    block, block_rank = None, None
    for rank, line in lines:
        if line.strip() == CONFIG_HEADER:
            block, block_rank = {}, rank
            blocks.append(block)
            continue
        if block is None or _interleaved(rank, line, block_rank):
            continue
        entry = CONFIG_ENTRY.fullmatch(line)
        if entry is None:
            block = None
            continue
        block[entry["key"]] = config_value((entry["value"] or "").strip())
    return blocks


def parse_config_block(path: Path) -> dict:
    """The settings the log echoes (``echoed_settings``); an error naming the file when it has no config block."""
    text = path.read_bytes().decode("utf-8", errors="replace")
    blocks = config_blocks(ranked_lines(text))
    if not blocks or not blocks[-1]:
        raise LegacyImportError(f"{path}: no '{CONFIG_HEADER}' block with 'key: value' lines")
    return echoed_settings(blocks, text)


def loss_row(match: re.Match) -> tuple[int, dict]:
    """A ``Step N/M | Loss (avg over last W): X | Term: Y …`` line as (N, {"total": X, "window": W, "term": Y})."""
    row = {"total": float(match["total"]), "window": int(match["window"])}
    for term in LOSS_TERM.finditer(match["terms"]):
        row[re.sub(r"\W+", "_", term["name"].strip().lower()).strip("_")] = float(term["value"])
    return int(match["step"]), row


def parse_train_log(path: Path) -> LegacyLog:
    """Settings, eval lines, early-stop messages and the first timestamp; a later config block or step repeat wins."""
    log = LegacyLog()
    text = path.read_bytes().decode("utf-8", errors="replace")
    lines = ranked_lines(text)
    log.settings = echoed_settings(config_blocks(lines), text)
    for _, line in lines:
        if match := CAPPED_SOFT_TOKENS.search(line):
            log.capped_soft_tokens = int(match["k"])
        if match := LOSS_LINE.match(line):
            step, row = loss_row(match)
            log.losses[step] = row
        elif match := EVAL_LINE.search(line):
            log.printed[int(match["step"])] = {name: match[name] for name in ACCURACY_FIELDS}
        elif match := FINAL_LINE.search(line):
            log.printed[FINAL_STEP] = {name: match[name] for name in ACCURACY_FIELDS}
        elif match := EARLY_STOP_LINE.search(line):
            log.early_stop.append(match["message"])
        elif log.first_stamp is None:
            log.first_stamp = GLOG_STAMP.match(line) or ISO_STAMP.match(line)
    if not log.printed:
        raise LegacyImportError(f"{path}: no '[Eval] Step N | …' or '[Final Eval] …' line")
    return log


def read_samples(path: Path, data: bytes) -> list[dict]:
    """The sample rows of one eval file; a row that is not JSON or lacks an extracted answer is an error."""
    rows = []
    for number, line in enumerate(data.split(b"\n"), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError as error:
            raise LegacyImportError(f"{path}:{number}: not a JSON line ({error})") from None
        required = [name for name in SCORED_FIELDS if name not in OPTIONAL_FIELDS or name in row]  # older runs: no source side
        missing = [name for name in required if not isinstance(row, dict) or not isinstance(row.get(name), str)]
        if missing:
            raise LegacyImportError(f"{path}:{number}: missing or non-text field(s) {', '.join(missing)}")
        rows.append(row)
    if not rows:
        raise LegacyImportError(f"{path}: no sample rows")
    return rows


def find_experiment(run_dir: Path, experiment: str | None) -> Path:
    """The experiment folder: the one named, or the only subfolder holding a train.log."""
    if not run_dir.is_dir():
        raise LegacyImportError(f"{run_dir}: no such directory (the preserved run is not where the config says)")
    if experiment is not None:
        if not (run_dir / experiment / "train.log").is_file():
            raise LegacyImportError(f"{run_dir / experiment / 'train.log'}: missing train.log")
        return run_dir / experiment
    found = sorted(log.parent for log in run_dir.glob("*/train.log") if log.is_file())
    if len(found) != 1:
        names = ", ".join(folder.name for folder in found) or "none"
        raise LegacyImportError(f"{run_dir}: needs exactly one <experiment>/train.log, found {names}; pass experiment=")
    return found[0]


def parse_summary_log(path: Path) -> dict | None:
    """``summary.log``'s ``Key: value`` lines as ``{"run_directory": …, "end_time": …, "logs": …}``."""
    if not path.is_file():
        return None
    entries = (line.partition(": ") for line in path.read_text(encoding="utf-8", errors="replace").splitlines())
    return {key.strip().lower().replace(" ", "_"): value.strip() for key, colon, value in entries if colon}


def end_time(summary_log: dict | None) -> datetime | None:
    """The run's end from ``summary.log`` (`date` output or ISO); None when absent or unreadable."""
    text = (summary_log or {}).get("end_time", "")
    if match := DATE_OUTPUT.fullmatch(text):
        clock = f"{match['clock']} {match['meridiem']}" if match["meridiem"] else match["clock"]
        layout = "%I:%M:%S %p" if match["meridiem"] else "%H:%M:%S"
        return datetime.strptime(f"{match['month']} {match['day']} {match['year']} {clock}", f"%b %d %Y {layout}")
    try:
        return datetime.fromisoformat(text).replace(tzinfo=None)
    except ValueError:
        return None


def wall_seconds(first_stamp: re.Match | None, end: datetime | None) -> float | None:
    """End minus the log's first timestamp, both read as the same local clock; None if either is unknown.

    The c10 warning stamp (``W1119 00:12:49``) has no year: it takes the end's year, or the
    year before when that would put the start after the end.
    """
    if first_stamp is None or end is None:
        return None
    try:
        if first_stamp.re is GLOG_STAMP:
            start = datetime.strptime(f"{end.year}{first_stamp['month']}{first_stamp['day']} {first_stamp['clock']}",
                                      "%Y%m%d %H:%M:%S")
            if start > end:
                start = start.replace(year=end.year - 1)
        else:
            start = datetime.fromisoformat(first_stamp["stamp"])
    except ValueError:
        return None
    seconds = (end - start).total_seconds()
    return seconds if seconds >= 0 else None


def stop_reason(log: LegacyLog) -> str:
    """Why training ended: an early stop the log announces, exhausted patience, the step budget, or unknown."""
    stopped = [message for message in log.early_stop if STOPPED.search(message)]
    if stopped:
        return f"early_stop: {stopped[-1]}"
    patience = PATIENCE.search(log.early_stop[-1]) if log.early_stop else None
    if patience and int(patience["used"]) >= int(patience["limit"]):
        return f"early_stop: {log.early_stop[-1]}"
    steps = [step for step in log.printed if step != FINAL_STEP]
    if steps and max(steps) == log.settings.get("train_steps"):
        return "max_steps"
    return "unknown"


def tolerance(printed: str) -> float:
    """Half a unit in the last printed decimal place (0.0005 for ``0.765``), plus float slack."""
    decimals = len(printed.partition(".")[2])
    return 0.5 * 10.0**-decimals + 1e-12


def check_against_log(history: list[dict], printed: dict) -> dict:
    """Compare recomputed accuracies with the log's; a step present on one side only disagrees too."""
    recomputed = {row["step"]: row for row in history}
    disagreements = []
    for step in sorted(set(recomputed) | set(printed), key=step_order):
        for name in ACCURACY_FIELDS:
            if step in printed and step in recomputed and printed[step][name] is None and recomputed[step][name] is None:
                continue  # a side the older format neither printed nor sampled
            logged, value = printed.get(step, {}).get(name), recomputed.get(step, {}).get(name)
            if logged is None or value is None or abs(float(logged) - value) > tolerance(logged):
                disagreements.append({"step": step, "field": name, "log": None if logged is None else float(logged),
                                      "recomputed": value})
    return {"agrees": not disagreements, "disagreements": disagreements}


def import_legacy_run(
    run_dir: str | Path,
    out_dir: str | Path,
    *,
    name: str,
    role: str | None = None,
    experiment: str | None = None,
    provenance_extra: dict | None = None,
) -> dict:
    """Convert a preserved legacy run into ``out_dir`` (samples, history, summary) and return the summary."""
    run_dir = Path(run_dir)
    experiment_dir = find_experiment(run_dir, experiment)
    log_path = experiment_dir / "train.log"
    log = parse_train_log(log_path)
    dataset = log.settings.get("dataset", DEFAULT_DATASET)
    try:
        check_dataset(dataset)
    except ValueError as error:
        raise LegacyImportError(f"{log_path}: {error}") from None

    sample_files = sorted(
        ((step, path) for path in experiment_dir.iterdir() if (step := samples_step(path.name)) is not None),
        key=lambda item: step_order(item[0]),
    )
    if not sample_files:
        raise LegacyImportError(f"{experiment_dir}: no eval_samples_step_*.jsonl files")
    contents = {path.name: path.read_bytes() for _, path in sample_files}
    history = [history_row(step, read_samples(path, contents[path.name]), ORIGINAL_TASK) for step, path in sample_files]

    summary_log = parse_summary_log(run_dir / "summary.log")
    provenance = {
        "importer": __name__,
        "created_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "source_dir": str(run_dir.resolve()),
        "experiment": experiment_dir.name,
        "train_log_sha256": file_sha256(log_path),
        "samples_sha256": {file: hashlib.sha256(data).hexdigest() for file, data in contents.items()},
        "summary_log": summary_log,
        **(provenance_extra or {}),
    }
    summary = legacy_summary(log, history, dataset, name=name, role=role, provenance=provenance,
                             wall=wall_seconds(log.first_stamp, end_time(summary_log)))

    with atomic_directory(out_dir) as staging:
        for file, data in contents.items():
            (staging / file).write_bytes(data)
        (staging / HISTORY_FILE).write_text("".join(json.dumps(row) + "\n" for row in history), encoding="utf-8")
        if log.losses:
            (staging / LOSS_HISTORY_FILE).write_text(loss_csv(log.losses), encoding="utf-8")
        atomic_write_json(staging / SUMMARY_FILE, summary)
    return summary


def loss_csv(losses: dict[int, dict]) -> str:
    """The log's loss lines as ``loss_history.csv``: step, the windowed mean total, the window, any other printed terms."""
    names = ["total", "window"] + sorted({name for row in losses.values() for name in row} - {"total", "window"})
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=["step", *names], restval="")
    writer.writeheader()
    writer.writerows({"step": step, **row} for step, row in sorted(losses.items()))
    return buffer.getvalue()


def legacy_summary(
    log: LegacyLog, history: list[dict], dataset: str, *, name: str, role: str | None, provenance: dict, wall: float | None
) -> dict:
    """``summary.json`` from the log, the recomputed history, the wall time and the provenance."""
    final = history[-1]  # the "final" evaluation sorts last; without one, the last step stands in
    peak = max(trained_evaluations(history), key=lambda row: row["bridged_acc"])  # the earliest of equal peaks
    soft_tokens = log.settings.get("soft_tokens")
    notes = []
    if "dataset" not in log.settings:
        notes.append(f"the config block names no dataset: {DEFAULT_DATASET}, the original's default, assumed")
    resolved = soft_tokens if not isinstance(soft_tokens, int) or soft_tokens > 0 else log.capped_soft_tokens
    if isinstance(soft_tokens, int) and soft_tokens <= 0:
        found = f"K = {resolved} (its log: 'capping to {resolved} tokens')" if resolved else "its log does not say which"
        notes.append(f"soft_tokens {soft_tokens}: the original fixed K at min(the source tokenizer's model_max_length, "
                     f"{SOFT_TOKENS_CAP}), {found}")  # fmt: skip
    if final["step"] != FINAL_STEP:
        notes.append(f"no final evaluation: source, target and final bridged accuracy are step {final['step']}'s")
    else:
        notes.append("final: the original's [Final Eval] read the last weights (its kept 'best' state aliased the "
                     "live weights), so degradation is peak minus last-weights accuracy")  # fmt: skip
    if final["source_acc"] is None:
        notes.append("an older log format: no source-alone accuracy was evaluated or printed")
    notes += unscorable_note(dataset, ORIGINAL_TASK)
    return {
        "run": name,
        "study": "bridge",
        "origin": "legacy",
        "role": role,
        "settings": log.settings,
        "dataset": dataset,
        "prompts": ORIGINAL_TASK,
        "scoring": ORIGINAL_TASK,
        "source_acc": final["source_acc"],
        "target_acc": final["target_acc"],
        "peak_bridged_acc": peak["bridged_acc"],
        "peak_step": peak["step"],
        "final_bridged_acc": final["bridged_acc"],
        "degradation": round(peak["bridged_acc"] - final["bridged_acc"], 12),  # round away float noise
        "stop_reason": stop_reason(log),
        "wall_seconds": wall,
        "soft_tokens": soft_tokens,
        "resolved_soft_tokens": resolved,
        "steps_evaluated": [row["step"] for row in history],
        "invalid_per_step": {str(row["step"]): row["invalid"] for row in history},
        "log_check": check_against_log(history, log.printed),
        "provenance": provenance,
        "notes": notes,
    }
