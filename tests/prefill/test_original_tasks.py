"""The `original` task set: the original study's prompts, tokenization and metric, checked per request
against a batch-1 re-implementation of its scorer on the tiny model.

The hub datasets cannot be downloaded here, so the tasks are pointed at small local files in the
real datasets' schema, through a task directory whose YAMLs include the packaged ones and override
only where the data comes from.
"""

from __future__ import annotations

import json

import datasets
import pytest
import torch
import yaml
from lm_eval.tasks._yaml_loader import load_yaml

from ablation.prefill.evaluate import evaluate_model
from ablation.prefill.lm_eval_model import MaskedHFLM
from ablation.models import load_causal_lm, load_tokenizer
from ablation.prefill.original.tasks import ORIGINAL_TASKS_DIR, utils
from ablation.prefill.original.scorer import causal_flag_cleared
from ablation.prefill.study import ORIGINAL_TASKS, REAL_TASKS
from ablation.prefill.task_sets import task_manager

# Rows in the hub datasets' schema, odd whitespace included.
ROWS = {
    "hellaswag": [
        {"activity_label": "Baking  cookies", "ctx_a": "A woman puts flour in a bowl.", "ctx_b": "she",
         "endings": ["adds two eggs.", "paints  the wall.", "drives away.", "sings\na song."], "label": "0"},
        {"activity_label": "Rowing", "ctx_a": " The team pushes off the dock. ", "ctx_b": "",
         "endings": ["falls asleep.", "rows down the river.", "eats lunch.", "reads a map."], "label": "1"},
    ],
    "piqa": [
        {"goal": "To  dry wet shoes,", "sol1": "stuff them with newspaper.", "sol2": "fill them with water.", "label": 0},
        {"goal": "Open a jar", "sol1": "freeze the lid", "sol2": "twist  the lid\twith a towel", "label": 1},
    ],
    "arc_easy": [
        {"question": "Which  is a mammal?", "choices": {"text": ["shark", "whale", "trout", "eel"], "label": ["A", "B", "C", "D"]}, "answerKey": "B"},
        {"question": "What melts ice?", "choices": {"text": ["heat", "cold", "dark"], "label": ["1", "2", "3"]}, "answerKey": "1"},
        {"question": "A row with a broken key?", "choices": {"text": ["yes", "no"], "label": ["A", "B"]}, "answerKey": "E"},
    ],
    "arc_challenge": [
        {"question": "Which gas do plants take in?", "choices": {"text": ["oxygen", "carbon dioxide", "helium", "neon"], "label": ["A", "B", "C", "D"]}, "answerKey": "B"},
        {"question": "What is the unknown key?", "choices": {"text": ["one", "two"], "label": ["A", "B"]}, "answerKey": "3"},
    ],
    "winogrande": [
        {"sentence": "The trophy does not fit in the  suitcase because _ is too big.", "option1": "the trophy", "option2": "the suitcase", "answer": "1"},
        {"sentence": "Sarah lent Maria a book because _ had finished  it.", "option1": "Sarah", "option2": " Maria", "answer": "1"},
    ],
}

# What the original fed its scorer for those rows (its logged rows): prompt, choices, gold.
EXPECTED = {
    "hellaswag": [
        ("Baking cookies: A woman puts flour in a bowl. she", [" adds two eggs.", " paints the wall.", " drives away.", " sings a song."], 0),
        ("Rowing: The team pushes off the dock.", [" falls asleep.", " rows down the river.", " eats lunch.", " reads a map."], 1),
    ],
    "piqa": [
        ("To dry wet shoes,\nAnswer:", [" stuff them with newspaper.", " fill them with water."], 0),
        ("Open a jar\nAnswer:", [" freeze the lid", " twist the lid with a towel"], 1),
    ],
    "arc_easy": [
        ("Which is a mammal?\nAnswer:", [" shark", " whale", " trout", " eel"], 1),
        ("What melts ice?\nAnswer:", [" heat", " cold", " dark"], 0),
    ],
    "arc_challenge": [
        ("Which gas do plants take in?\nAnswer:", [" oxygen", " carbon dioxide", " helium", " neon"], 1),
    ],
    "winogrande": [
        # the original scored winogrande raw: no whitespace collapsed
        ("The trophy does not fit in the  suitcase because ", ["the trophy is too big.", "the suitcase is too big."], 0),
        ("Sarah lent Maria a book because ", ["Sarah had finished  it.", " Maria had finished  it."], 0),
    ],
}
PROCESS = {
    "hellaswag": utils.process_hellaswag,
    "piqa": utils.process_piqa,
    "arc_easy": utils.process_arc,
    "arc_challenge": utils.process_arc,
    "winogrande": utils.process_winogrande,
}


@pytest.fixture(scope="module")
def local_tasks(tmp_path_factory):
    """A task directory whose original_* tasks read the rows above instead of the hub."""
    directory = tmp_path_factory.mktemp("original_tasks")
    for name, rows in ROWS.items():
        data = directory / f"{name}.jsonl"
        data.write_text("".join(json.dumps(row) + "\n" for row in rows))
        config = {
            "include": str(ORIGINAL_TASKS_DIR / f"original_{name}.yaml"),
            "task": f"original_{name}",
            "dataset_path": "json",
            "dataset_name": None,
            "dataset_kwargs": {"data_files": {"validation": str(data)}},
        }
        (directory / f"original_{name}.yaml").write_text(yaml.safe_dump(config))
    return directory


@pytest.mark.parametrize("name", list(ROWS))
def test_prompt_formats_are_the_originals(name):
    docs = PROCESS[name](datasets.Dataset.from_list(ROWS[name]))
    assert [(doc["query"], doc["choices"], doc["gold"]) for doc in docs] == EXPECTED[name]


def test_the_tasks_read_the_datasets_lm_evals_own_tasks_read():
    manager = task_manager(None)
    for task in REAL_TASKS:
        ours, theirs = (load_yaml(manager.task_index[name].yaml_path, resolve_func=False) for name in (f"original_{task}", task))
        assert (ours["dataset_path"], ours.get("dataset_name")) == (theirs["dataset_path"], theirs.get("dataset_name"))


def test_arc_rows_with_an_unknown_answer_key_are_skipped():
    kept = utils.process_arc(datasets.Dataset.from_list(ROWS["arc_easy"] + ROWS["arc_challenge"]))
    assert [doc["question"] for doc in kept] == [
        "Which  is a mammal?", "What melts ice?", "Which gas do plants take in?"
    ]


def original_scorer(model, tokenizer, prompt: str, choice: str, mask: str) -> tuple[float, int]:
    """The original's scorer: one batch-1 forward over tokenize(prompt + choice) without special tokens,
    the mean log-probability of the tokens from len(tokenize(prompt)) on; its patch for full_bidir.

    prefill_bidir has no original counterpart: the same forward with the prefix-LM mask of the
    original's Stage 3B collator (prompt columns visible to every row).
    """
    ids = tokenizer(prompt + choice, add_special_tokens=False)["input_ids"]
    start = len(tokenizer(prompt, add_special_tokens=False)["input_ids"])
    inputs = torch.tensor([ids])
    with torch.inference_mode():
        if mask == "full_bidir":
            with causal_flag_cleared(model):
                logits = model(input_ids=inputs).logits
        elif mask == "prefill_bidir":
            position = torch.arange(len(ids))
            visible = (position[None, :] <= position[:, None]) | (position[None, :] < start)
            logits = model(input_ids=inputs, attention_mask=visible[None, None]).logits
        else:
            logits = model(input_ids=inputs).logits
    logprobs = logits[0, start - 1 : -1].float().log_softmax(-1)  # [continuation, vocab]
    targets = torch.tensor(ids[start:])
    return logprobs.gather(-1, targets[:, None]).mean().item(), len(targets)


@pytest.mark.parametrize("mask", ["causal", "prefill_bidir", "full_bidir"])
def test_scores_equal_the_original_scorer_per_request(micro_world, local_tasks, tmp_path, mask):
    model_dir = str(micro_world / "base_model")
    metrics = evaluate_model(
        model_id=model_dir, mask=mask, output_dir=tmp_path, config={}, task_set="original", tasks_dir=local_tasks, batch_size=3
    )
    model, tokenizer = load_causal_lm(model_dir), load_tokenizer(model_dir)
    samples = [json.loads(line) for line in (tmp_path / "samples.jsonl").read_text().splitlines()]
    assert len(samples) == sum(map(len, EXPECTED.values()))
    differences = []
    for sample in samples:
        prompt, choices, gold = EXPECTED[sample["task"].removeprefix("original_")][sample["doc_id"]]
        assert sample["arguments"] == [[prompt, choice] for choice in choices]
        reference = [original_scorer(model, tokenizer, prompt, choice, mask) for choice in choices]
        assert sample["continuation_tokens"] == [tokens for _, tokens in reference]
        ours = [response[0][0] / tokens for response, tokens in zip(sample["resps"], sample["continuation_tokens"])]
        differences += [abs(a - b) for a, (b, _) in zip(ours, reference)]
        expected_correct = max(range(len(choices)), key=lambda i: reference[i][0]) == gold
        assert sample["acc_per_token"] == float(expected_correct)
    assert max(differences) < 1e-4
    for task in ORIGINAL_TASKS:
        per_task = [s["acc_per_token"] for s in samples if s["task"] == task]
        assert metrics["tasks"][task]["acc_per_token"] == pytest.approx(sum(per_task) / len(per_task))
        assert metrics["tasks"][task]["acc_norm"] is not None
    assert metrics["macro_acc_per_token"] == pytest.approx(
        sum(metrics["tasks"][task]["acc_per_token"] for task in ORIGINAL_TASKS) / len(ORIGINAL_TASKS)
    )
    assert metrics["provenance"]["tokenization"] == {"bos": False, "pair_encoding": "original"}


def test_other_task_sets_keep_lm_evals_tokenization(micro_world, tmp_path):
    metrics = evaluate_model(
        model_id=str(micro_world / "base_model"), mask="causal", output_dir=tmp_path, config={}, task_set="tiny",
        tasks=["tiny_piqa"], tasks_dir=micro_world / "tasks", limit=2,
    )
    assert metrics["provenance"]["tokenization"] == {"bos": True, "pair_encoding": "lm_eval"}
    assert "acc_per_token" not in metrics["tasks"]["tiny_piqa"] and "macro_acc_per_token" not in metrics


def test_the_original_split_keeps_the_prompts_trailing_space_in_the_prompt(micro_world):
    """lm-eval moves it into the continuation, which scores one more token than the original did."""
    model_dir = str(micro_world / "base_model")
    original = MaskedHFLM(model_dir, add_bos_token=False, pair_encoding="original")
    lm_eval_split = MaskedHFLM(model_dir, add_bos_token=False)
    prompt, choices, _ = EXPECTED["winogrande"][1]
    tokenizer = original.tokenizer
    context, continuation = original._encode_pair(prompt, choices[0])
    assert context + continuation == tokenizer(prompt + choices[0], add_special_tokens=False)["input_ids"]
    assert len(context) == len(tokenizer(prompt, add_special_tokens=False)["input_ids"])
    assert len(lm_eval_split._encode_pair(prompt, choices[0])[1]) == len(continuation) + 1


def test_an_unknown_pair_encoding_names_the_allowed_ones(micro_world):
    with pytest.raises(ValueError, match="lm_eval, original"):
        MaskedHFLM(str(micro_world / "base_model"), pair_encoding="originl")
