"""Reference metrics of free-form answers, with percentile-bootstrap 95% intervals over items.

All on a 0–100 scale. ``chrf`` (chrF2) and ``bleu`` are sacrebleu's corpus scores: per-item
sufficient statistics are summed, so a bootstrap resample re-sums them rather than averaging
sentence scores. ``exact_match`` (after lower-casing and dropping punctuation) and ``token_f1``
(SQuAD's bag-of-words F1) are item means, bootstrapped by ``ablation.stats``.
"""

from __future__ import annotations

import re
import string
from collections import Counter

import numpy as np
from sacrebleu.metrics import BLEU, CHRF

from ablation.stats import CHUNK, CONFIDENCE, SEED, bootstrap_mean_ci

CORPUS_METRICS = {"chrf": CHRF, "bleu": BLEU}
ITEM_METRICS = ("exact_match", "token_f1")
METRICS = (*CORPUS_METRICS, *ITEM_METRICS)
JUDGE_METRIC = "judge"  # the rows of the optional LLM judge (ablation.prefill.freeform.judge), on its 1–5 scale
RESAMPLES = 1_000
_PUNCTUATION = re.compile(f"[{re.escape(string.punctuation)}]")


def normalise(text: str) -> str:
    return " ".join(_PUNCTUATION.sub(" ", text.lower()).split())


def exact_match(response: str, reference: str) -> float:
    return float(normalise(response) == normalise(reference))


def token_f1(response: str, reference: str) -> float:
    predicted, gold = normalise(response).split(), normalise(reference).split()
    common = sum((Counter(predicted) & Counter(gold)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(predicted), common / len(gold)
    return 2 * precision * recall / (precision + recall)


def corpus_score_ci(metric: str, responses: list[str], references: list[str], *, resamples: int, seed: int = SEED) -> dict:
    """sacrebleu's corpus score and the percentile interval of the score over resampled items."""
    scorer = CORPUS_METRICS[metric]()
    statistics = np.asarray(scorer._extract_corpus_statistics(responses, [references]), dtype=float)  # [items, stats]
    rng = np.random.default_rng(seed)
    scores = []
    for start in range(0, resamples, CHUNK):
        indices = rng.integers(0, len(responses), size=(min(CHUNK, resamples - start), len(responses)))  # [R, n]
        scores += [scorer._compute_score_from_stats(list(statistics[row].sum(0))).score for row in indices]
    tail = (1.0 - CONFIDENCE) / 2.0
    low, high = np.quantile(scores, [tail, 1.0 - tail])
    return {"value": float(scorer._compute_score_from_stats(list(statistics.sum(0))).score), "ci95": [float(low), float(high)]}


def score(metric: str, responses: list[str], references: list[str], *, resamples: int = RESAMPLES, seed: int = SEED) -> dict:
    """``{"value", "ci95", "n"}`` of ``metric`` over paired responses and references."""
    if metric not in METRICS:
        raise ValueError(f"unknown free-form metric {metric!r}; allowed: {', '.join(METRICS)}")
    if len(responses) != len(references) or not responses:
        raise ValueError(f"a metric needs as many responses as references, at least one; got {len(responses)} and {len(references)}")
    if metric in CORPUS_METRICS:
        result = corpus_score_ci(metric, responses, references, resamples=resamples, seed=seed)
    else:
        item_score = exact_match if metric == "exact_match" else token_f1
        values = [100.0 * item_score(response, reference) for response, reference in zip(responses, references)]
        interval = bootstrap_mean_ci(values, resamples=resamples, seed=seed)
        result = {"value": interval["mean"], "ci95": interval["ci95"]}
    return {**result, "n": len(responses)}
