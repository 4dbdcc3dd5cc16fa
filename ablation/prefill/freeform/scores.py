"""Score every configuration's free-form generations: each task's reference metrics, and the
judge's mean score where the answers were judged, with 95% bootstrap intervals (``scores.json``)."""

from __future__ import annotations

from pathlib import Path

from ablation.io import atomic_write_json, read_jsonl
from ablation.prefill.freeform.metrics import JUDGE_METRIC, score
from ablation.stats import bootstrap_mean_ci


OVERALL = "overall"  # the judge's row over every task's items


def judge_rows(model: str, mask: str, judgments: list[dict], *, resamples: int) -> list[dict]:
    """Per task, then over all tasks' items pooled, the judge's mean score (1–5) over the items it
    scored; failures are counted, not averaged in."""
    rows = []
    for task in sorted({judgment["task"] for judgment in judgments}):
        task_judgments = [judgment for judgment in judgments if judgment["task"] == task]
        scores = [judgment["score"] for judgment in task_judgments if judgment["score"] is not None]
        interval = bootstrap_mean_ci(scores, resamples=resamples) if scores else {"mean": None, "ci95": None}
        rows.append({
            "model": model, "mask": mask, "task": task, "metric": JUDGE_METRIC, "value": interval["mean"], "ci95": interval["ci95"],
            "n": len(scores), "judge_failures": len(task_judgments) - len(scores), "empty_responses": None,
        })  # fmt: skip
    scores = [judgment["score"] for judgment in judgments if judgment["score"] is not None]
    if scores:  # the original's "overall": every scored item of every task, pooled
        interval = bootstrap_mean_ci(scores, resamples=resamples)
        rows.append({
            "model": model, "mask": mask, "task": OVERALL, "metric": JUDGE_METRIC, "value": interval["mean"], "ci95": interval["ci95"],
            "n": len(scores), "judge_failures": len(judgments) - len(scores), "empty_responses": None,
        })  # fmt: skip
    return rows


def score_generations(
    generations: dict[tuple[str, str], str | Path],
    output: str | Path,
    *,
    resamples: int,
    judgments: dict[tuple[str, str], str | Path] | None = None,
) -> dict:
    """Per (model, mask) and task: each reference metric, and the judge's score when judged, with 95% intervals.

    ``generations`` (and ``judgments``) map (model, mask) to a generations.jsonl (a judgments.jsonl).
    """
    rows = []
    for (model, mask), path in generations.items():
        records = read_jsonl(path)
        for task in sorted({record["task"] for record in records}):
            task_records = [record for record in records if record["task"] == task]
            responses = [record["response"] for record in task_records]
            references = [record["reference"] for record in task_records]
            base = {"model": model, "mask": mask, "task": task, "empty_responses": sum(not response for response in responses)}
            for metric in task_records[0]["metrics"]:
                rows.append({**base, "metric": metric, **score(metric, responses, references, resamples=resamples)})
        if judgments:
            rows += judge_rows(model, mask, read_jsonl(judgments[(model, mask)]), resamples=resamples)
    summary = {"rows": rows, "configurations": [list(key) for key in generations], "judged": bool(judgments)}
    atomic_write_json(output, summary)
    return summary
