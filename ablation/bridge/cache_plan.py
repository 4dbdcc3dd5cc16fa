"""What each frozen-output cache of a config would take on disk, estimated while the Snakefile parses,
before any job runs: rows × tokens a row × width × bytes of the stored dtype, against
``bridge.source_state_cache.max_gb``, and which runs read a cache at all
(``bridge.source_state_cache.prompts``). The dry run prints the table (rules/bridge/common.smk).

No model, tokenizer or dataset is loaded: a prompt's tokens are its characters (built by the
study's own prompt functions from the fields' mean lengths) / ``CHARS_PER_TOKEN``, and row counts,
field lengths and model shapes come from the tables below. The cache job counts the real tokens
with the tokenizer before it writes, and that count decides (ablation.bridge.frozen_cache).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ablation.bridge.data import prompt_task
from ablation.bridge.prompts import eval_prompt, training_prompt
from ablation.bridge.settings import kl_baseline_key, source_state_key, source_state_name
from ablation.references import embedded_model_name

ELEMENT_BYTES = {"float32": 4, "bfloat16": 2}
LEFT_OUT = "on the fly: trains on the evaluation prompt (prompts: task_prompt_runs)"
LAYOUT_LEFT_OUT = "on the fly: the original's token layout pads per batch (token_layout: original)"
# A stated estimate for English prose and arithmetic with Mistral's and Llama-3's 32k-128k BPE
# vocabularies (no hub tokenizer is read at parse time): GSM8K's 8-shot prompt, about 4,530
# characters in the preserved original run, comes to about 1,200 tokens.
CHARS_PER_TOKEN = 3.8

# hidden_size and vocab_size of each model's config.json on the Hugging Face hub
HUB_MODELS = {
    "mistralai/Mistral-7B-Instruct-v0.3": {"width": 4096, "vocab": 32768},
    "meta-llama/Meta-Llama-3.1-8B-Instruct": {"width": 4096, "vocab": 128256},
    "meta-llama/Llama-3.1-8B-Instruct": {"width": 4096, "vocab": 128256},
}


@dataclass(frozen=True)
class DatasetStats:
    """A dataset's rows per split and the mean characters of the fields a prompt is built from."""

    rows: dict[str, int]
    question: int
    answer: int
    paragraphs: int = 0  # HotpotQA's context, rendered as titled paragraphs

    def mean_row(self) -> dict:
        """A row with fields of the mean lengths, for the prompt functions to build a mean-length prompt from."""
        context = {"title": ["t"], "sentences": [["p" * max(0, self.paragraphs - 3)]]}  # "t: " + the paragraphs
        return {"question": "q" * self.question, "answer": "a" * self.answer, "context": context}


# (path, name) -> stats. Rows from the dataset cards. GSM8K's lengths measured on the prompts of the
# preserved original run (eval_samples of phase2_swap_soft_only: 200 test questions, 8 training
# shots); HotpotQA's stated: ~18-word questions, two- or three-word answers, ten paragraphs of ~500
# characters (its prompts are cut at max_prompt_tokens long before their end).
HUB_DATASETS = {
    ("gsm8k", "main"): DatasetStats(rows={"train": 7473, "test": 1319}, question=240, answer=290),
    ("hotpot_qa", "distractor"): DatasetStats(rows={"train": 90447, "validation": 7405}, question=110, answer=15, paragraphs=5000),
}


def cache_bytes(tokens: int, width: int, dtype: str) -> int:
    """Bytes of ``tokens`` stored vectors of ``width`` elements (hidden states, or logits over a vocabulary)."""
    return tokens * width * ELEMENT_BYTES[dtype]


def stored_dtype(model_dtype: str, precision: str, device: str) -> str:
    """What the states are kept in: the run's precision (bf16 autocast on GPU), else the source's weight dtype."""
    return "bfloat16" if precision == "bf16" and device != "cpu" else model_dtype


def prompt_tokens(chars: int, max_tokens: int, chars_per_token: float = CHARS_PER_TOKEN) -> int:
    """A prompt's estimated tokens: its characters / ``chars_per_token``, plus BOS, cut at ``max_tokens``."""
    return min(max_tokens, math.ceil(chars / chars_per_token) + 1)


def reads_source_states(settings: dict, cached_prompts: str) -> bool:
    """Whether a run reads the source's states from a cache under ``bridge.source_state_cache.prompts``
    (validated by the schema): every run (``all``), or only the runs that train on the simple task
    prompt (``task_prompt_runs``); never one with the original's token layout, whose left padding
    makes a row's states depend on its batch."""
    return reads_frozen_caches(settings) and (cached_prompts == "all" or settings["train_prompt"] == "task")


def reads_frozen_caches(settings: dict) -> bool:
    """Whether a run can read frozen outputs from a cache at all: not with ``token_layout: original``
    (its padding, and so its positions, depend on the batch)."""
    return settings["token_layout"] == "ours"


@dataclass(frozen=True)
class Size:
    """A cache's estimated size: bytes (None: not estimated), rows × tokens per part, width, dtype."""

    bytes: int | None
    rows: str
    width: int | None
    dtype: str


@dataclass(frozen=True)
class CacheEstimate:
    """One cache of the plan: its kind, key name, the runs reading it, its size and what happens."""

    kind: str  # "source states" or "KL baselines"
    key: str
    runs: tuple[str, ...]
    size: Size
    plan: str


def model_shape(model: dict, world_models: dict) -> dict | None:
    """Width and vocabulary of a bridge model: the tiny world's from its config, a hub model's from HUB_MODELS."""
    embedded = embedded_model_name(model["id"])
    if embedded is not None:
        built = world_models.get(embedded)
        return None if built is None else {"width": built["model"]["hidden_size"], "vocab": built["vocab_size"]}
    return HUB_MODELS.get(model["id"])


def _decision(estimate: int | None, max_gb: float) -> str:
    if estimate is None:
        return "not estimated: model or dataset not in ablation.bridge.cache_plan's tables (the job counts and decides)"
    if estimate > max_gb * 1e9:
        return f"on the fly: past max_gb {max_gb:g} (its job confirms from the real count)"
    return "built"


def source_state_estimate(settings: dict, dataset_source: dict, eval_settings: dict, dtype: str, shape: dict | None,
                          stats: DatasetStats | None, chars_per_token: float = CHARS_PER_TOKEN) -> Size:  # fmt: skip
    """The size of a run's source-state cache: its training prompts, then its eval prompts, each of the mean length."""
    if shape is None or stats is None:
        return Size(None, "?", shape and shape["width"], dtype)
    shown_as = prompt_task(settings["dataset"], dataset_source)
    row = stats.mean_row()
    shots = [row] * eval_settings["few_shot"] if shown_as == "gsm8k" else []
    train_rows = stats.rows[dataset_source["train_split"]]
    eval_rows = min(eval_settings["samples"], stats.rows[dataset_source["eval_split"]])
    train_chars = len(training_prompt(shown_as, row, settings["train_prompt"], shots))
    train_tokens = prompt_tokens(train_chars, settings["max_prompt_tokens"], chars_per_token)
    eval_tokens = prompt_tokens(len(eval_prompt(shown_as, row, shots)), settings["max_prompt_tokens"], chars_per_token)
    tokens = train_rows * train_tokens + eval_rows * eval_tokens
    return Size(cache_bytes(tokens, shape["width"], dtype), f"{train_rows:,} × {train_tokens:,} + {eval_rows:,} × {eval_tokens:,}",
                shape["width"], dtype)  # fmt: skip


def kl_baseline_estimate(settings: dict, dataset_source: dict, dtype: str, shape: dict | None, stats: DatasetStats | None) -> Size:
    """The size of a run's KL-baseline cache: min(kl_tokens, answer tokens) positions a training row × the vocabulary."""
    if shape is None or stats is None:
        return Size(None, "?", shape and shape["vocab"], dtype)
    answer = min(settings["max_answer_tokens"], math.ceil((1 + stats.answer) / CHARS_PER_TOKEN)) + int(settings["train_answer_eos"])
    positions = min(settings["kl_tokens"], answer)
    rows = stats.rows[dataset_source["train_split"]]
    return Size(cache_bytes(rows * positions, shape["vocab"], dtype), f"{rows:,} × {positions:,}", shape["vocab"], dtype)


def cache_plan(runs: dict[str, dict], bridge: dict, device: str) -> list[CacheEstimate]:
    """Every cache the trained ``runs`` (name -> effective settings) would read, one entry per key,
    with the runs that compute on the fly because of ``bridge.source_state_cache.prompts``."""
    cache, world_models = bridge["source_state_cache"], bridge["world"]["models"]
    entries: dict[tuple[str, str], dict] = {}
    for run, s in runs.items():
        source, target, data = bridge["models"][s["source"]], bridge["models"][s["target"]], bridge["datasets"][s["dataset"]]
        stats = HUB_DATASETS.get((data["path"], data.get("name")))
        source_dtype, target_dtype = (stored_dtype(model["dtype"], s["precision"], device) for model in (source, target))
        left_out = None if reads_source_states(s, cache["prompts"]) else LEFT_OUT if reads_frozen_caches(s) else LAYOUT_LEFT_OUT
        kinds = [("source states", source_state_key(s, source, data, bridge["eval"], device),
                  source_state_estimate(s, data, bridge["eval"], source_dtype, model_shape(source, world_models), stats), left_out)]  # fmt: skip
        if s["kl_weight"] > 0:
            kinds.append(("KL baselines", kl_baseline_key(s, target, data, bridge["eval"], device),
                          kl_baseline_estimate(s, data, target_dtype, model_shape(target, world_models), stats),
                          None if reads_frozen_caches(s) else LAYOUT_LEFT_OUT))  # fmt: skip
        for kind, key, estimate, left_out in kinds:
            entry = entries.setdefault((kind, source_state_name(key)), {"runs": [], "size": estimate, "left_out": left_out})
            entry["runs"].append(run)
    return [
        CacheEstimate(kind, name, tuple(entry["runs"]), entry["size"],
                      entry["left_out"] or _few_readers(len(entry["runs"]), cache["min_runs"])
                      or _decision(entry["size"].bytes, cache["max_gb"]))  # fmt: skip
        for (kind, name), entry in entries.items()
    ]


def _few_readers(runs: int, min_runs: int) -> str | None:
    return f"on the fly: read by {runs} run{'s' if runs > 1 else ''}, fewer than min_runs {min_runs}" if runs < min_runs else None


def shared_keys(keys: dict[str, dict], min_runs: int) -> dict[str, dict]:
    """``keys`` (run -> cache key) without the keys fewer than ``min_runs`` runs read: building a
    cache costs about what computing its rows in one run's steps does, so it pays only when shared."""
    readers: dict[str, int] = {}
    for key in keys.values():
        readers[source_state_name(key)] = readers.get(source_state_name(key), 0) + 1
    return {run: key for run, key in keys.items() if readers[source_state_name(key)] >= min_runs}


def cached_run_keys(runs: dict[str, dict], bridge: dict, device: str) -> tuple[dict[str, dict], dict[str, dict]]:
    """The cache keys that the trained ``runs`` (name -> effective settings) read from a built cache:
    (run -> source-state key, run -> KL-baseline key). None while ``source_state_cache.enabled`` is
    off; source states for the runs ``prompts`` lets read them, KL baselines for the runs with a KL
    term, and either only where ``min_runs`` runs share the key (``shared_keys``)."""
    cache = bridge["source_state_cache"]
    if not cache["enabled"]:
        return {}, {}
    states = {run: source_state_key(s, bridge["models"][s["source"]], bridge["datasets"][s["dataset"]], bridge["eval"], device)
              for run, s in runs.items() if reads_source_states(s, cache["prompts"])}  # fmt: skip
    kl = {run: kl_baseline_key(s, bridge["models"][s["target"]], bridge["datasets"][s["dataset"]], bridge["eval"], device)
          for run, s in runs.items() if s["kl_weight"] > 0 and reads_frozen_caches(s)}  # fmt: skip
    return shared_keys(states, cache["min_runs"]), shared_keys(kl, cache["min_runs"])


# a step computing the source's states and the KL baselines against one reading them from their
# caches (bench/bridge_throughput.py on the tiny default: 0.061 s against 0.041 s)
ON_THE_FLY_STEP_COST = 1.5


def reads_every_cache(run: str, settings: dict, state_keys: dict[str, dict], kl_keys: dict[str, dict]) -> bool:
    """Whether ``run`` reads all its frozen outputs from caches (``cached_run_keys``' two routings):
    its source states, and its KL baselines unless it has no KL term."""
    return run in state_keys and (run in kl_keys or settings["kl_weight"] == 0)


def longest_first(runs: dict[str, dict], state_keys: dict[str, dict], kl_keys: dict[str, dict]) -> dict[str, float]:
    """A scheduler priority in [1, 1.9] per trained run (name -> effective settings), highest for the
    run expected to take longest (its steps, × ``ON_THE_FLY_STEP_COST`` unless it reads every cache),
    so the longest runs start first and the last to finish is a short one."""
    def cost(run: str) -> float:
        cached = reads_every_cache(run, runs[run], state_keys, kl_keys)
        return runs[run]["train_steps"] * (1.0 if cached else ON_THE_FLY_STEP_COST)

    costs = {run: cost(run) for run in runs}
    longest = max(costs.values(), default=1.0)
    return {run: 1 + 0.9 * value / longest for run, value in costs.items()}


def informative(plan: list[CacheEstimate]) -> bool:
    """Whether the plan says more than "each job decides": an estimated size, or a run left on the fly.
    The tiny world's models and data are in no table, so its plan would be a column of question marks."""
    return any(entry.size.bytes is not None or entry.plan in (LEFT_OUT, LAYOUT_LEFT_OUT) for entry in plan)


def format_plan(plan: list[CacheEstimate], cache: dict) -> str:
    """The plan as a text table, for the dry run's log."""
    header = ("cache", "key", "runs", "rows × tokens", "width", "dtype", "GB", "plan")
    rows = [(entry.kind, entry.key, ", ".join(entry.runs), entry.size.rows,
             "?" if entry.size.width is None else f"{entry.size.width:,}", entry.size.dtype,
             "?" if entry.size.bytes is None else f"{entry.size.bytes / 1e9:.1f}", entry.plan) for entry in plan]  # fmt: skip
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    lines = [
        f"Bridge caches (bridge.source_state_cache: max_gb {cache['max_gb']:g}, prompts {cache['prompts']}), estimated before "
        f"any job runs from characters / {CHARS_PER_TOKEN} a token (ablation.bridge.cache_plan); "
        "each cache job counts the real tokens first:",
        *("  " + "  ".join(str(value).ljust(width) for value, width in zip(row, widths)).rstrip() for row in [header, *rows]),
    ]
    return "\n".join(lines)
