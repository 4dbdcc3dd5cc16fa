"""The optional LLM judge of free-form answers: any OpenAI-compatible chat endpoint scores each
response 1–5 against its reference, through a rubric template of the repository.

What the original did differently, and why not here:

- A failed call was recorded as score 0 (its summary left the 0s out of the means, but the
  per-item rows could not tell a failure from a score). Here a failure is a recorded failure
  (``score`` null, ``error`` set), excluded from means and counted.
- Nothing was cached, so a rerun paid for every call again. Here every verdict is kept in an
  append-only cache keyed by (judge model, prompt): a rerun only calls for what it lacks.

Calls use temperature 0 and the standard library's HTTP client (no SDK to pin). Rate limits
(429, honouring ``Retry-After``), server errors, timeouts, dropped connections and replies that are
not the asked-for JSON are retried with exponential backoff and full jitter (a uniform wait up to
the doubled delay, so parallel judge jobs do not retry in lock-step); other client errors (401,
404) are not, since retrying cannot fix them. At most ``max_concurrency`` calls are in flight per job.

The API key is read from the environment variable the config names and is sent only in the
request header: it is never written to a result, a cache, a log or the provenance.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import random
import re
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from ablation.io import atomic_write_jsonl, read_jsonl
from ablation.provenance import provenance

log = logging.getLogger(__name__)

SCORES = range(1, 6)
RETRYABLE_STATUS = {408, 409, 429, 500, 502, 503, 504}
MAX_RETRY_AFTER_SECONDS = 120.0
DEFAULT_RUBRIC = "default"
_JSON_OBJECT = re.compile(r"\{.*\}", re.DOTALL)


class JudgeError(RuntimeError):
    """A call that did not produce a verdict; ``retryable`` says whether another attempt may."""

    def __init__(self, message: str, *, retryable: bool, retry_after: float | None = None):
        super().__init__(message)
        self.retryable, self.retry_after = retryable, retry_after


@dataclass(frozen=True)
class JudgeSettings:
    """The config section ``freeform.judge`` (see the schema for every key's meaning)."""

    base_url: str
    model: str
    api_key_env: str | None
    rubrics_dir: Path
    max_concurrency: int
    max_attempts: int
    timeout_seconds: float
    backoff_seconds: float
    max_tokens: int
    style: str = "ours"  # how a prompt is filled and a reply read: ours, or the original's (schema freeform.judge.style)

    @classmethod
    def from_config(cls, judge: dict) -> JudgeSettings:
        for key in ("base_url", "model"):
            if not judge.get(key):
                raise ValueError(f"config key 'freeform.judge.{key}' must be set when the judge is active")
        return cls(
            base_url=judge["base_url"].rstrip("/"),
            model=judge["model"],
            api_key_env=judge["api_key_env"],
            rubrics_dir=Path(judge["rubrics_dir"]),
            max_concurrency=judge["max_concurrency"],
            max_attempts=judge["max_attempts"],
            timeout_seconds=judge["timeout_seconds"],
            backoff_seconds=judge["backoff_seconds"],
            max_tokens=judge["max_tokens"],
            style=judge["style"],
        )

    def api_key(self) -> str | None:
        """The key from the environment; a named variable that is unset stops before any call."""
        if self.api_key_env is None:
            return None
        key = os.environ.get(self.api_key_env)
        if not key:
            raise ValueError(
                f"config key 'freeform.judge.api_key_env' names the environment variable {self.api_key_env!r}, "
                "which is not set (set it, or set the key to null for an endpoint without authentication)"
            )
        return key


@dataclass(frozen=True)
class Verdict:
    score: int | float | None  # None: the judge failed on this item; a float only as the original took it
    reason: str
    attempts: int
    error: str | None = None
    cached: bool = False


def parse_verdict(content: str, style: str = "ours") -> tuple[int | float, str]:
    """``(score, reason)`` from the judge's reply: a JSON object, possibly fenced or wrapped in prose,
    with an integer score from 1 to 5; under the ``original`` style as the original read it."""
    if style == "original":
        return _parse_as_the_original(content)
    content = content or ""  # a chat completion's content may be null
    match = _JSON_OBJECT.search(content)
    try:
        verdict = json.loads(match.group(0)) if match else None
    except json.JSONDecodeError:
        verdict = None
    if not isinstance(verdict, dict) or "score" not in verdict:
        raise JudgeError(f"reply is not a JSON object with a score: {content[:200]!r}", retryable=True)
    score = verdict["score"]
    if isinstance(score, str) and score.strip().isdigit():
        score = int(score.strip())
    if isinstance(score, float) and score.is_integer():
        score = int(score)
    if isinstance(score, bool) or not isinstance(score, int) or score not in SCORES:
        raise JudgeError(f"score {verdict['score']!r} is not an integer from 1 to 5", retryable=True)
    return score, str(verdict.get("reason", ""))


def _parse_as_the_original(content: str) -> tuple[int | float, str]:
    """The original's reading: the reply is JSON once a leading code fence is removed (else the call
    is retried), and its score is taken as given; a missing, non-numeric or non-positive score was a
    0 there, which its means left out, so here it is a failure, not retried."""
    text = (content or "").strip()
    if text.startswith("```"):
        text = text.split("\n", 1)[1].rsplit("```", 1)[0].strip() if "\n" in text else ""
    try:
        verdict = json.loads(text)
    except json.JSONDecodeError:
        raise JudgeError(f"reply is not JSON: {text[:200]!r}", retryable=True) from None
    score = verdict.get("score") if isinstance(verdict, dict) else None
    if isinstance(score, bool) or not isinstance(score, (int, float)) or score <= 0:
        raise JudgeError(f"reply has no positive score: {text[:200]!r}", retryable=False)
    return score, str(verdict.get("reason", ""))


def _retry_after(headers) -> float | None:
    value = headers.get("Retry-After") if headers else None
    try:
        return min(float(value), MAX_RETRY_AFTER_SECONDS) if value is not None else None
    except ValueError:  # an HTTP date: fall back to our own backoff
        return None


def backoff_delay(attempt: int, backoff_seconds: float, rng: random.Random) -> float:
    """Seconds to wait after failed ``attempt`` (1-based): full jitter, uniform in
    [0, backoff_seconds * 2 ** (attempt - 1)]."""
    return rng.uniform(0.0, backoff_seconds * 2 ** (attempt - 1))


class JudgeClient:
    """One judge endpoint: a chat-completion call per prompt, retried as the module docstring says.

    ``rng`` draws the backoff jitter; by default one seeded from the OS, so parallel jobs differ.
    """

    def __init__(self, settings: JudgeSettings, api_key: str | None, *, sleep=time.sleep, rng: random.Random | None = None):
        self.settings, self._api_key, self._sleep = settings, api_key, sleep
        self._rng = rng if rng is not None else random.Random()

    def _call(self, prompt: str) -> str:
        """The reply's text, or a :class:`JudgeError`."""
        body = json.dumps(
            {
                "model": self.settings.model,
                "messages": [{"role": "user", "content": prompt}],
                "temperature": 0,
                "max_tokens": self.settings.max_tokens,
            }
        ).encode()
        headers = {"Content-Type": "application/json"}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        request = urllib.request.Request(f"{self.settings.base_url}/chat/completions", data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=self.settings.timeout_seconds) as response:
                payload = response.read()
        except urllib.error.HTTPError as error:
            raise JudgeError(
                f"HTTP {error.code} from the judge endpoint", retryable=error.code in RETRYABLE_STATUS, retry_after=_retry_after(error.headers)
            ) from None
        except OSError as error:  # URLError, timeouts and dropped connections (HTTPError is handled above)
            reason = getattr(error, "reason", error)
            raise JudgeError(f"no reply from the judge endpoint ({type(reason).__name__}: {reason})", retryable=True) from None
        try:
            return json.loads(payload)["choices"][0]["message"]["content"]
        except (json.JSONDecodeError, KeyError, IndexError, TypeError):
            raise JudgeError(f"the endpoint's reply is not a chat completion: {payload[:200]!r}", retryable=True) from None

    def judge(self, prompt: str) -> Verdict:
        """A verdict after at most ``max_attempts`` calls; the last error when none succeeded."""
        error: JudgeError | None = None
        for attempt in range(1, self.settings.max_attempts + 1):
            try:
                score, reason = parse_verdict(self._call(prompt), self.settings.style)
                return Verdict(score, reason, attempt)
            except JudgeError as failed:
                error = failed
                log.warning("judge attempt %d/%d failed: %s", attempt, self.settings.max_attempts, failed)
                if not failed.retryable or attempt == self.settings.max_attempts:
                    break
                if failed.retry_after is not None:
                    self._sleep(failed.retry_after)
                else:
                    self._sleep(backoff_delay(attempt, self.settings.backoff_seconds, self._rng))
        return Verdict(None, "", attempt, error=str(error))


def cache_key(judge_model: str, prompt: str, style: str = "ours") -> str:
    """A verdict's key; another reply style is part of it, as it reads the same reply differently."""
    return hashlib.sha256(json.dumps([judge_model, prompt] if style == "ours" else [judge_model, prompt, style]).encode()).hexdigest()


class VerdictCache:
    """Successful verdicts by :func:`cache_key`, in a JSONL file that several jobs may append to.

    Appends hold an exclusive ``flock``; a torn last line (a killed writer) is skipped on reading.
    Failures are not cached, so a rerun tries them again.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._lock = threading.Lock()
        self._verdicts: dict[str, dict] = {}
        if self.path.exists():
            for line in self.path.read_text(encoding="utf-8").splitlines():
                try:
                    row = json.loads(line)
                except json.JSONDecodeError:
                    continue
                self._verdicts[row["key"]] = row

    def get(self, key: str) -> Verdict | None:
        row = self._verdicts.get(key)
        return Verdict(row["score"], row["reason"], 0, cached=True) if row else None

    def put(self, key: str, judge_model: str, verdict: Verdict) -> None:
        row = {"key": key, "judge_model": judge_model, "score": verdict.score, "reason": verdict.reason}
        with self._lock:
            self._verdicts[key] = row
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "a", encoding="utf-8") as handle:
                fcntl.flock(handle, fcntl.LOCK_EX)
                handle.write(json.dumps(row, ensure_ascii=False) + "\n")
                handle.flush()
                os.fsync(handle.fileno())
                fcntl.flock(handle, fcntl.LOCK_UN)


def load_rubrics(rubrics_dir: str | Path, tasks: set[str]) -> dict[str, str]:
    """Each task's template: ``<task>.txt`` in ``rubrics_dir``, else ``default.txt``."""
    rubrics_dir = Path(rubrics_dir)
    default = rubrics_dir / f"{DEFAULT_RUBRIC}.txt"
    templates = {}
    for task in tasks:
        path = rubrics_dir / f"{task}.txt"
        path = path if path.is_file() else default
        if not path.is_file():
            raise FileNotFoundError(f"no rubric for task {task!r}: neither {rubrics_dir}/{task}.txt nor {default} exists (config key 'freeform.judge.rubrics_dir')")
        templates[task] = path.read_text(encoding="utf-8")
    return templates


def judge_prompt(template: str, row: dict, style: str = "ours") -> str:
    """The rubric filled in: ``{instruction}`` and ``{source}`` are the item's prompt (the bare source
    or instruction under prompt_style 'original'); an empty answer reads "(empty)", or, in the
    original's style, stays empty."""
    response = row["response"] if style == "original" else row["response"] or "(empty)"
    return template.format(instruction=row["prompt"], source=row["prompt"], reference=row["reference"], response=response)


def judge_generations(
    *,
    generations: str | Path,
    output: str | Path,
    judge: dict,
    cache_path: str | Path,
    config: dict,
    sleep=time.sleep,
) -> list[dict]:
    """Judge every response of a ``generations.jsonl`` and write ``judgments.jsonl`` atomically.

    Items the judge failed on are written as failures. If it failed on every item (endpoint down,
    bad key, unknown model) nothing is written and the job fails, naming the last error.
    """
    started = time.perf_counter()
    settings = JudgeSettings.from_config(judge)
    client = JudgeClient(settings, settings.api_key(), sleep=sleep)
    rows = read_jsonl(generations)
    templates = load_rubrics(settings.rubrics_dir, {row["task"] for row in rows})
    cache = VerdictCache(cache_path)

    def judged(row: dict) -> Verdict:
        prompt = judge_prompt(templates[row["task"]], row, settings.style)
        key = cache_key(settings.model, prompt, settings.style)
        verdict = cache.get(key)
        if verdict is None:
            verdict = client.judge(prompt)
            if verdict.score is not None:
                cache.put(key, settings.model, verdict)
        return verdict

    with ThreadPoolExecutor(max_workers=settings.max_concurrency) as pool:
        verdicts = list(pool.map(judged, rows))
    failures = [verdict for verdict in verdicts if verdict.score is None]
    if rows and len(failures) == len(rows):
        raise RuntimeError(f"the judge at {settings.base_url} (model {settings.model!r}) failed on all {len(rows)} items; last error: {failures[-1].error}")
    # the stamp's model is the judge (it wrote these scores); the judged model's identity is kept beside it
    stamp = provenance(
        model_id=settings.model, revision=None, mask=rows[0]["mask"] if rows else None,
        config=config, seed=config["seed"], wall_seconds=time.perf_counter() - started,
    )  # fmt: skip
    stamp["judge"] = {
        "base_url": settings.base_url,
        "rubric_sha256": {task: hashlib.sha256(template.encode()).hexdigest() for task, template in sorted(templates.items())},
    }
    stamp["judged_model"] = rows[0]["provenance"]["model"] if rows else None
    judgments = [
        {
            "id": row["id"], "task": row["task"], "score": verdict.score, "reason": verdict.reason,
            "error": verdict.error, "attempts": verdict.attempts, "cached": verdict.cached, "provenance": stamp,
        }  # fmt: skip
        for row, verdict in zip(rows, verdicts)
    ]
    atomic_write_jsonl(output, judgments)
    log.info(
        "judged %d responses: %d from the cache, %d failed", len(rows), sum(verdict.cached for verdict in verdicts), len(failures)
    )
    return judgments
