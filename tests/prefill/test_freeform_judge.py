"""The LLM judge against a real local HTTP server: retries, failures, cache, concurrency, the key."""

from __future__ import annotations

import json
import random
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

from ablation.config import validate_config
from ablation.prefill.freeform.judge import JudgeClient, JudgeError, JudgeSettings, backoff_delay, judge_generations, parse_verdict
from ablation.prefill.freeform.report import scores_table
from ablation.prefill.freeform.scores import judge_rows
from ablation.io import atomic_write_jsonl, read_jsonl
from tests.helpers import snakemake

REPOSITORY = Path(__file__).resolve().parents[2]
API_KEY = "sk-test-never-written-0123456789"
KEY_VARIABLE = "ABLATION_TEST_JUDGE_KEY"


class JudgeServer:
    """An OpenAI-compatible chat endpoint on localhost whose replies follow a per-item plan.

    ``plan`` maps a text found in the prompt (``*``: any prompt) to the behaviours of its successive calls:
    ``ok`` (score 4), ``ok:N``, ``malformed`` (prose, no JSON), ``not_completion`` (a body that is not
    a chat completion), ``429``, ``500``, ``401``, ``slow`` (replies after 1.5 s). Calls beyond the plan
    are ``ok``. Records every request, and the most calls ever in flight at once.
    """

    def __init__(self, plan: dict[str, list[str]] | None = None, delay: float = 0.0):
        self.plan = {item: list(behaviours) for item, behaviours in (plan or {}).items()}
        self.delay, self.requests, self.in_flight, self.max_in_flight = delay, [], 0, 0
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                prompt = body["messages"][0]["content"]
                with server._lock:
                    server.requests.append({"path": self.path, "body": body, "authorization": self.headers.get("Authorization")})
                    server.in_flight += 1
                    server.max_in_flight = max(server.max_in_flight, server.in_flight)
                    item = next((item for item in server.plan if item in prompt or item == "*"), None)
                    behaviour = server.plan[item].pop(0) if item and server.plan[item] else "ok"
                try:
                    time.sleep(server.delay)
                    server.reply(self, behaviour)
                finally:
                    with server._lock:
                        server.in_flight -= 1

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    @staticmethod
    def reply(handler, behaviour: str) -> None:
        if behaviour in ("429", "500", "401"):
            handler.send_response(int(behaviour))
            if behaviour == "429":
                handler.send_header("Retry-After", "0")
            handler.end_headers()
            return
        if behaviour == "slow":
            time.sleep(1.5)
        if behaviour == "not_completion":
            payload = b"<html>gateway</html>"
        else:
            content = "I would say it is quite good." if behaviour == "malformed" else json.dumps(
                {"score": int(behaviour.split(":")[1]) if ":" in behaviour else 4, "reason": "close to the reference"}
            )
            payload = json.dumps({"choices": [{"message": {"role": "assistant", "content": content}}]}).encode()
        handler.send_response(200)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(payload)))
        handler.end_headers()
        try:
            handler.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):  # the client timed out and left
            pass

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server_factory():
    servers = []

    def start(plan=None, delay=0.0):
        servers.append(JudgeServer(plan, delay))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


@pytest.fixture
def api_key(monkeypatch):
    monkeypatch.setenv(KEY_VARIABLE, API_KEY)
    return API_KEY


def judge_config(url, **overrides):
    config = {"seed": 7, "freeform": {"judge": {"activate": True, "base_url": url, "model": "judge-model", "api_key_env": KEY_VARIABLE,
                                                "rubrics_dir": str(REPOSITORY / "workflow" / "judge"), "timeout_seconds": 0.5,
                                                "backoff_seconds": 0.01, "max_attempts": 3, **overrides}}}  # fmt: skip
    validate_config(config)
    return config


def write_generations(path, count=4, task="translation_en_de"):
    stamp = {"model": {"id": "generator", "local_dir_sha256": "0" * 64}, "mask": "causal"}
    rows = [
        {"id": f"item-{index}", "task": task, "prompt": f"Translate item-{index} into German.", "reference": f"Satz {index}.",
         "response": f"Satz {index}." if index % 2 == 0 else "", "mask": "causal", "provenance": stamp}
        for index in range(count)
    ]  # fmt: skip
    atomic_write_jsonl(path, rows)
    return path


def run_judge(tmp_path, config, name="judgments.jsonl", sleeps=None):
    return judge_generations(
        generations=tmp_path / "generations.jsonl", output=tmp_path / name, judge=config["freeform"]["judge"],
        cache_path=tmp_path / "cache.jsonl", config=config, sleep=(sleeps.append if sleeps is not None else lambda seconds: None),
    )  # fmt: skip


def test_malformed_replies_rate_limits_and_timeouts_are_retried(tmp_path, server_factory, api_key):
    server = server_factory({"item-0": ["malformed", "ok:5"], "item-1": ["429", "ok:2"], "item-2": ["slow", "ok:3"], "item-3": ["not_completion", "500", "ok"]})
    write_generations(tmp_path / "generations.jsonl")
    sleeps = []
    judgments = run_judge(tmp_path, judge_config(server.url), sleeps=sleeps)
    assert [(row["score"], row["attempts"], row["error"]) for row in judgments] == [(5, 2, None), (2, 2, None), (3, 2, None), (4, 3, None)]
    assert 0.0 in sleeps  # the 429's Retry-After: 0 wins over the backoff
    assert len(sleeps) == 5 and all(0.0 <= seconds <= 0.02 for seconds in sleeps)  # item-3's bound doubles to 0.02
    request = server.requests[0]
    assert request["path"] == "/v1/chat/completions" and request["body"]["temperature"] == 0 and request["body"]["model"] == "judge-model"
    assert request["authorization"] == f"Bearer {API_KEY}"
    prompt = next(r["body"]["messages"][0]["content"] for r in server.requests if "item-2" in r["body"]["messages"][0]["content"])
    assert "Candidate translation:\nSatz 2." in prompt and "Reference translation:\nSatz 2." in prompt  # the task's rubric


def test_backoff_waits_are_drawn_below_a_doubling_bound_and_differ_between_jobs():
    rng = random.Random(0)
    for attempt in range(1, 6):
        bound = 2.0 * 2 ** (attempt - 1)
        waits = [backoff_delay(attempt, 2.0, rng) for _ in range(500)]
        assert all(0.0 <= wait <= bound for wait in waits)
        assert min(waits) < 0.05 * bound and max(waits) > 0.95 * bound  # spread over the whole range
    assert [backoff_delay(2, 2.0, random.Random(5)) for _ in range(2)] == [backoff_delay(2, 2.0, random.Random(5))] * 2
    jobs = [[backoff_delay(attempt, 2.0, random.Random(seed)) for attempt in (1, 2, 3)] for seed in (1, 2)]
    assert jobs[0] != jobs[1]  # two jobs failing together retry at different times


def test_the_client_sleeps_its_rngs_jittered_waits(server_factory, api_key):
    server = server_factory({"*": ["500", "500", "ok:4"]})
    sleeps = []
    client = JudgeClient(JudgeSettings.from_config(judge_config(server.url)["freeform"]["judge"]), api_key, sleep=sleeps.append, rng=random.Random(11))
    assert client.judge("item-0").score == 4
    expected = random.Random(11)
    assert sleeps == [backoff_delay(1, 0.01, expected), backoff_delay(2, 0.01, expected)]


def test_a_failure_is_recorded_and_left_out_of_the_mean_never_counted_as_zero(tmp_path, server_factory, api_key):
    server = server_factory({"item-1": ["malformed"] * 3, "item-2": ["ok:2"], "item-0": ["ok:4"], "item-3": ["401"]})
    write_generations(tmp_path / "generations.jsonl")
    judgments = run_judge(tmp_path, judge_config(server.url))
    assert [row["score"] for row in judgments] == [4, None, 2, None]
    assert judgments[1]["attempts"] == 3 and "JSON object" in judgments[1]["error"]
    assert judgments[3]["attempts"] == 1 and "HTTP 401" in judgments[3]["error"]  # retrying cannot fix a bad key
    row, overall = judge_rows("base", "causal", judgments, resamples=200)
    assert row["value"] == pytest.approx(3.0) and row["n"] == 2 and row["judge_failures"] == 2
    assert overall == {**row, "task": "overall"}  # one task: the pooled row is the same
    assert 2.0 <= row["ci95"][0] <= row["ci95"][1] <= 4.0
    table = scores_table({"rows": [row], "judged": True})
    assert table.loc[0, "judge failures"] == 2 and table.loc[0, "metric"] == "judge (1–5)"


def test_a_rerun_pays_only_for_what_the_cache_lacks(tmp_path, server_factory, api_key):
    server = server_factory({"item-2": ["500", "500", "500"]})
    write_generations(tmp_path / "generations.jsonl")
    first = run_judge(tmp_path, judge_config(server.url))
    assert [row["score"] is None for row in first] == [False, False, True, False] and len(server.requests) == 6
    second = run_judge(tmp_path, judge_config(server.url), name="again.jsonl")
    assert len(server.requests) == 7  # only the failed item is asked again
    assert [row["cached"] for row in second] == [True, True, False, True] and all(row["score"] == 4 for row in second)
    cache = read_jsonl(tmp_path / "cache.jsonl")
    assert len(cache) == 4 and {row["judge_model"] for row in cache} == {"judge-model"}
    third = run_judge(tmp_path, judge_config(server.url, model="another-judge"), name="other.jsonl")
    assert len(server.requests) == 11 and not any(row["cached"] for row in third)  # the key includes the judge model


def test_concurrency_is_bounded_and_the_key_is_written_nowhere(tmp_path, server_factory, api_key):
    server = server_factory(delay=0.2)
    write_generations(tmp_path / "generations.jsonl", count=8)
    run_judge(tmp_path, judge_config(server.url, max_concurrency=3))
    assert server.max_in_flight == 3
    for path in tmp_path.rglob("*"):
        assert API_KEY not in path.read_text(), path
    judgments = read_jsonl(tmp_path / "judgments.jsonl")
    stamp = judgments[0]["provenance"]
    assert stamp["model"]["id"] == "judge-model" and stamp["judged_model"]["id"] == "generator" and stamp["mask"] == "causal"
    assert set(stamp["judge"]["rubric_sha256"]) == {"translation_en_de"} and "config_sha256" in stamp


def test_an_unset_key_or_a_dead_endpoint_stops_with_nothing_written(tmp_path, server_factory, monkeypatch):
    write_generations(tmp_path / "generations.jsonl")
    server = server_factory()
    monkeypatch.delenv(KEY_VARIABLE, raising=False)
    with pytest.raises(ValueError, match=f"freeform.judge.api_key_env.*{KEY_VARIABLE}"):
        run_judge(tmp_path, judge_config(server.url))
    assert server.requests == []
    no_key = judge_config(server.url, api_key_env=None)
    run_judge(tmp_path, no_key)
    assert server.requests[0]["authorization"] is None
    dead = judge_config("http://127.0.0.1:9/v1", max_attempts=2, api_key_env=None, model="unreached-judge")
    with pytest.raises(RuntimeError, match="failed on all 4 items.*no reply"):
        run_judge(tmp_path, dead, name="dead.jsonl")
    assert not (tmp_path / "dead.jsonl").exists()


def test_verdict_parsing():
    assert parse_verdict('{"score": 5, "reason": "exact"}') == (5, "exact")
    assert parse_verdict('```json\n{"score": "3", "reason": "partly"}\n```') == (3, "partly")
    assert parse_verdict('Sure. {"score": 2.0, "reason": "wrong city"} Hope this helps.') == (2, "wrong city")
    for reply in ('{"score": 0, "reason": "x"}', '{"score": 4.5}', '{"reason": "no score"}', '{"score": true}', "", "5", None):
        with pytest.raises(JudgeError, match="score|JSON"):
            parse_verdict(reply)


def test_the_originals_style_reads_replies_and_fills_rubrics_as_it_did(tmp_path, server_factory, api_key):
    assert parse_verdict('```json\n{"score": 4.5, "reason": "ok"}\n```', "original") == (4.5, "ok")  # the score as given
    with pytest.raises(JudgeError, match="not JSON") as prose:
        parse_verdict('Sure. {"score": 2, "reason": "x"}', "original")  # no JSON taken out of prose: retried
    assert prose.value.retryable
    for reply in ('{"reason": "no score"}', '{"score": 0}', '{"score": "4"}'):
        with pytest.raises(JudgeError, match="no positive score") as missing:
            parse_verdict(reply, "original")  # a 0 there, left out of its means: a failure, not retried
        assert not missing.value.retryable
    write_generations(tmp_path / "generations.jsonl", count=2)
    server = server_factory()
    original = judge_config(server.url, rubrics_dir=str(REPOSITORY / "workflow" / "judge" / "original"), style="original")
    assert [row["score"] for row in run_judge(tmp_path, original)] == [4, 4]
    (prompt,) = [request["body"]["messages"][0]["content"] for request in server.requests if "item-1" in request["body"]["messages"][0]["content"]]
    assert prompt.startswith("You are evaluating a machine translation from English to German.")
    assert "Source (English): Translate item-1 into German.\nReference translation: Satz 1.\nModel output: \n" in prompt  # empty stays empty
    assert prompt.endswith('{"score": <1-5>, "reason": "<brief explanation>"}')  # as sent, no trailing newline
    run_judge(tmp_path, judge_config(server.url), name="ours.jsonl")
    assert len(server.requests) == 4  # the cache keeps the styles apart: ours asks again


def test_rubric_templates_cover_the_original_tasks_with_a_default():
    directory = REPOSITORY / "workflow" / "judge"
    for name in ("default", "translation_en_de", "code_understanding"):
        text = (directory / f"{name}.txt").read_text()
        assert set(re.findall(r"(?<!\{)\{(\w+)\}(?!\})", text)) == {"instruction", "reference", "response"}
        assert '"score"' in text.format(instruction="i", reference="r", response="a")


def test_config_judge_is_off_by_default_and_on_needs_an_endpoint():
    config = {}
    validate_config(config)
    assert config["freeform"]["judge"]["activate"] is False and config["freeform"]["judge"]["api_key_env"] == "OPENAI_API_KEY"
    with pytest.raises(ValueError, match="freeform.judge"):
        validate_config({"freeform": {"judge": {"activate": True, "model": "m"}}})
    with pytest.raises(ValueError, match="freeform.judge"):
        validate_config({"freeform": {"judge": {"api_key": "sk-inline"}}})


def test_snakemake_judges_through_the_rules_and_the_report_shows_the_judge(tmp_path, server_factory, monkeypatch):
    """A real Snakemake run of the micro free-form config with the judge on, against the local server."""
    server = server_factory({"*": ["malformed"] * 5})  # one job, one call at a time: the first item fails
    config = yaml.safe_load((REPOSITORY / "tests" / "configs" / "micro_freeform.yaml").read_text())
    config["finetune"]["runs"] = {}
    config["freeform"]["masks"] = ["causal"]
    config["freeform"]["judge"] = {"activate": True, "base_url": server.url, "model": "judge-model", "api_key_env": KEY_VARIABLE,
                                   "backoff_seconds": 0, "max_concurrency": 1, "rubrics_dir": str(REPOSITORY / "workflow" / "judge")}  # fmt: skip
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    monkeypatch.setenv(KEY_VARIABLE, API_KEY)
    result = snakemake(tmp_path, tmp_path / "config.yaml", "--quiet", "rules", "--", "results/freeform/RESULTS.md")
    assert result.returncode == 0, result.stderr[-3000:]
    judgments = read_jsonl(tmp_path / "results" / "freeform" / "base" / "causal" / "judgments.jsonl")
    failed = [row for row in judgments if row["score"] is None]
    assert len(judgments) == 8 and len(failed) == 1 and failed[0]["attempts"] == 5 and len(server.requests) == 12
    scores = json.loads((tmp_path / "results" / "freeform" / "scores.json").read_text())
    judge = {row["task"]: row for row in scores["rows"] if row["metric"] == "judge"}
    assert set(judge) == {"tiny_route_retell", "tiny_move_answer", "overall"}
    assert judge["overall"]["n"] == judge["tiny_route_retell"]["n"] + judge["tiny_move_answer"]["n"]  # every item pooled, as the original's
    assert judge[failed[0]["task"]]["judge_failures"] == 1 and judge[failed[0]["task"]]["n"] == 3
    assert "judge failures" in (tmp_path / "results" / "freeform" / "RESULTS.md").read_text()
    assert API_KEY not in (tmp_path / "results" / "freeform" / "judge_cache.jsonl").read_text()
