"""Answer extraction and QA scoring for the bridge study, as the original scored them.

GSM8K follows the original exactly: the number after ``#### `` (OpenAI grade-school-math's
regex), commas removed, ``[invalid]`` without a marker and no fallback to the last number.
Extracted strings are compared as strings, also as the original did, so a trailing period is
kept: ``#### 18.`` extracts ``18.``, which does not equal ``18``. A preserved run of the
original confirms it: its step-500 bridged accuracy (0.005) is reproduced only when
the ``2.`` the model wrote for the gold ``2`` counts as wrong.

HotpotQA uses the official evaluation's normalisation, exact match and token F1 (SQuAD v1.1
semantics plus HotpotQA's yes/no/noanswer rule) on the first non-blank line of the generation.
The functions take the task whose rule scores (``data.scoring_task``): HotpotQA scored as the
original scored it (``bridge.datasets.hotpotqa.scoring: gsm8k``) goes through GSM8K's rule.
"""

from __future__ import annotations

import re
import string
from collections import Counter

from ablation.bridge.prompts import INVALID, check_dataset

GSM8K_ANSWER = re.compile(r"#### (\-?[0-9\.\,]+)")
ARTICLES = re.compile(r"\b(a|an|the)\b")
PUNCTUATION = frozenset(string.punctuation)
CLOSED_ANSWERS = ("yes", "no", "noanswer")  # HotpotQA: a wrong yes/no earns no partial credit


def extract_gsm8k_answer(text: str) -> str:
    """The number after the first ``#### `` with commas removed, verbatim otherwise; INVALID without one."""
    match = GSM8K_ANSWER.search(text)
    return match.group(1).replace(",", "") if match else INVALID


def gsm8k_correct(pred_extracted: str, gold_extracted: str) -> bool:
    return pred_extracted != INVALID and pred_extracted == gold_extracted


def normalize_answer(text: str) -> str:
    """SQuAD normalisation: lower case, no punctuation, no articles, single spaces."""
    text = "".join(char for char in text.lower() if char not in PUNCTUATION)
    return " ".join(ARTICLES.sub(" ", text).split())


def exact_match(pred: str, gold: str) -> float:
    return float(normalize_answer(pred) == normalize_answer(gold))


def token_f1(pred: str, gold: str) -> float:
    """Harmonic mean of token precision and recall after normalisation (HotpotQA's ``f1_score``)."""
    pred_normalized, gold_normalized = normalize_answer(pred), normalize_answer(gold)
    if pred_normalized != gold_normalized and (pred_normalized in CLOSED_ANSWERS or gold_normalized in CLOSED_ANSWERS):
        return 0.0
    pred_tokens, gold_tokens = pred_normalized.split(), gold_normalized.split()
    shared = sum((Counter(pred_tokens) & Counter(gold_tokens)).values())
    if shared == 0:
        return 0.0
    precision, recall = shared / len(pred_tokens), shared / len(gold_tokens)
    return 2 * precision * recall / (precision + recall)


def extract_short_answer(text: str) -> str:
    """The first non-blank line of the generation, stripped; INVALID for a blank generation.

    Leading blank lines are skipped because chat models often open with a newline after ``Answer:``.
    """
    stripped = text.strip()
    return stripped.splitlines()[0].strip() if stripped else INVALID


def extract_answer(dataset: str, text: str) -> str:
    """What a generation answers, in the form stored as ``*_extracted``."""
    if check_dataset(dataset) == "gsm8k":
        return extract_gsm8k_answer(text)
    return extract_short_answer(text)


def score_extracted(dataset: str, extracted: str, gold: str) -> dict:
    """Score an extracted answer against the gold answer (GSM8K: the gold's extracted number)."""
    if check_dataset(dataset) == "gsm8k":
        return {"extracted": extracted, "correct": gsm8k_correct(extracted, gold)}
    em, f1 = (0.0, 0.0) if extracted == INVALID else (exact_match(extracted, gold), token_f1(extracted, gold))
    return {"extracted": extracted, "correct": em == 1.0, "em": em, "f1": f1}


def score(dataset: str, generation: str, gold: str) -> dict:
    """``{"extracted", "correct"}``, plus ``"em"`` and ``"f1"`` for HotpotQA, for one generation."""
    return score_extracted(dataset, extract_answer(dataset, generation), gold)
