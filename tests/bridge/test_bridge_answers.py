"""GSM8K extraction as the original did it, HotpotQA EM/F1 as the official evaluation does, and history rows."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ablation.bridge.answers import (
    INVALID,
    exact_match,
    extract_gsm8k_answer,
    extract_short_answer,
    gsm8k_correct,
    normalize_answer,
    score,
    token_f1,
)
from ablation.bridge.data import EvalExample, majority_accuracy, majority_answer
from ablation.bridge.run_format import SIDES, history_row, samples_step

LEGACY_RUN = Path(__file__).resolve().parents[3] / "shared" / "legacy" / "prompt_softonly_phase2_swap_20251119_001243"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("So 1000 + 234 = 1234.\n#### 1,234", "1234"),
        ("#### -5", "-5"),
        ("#### 2.50 dollars", "2.50"),
        ("She has 18 eggs left.\n#### 18.", "18."),  # kept verbatim, as the legacy run was scored
        ("####5", INVALID),  # the marker needs its space
        ("#### $18", INVALID),
        ("She sells 9 eggs at $2, so 18 dollars.", INVALID),  # no fallback to the last number
        ("", INVALID),
        ("#### 7\nWait, recount.\n#### 8", "7"),  # the first marker wins
    ],
)
def test_extract_gsm8k_answer(text, expected):
    assert extract_gsm8k_answer(text) == expected


@pytest.mark.parametrize(
    ("pred", "gold", "expected"),
    [("18", "18", True), ("18.", "18", False), ("18.0", "18", False), ("17", "18", False), (INVALID, INVALID, False)],
)
def test_gsm8k_correct_compares_strings_and_never_credits_invalid(pred, gold, expected):
    assert gsm8k_correct(pred, gold) is expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [("The  Eiffel Tower!", "eiffel tower"), ("An apple a day", "apple day"), ("U.S.A.", "usa"), ("Theatre", "theatre")],
)
def test_normalize_answer(text, expected):
    assert normalize_answer(text) == expected


def test_exact_match_ignores_case_punctuation_and_articles():
    assert exact_match("the Beatles.", "Beatles") == 1.0
    assert exact_match("Paris", "Paris, France") == 0.0


@pytest.mark.parametrize(
    ("pred", "gold", "expected"),
    [
        ("New York City", "new york", 0.8),  # precision 2/3, recall 1
        ("Paris", "Paris", 1.0),
        ("London", "Paris", 0.0),
        ("yes", "yes indeed", 0.0),  # a yes/no answer that differs earns nothing (plain SQuAD F1: 0.667)
        ("no", "no", 1.0),
        ("noanswer", "the answer", 0.0),
        ("", "Paris", 0.0),
        ("the the", "a", 0.0),  # nothing left after normalisation
    ],
)
def test_token_f1(pred, gold, expected):
    assert token_f1(pred, gold) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("  Paris \nBecause the question…", "Paris"), ("\n\nParis\nmore", "Paris"), (" \n\t", INVALID)],
)
def test_extract_short_answer_takes_the_first_non_blank_line(text, expected):
    assert extract_short_answer(text) == expected


def test_score_gsm8k():
    assert score("gsm8k", "Reasoning.\n#### 1,234", "1234") == {"extracted": "1234", "correct": True}
    assert score("gsm8k", "The answer is 1234.", "1234") == {"extracted": INVALID, "correct": False}


def test_score_hotpotqa():
    assert score("hotpotqa", " The Beatles\nThey formed in 1960.", "Beatles") == {
        "extracted": "The Beatles", "correct": True, "em": 1.0, "f1": 1.0
    }
    partial = score("hotpotqa", "New York City", "New York")
    assert (partial["correct"], partial["em"], partial["f1"]) == (False, 0.0, pytest.approx(0.8))


def test_a_blank_hotpotqa_generation_is_invalid_even_against_the_gold_word_invalid():
    assert score("hotpotqa", "\n", "invalid") == {"extracted": INVALID, "correct": False, "em": 0.0, "f1": 0.0}


def test_score_rejects_an_unknown_dataset():
    with pytest.raises(ValueError, match="squad"):
        score("squad", "x", "x")


def sample(gold: str, source: str, target: str, bridged: str) -> dict:
    return {"gold_extracted": gold, "source_extracted": source, "target_extracted": target, "bridged_extracted": bridged}


def test_history_row_gsm8k_counts_accuracy_and_invalid_answers():
    rows = [sample("18", "18", "18", INVALID), sample("3", "3", "4", "3."), sample("5", INVALID, "5", INVALID)]
    assert history_row(250, rows, "gsm8k") == {
        "step": 250, "source_acc": 2 / 3, "target_acc": 2 / 3, "bridged_acc": 0.0, "samples": 3,
        "invalid": {"source": 1, "target": 0, "bridged": 2},
    }


def test_history_row_hotpotqa_reports_mean_em_as_accuracy_and_mean_f1():
    rows = [sample("Paris", "Paris", "paris.", "Paris France"), sample("New York", "New York City", "Boston", INVALID)]
    row = history_row("final", rows, "hotpotqa")
    assert row["source_acc"] == 0.5 and row["target_acc"] == 0.5 and row["bridged_acc"] == 0.0
    assert row["source_f1"] == pytest.approx((1.0 + 0.8) / 2)
    assert row["target_f1"] == pytest.approx(0.5)
    assert row["bridged_f1"] == pytest.approx((2 / 3) / 2)
    assert row["invalid"] == {"source": 0, "target": 0, "bridged": 1}


def test_history_row_needs_samples():
    with pytest.raises(ValueError, match="no samples"):
        history_row(0, [], "gsm8k")


@pytest.mark.parametrize(
    ("name", "step"),
    [("eval_samples_step_0.jsonl", 0), ("eval_samples_step_1750.jsonl", 1750), ("eval_samples_step_final.jsonl", "final"),
     ("eval_samples_step_best.jsonl", None), ("eval_samples_step_5.jsonl.tmp", None)],
)
def test_samples_step(name, step):
    assert samples_step(name) == step


@pytest.mark.skipif(not LEGACY_RUN.is_dir(), reason="shared/legacy is not beside the repository")
def test_extraction_reproduces_every_answer_the_legacy_run_extracted():
    files = sorted(LEGACY_RUN.glob("*/eval_samples_step_*.jsonl"))
    assert len(files) == 10
    for path in files:
        for line in path.read_text(encoding="utf-8").splitlines():
            row = json.loads(line)
            for side in SIDES:
                assert extract_gsm8k_answer(row[f"{side}_full"]) == row[f"{side}_extracted"], (path.name, row["index"])


def test_the_majority_answer_is_the_most_common_gold_answer_ties_to_the_first_seen():
    rows = [{"answer": f"work\n#### {n}"} for n in (5, 3, 3, 5, 7)]
    assert majority_answer("gsm8k", rows) == "5"
    assert majority_answer("gsm8k", rows[1:]) == "3"


def test_the_majority_hotpotqa_answer_counts_normalised_forms_and_keeps_a_written_one():
    rows = [{"answer": answer} for answer in ("Tarn", "the tarn", "Velk", "Tarn.", "Velk")]
    assert majority_answer("hotpotqa", rows) == "Tarn"


def test_the_majority_floor_scores_one_answer_against_every_question():
    examples = [EvalExample(i, "q", "p", "g", gold) for i, gold in enumerate(["4", "4", "9", "4.0"])]
    assert majority_accuracy("gsm8k", "4", examples) == 0.5  # GSM8K compares the extracted strings exactly
    hotpot = [EvalExample(0, "q", "p", "g", "The Tarn"), EvalExample(1, "q", "p", "g", "Velk")]
    assert majority_accuracy("hotpotqa", "tarn", hotpot) == 0.5


# ---------------------------------------------------------------- HotpotQA as the original ran it
HOTPOT_ROWS = [
    {"question": f"Where was person {n} born?", "answer": f"Town {n}",
     "context": {"title": [f"Person {n}", "Other"], "sentences": [[f"Person {n} was born in Town {n}."], ["Unrelated."]]}}
    for n in range(4)
]  # fmt: skip
OWN = {"prompts": "own", "scoring": "own"}
ORIGINAL = {"prompts": "gsm8k", "scoring": "gsm8k"}
EVAL_SETTINGS = {"samples": 2, "batch_size": 1, "few_shot": 2, "few_shot_seed": 42}


def test_the_question_only_prompt_shows_no_paragraph_and_gsm8k_scoring_leaves_no_gold_answer():
    from ablation.bridge.data import eval_examples

    ours = eval_examples("hotpotqa", HOTPOT_ROWS, HOTPOT_ROWS, EVAL_SETTINGS, OWN)
    original = eval_examples("hotpotqa", HOTPOT_ROWS, HOTPOT_ROWS, EVAL_SETTINGS, ORIGINAL)
    assert "was born in Town 0." in ours[0].prompt and ours[0].gold == "Town 0"
    for example in original:
        assert "was born in" not in example.prompt and "Unrelated" not in example.prompt
        assert example.prompt.endswith(f"Q: {example.question}\nA: Let's think step by step.\n\nAnswer:")
        assert example.gold == INVALID
    # the original's 8-shot prefix, built from HotpotQA's rows: each shot ends with what its extractor made of it
    assert original[0].prompt.count(f"\n#### {INVALID}") == EVAL_SETTINGS["few_shot"]
    assert eval_examples("hotpotqa", HOTPOT_ROWS, HOTPOT_ROWS, EVAL_SETTINGS, {"prompts": "gsm8k", "scoring": "own"})[0].gold == "Town 0"


@pytest.mark.parametrize("answer", ["Town 0", "Town 0\n#### 0", "#### [invalid]", ""])
def test_the_gsm8k_rule_scores_no_hotpotqa_answer(answer):
    from ablation.bridge.data import eval_examples, unscorable_note

    gold = eval_examples("hotpotqa", HOTPOT_ROWS, HOTPOT_ROWS, EVAL_SETTINGS, ORIGINAL)[0].gold
    assert score("gsm8k", answer, gold)["correct"] is False
    assert unscorable_note("hotpotqa", "gsm8k") and not unscorable_note("hotpotqa", "hotpotqa") and not unscorable_note("gsm8k", "gsm8k")
