"""The texts the bridge study shows its models: training and evaluation prompts, and what the
target reads after the soft tokens (docs/bridge.md, "Config and pieces").

Pure string functions with no heavy imports: the tiny world renders its pre-training corpus
through them too, so the tiny LMs learn exactly the formats the study prompts with.
"""

from __future__ import annotations

import random

DATASETS = ("gsm8k", "hotpotqa")

GSM8K_TRAIN_PROMPT = (
    "Solve the problem step by step, then end your final line with '#### <number>'.\n\n"
    "Problem:\n{question}\n\nAnswer:"
)
GSM8K_FEWSHOT_HEADER = "Answer the following questions step by step and end with '#### <number>'."
GSM8K_FEWSHOT_QUESTION = "Q: {question}\nA: Let's think step by step.\n\nAnswer:"
HOTPOTQA_PROMPT = "Answer the question from the paragraphs.\n\n{paragraphs}\n\nQuestion: {question}\n\nAnswer:"

# What the target reads after the soft tokens (after BOS, which its tokenizer adds).
SOFT_SUFFIX = {
    "gsm8k": "\nAnswer the question above and end with '#### <number>'.",
    "hotpotqa": "\nAnswer the question above in a few words.",
}
ANSWER_CUE = "\n\nAnswer:"  # the task prompts' last line, where text-mode answers begin
FEWSHOT_SEED = 42  # the original sampled its 8 shots from the training split with this seed
INVALID = "[invalid]"  # what GSM8K's '#### n' rule extracts from an answer without a number after '#### '


def check_dataset(dataset: str) -> str:
    if dataset not in DATASETS:
        raise ValueError(f"unknown bridge dataset {dataset!r}; allowed: {', '.join(DATASETS)}")
    return dataset


def hotpotqa_paragraphs(context: dict) -> str:
    """HotpotQA's ``context`` ({title: [...], sentences: [[...]]}) as titled paragraphs."""
    return "\n".join(
        f"{title}: {''.join(sentences).strip()}" for title, sentences in zip(context["title"], context["sentences"])
    )


def task_prompt(dataset: str, row: dict) -> str:
    """The literal question prompt: what the source reads, and the target in text mode."""
    if check_dataset(dataset) == "gsm8k":
        return GSM8K_TRAIN_PROMPT.format(question=row["question"])
    return HOTPOTQA_PROMPT.format(paragraphs=hotpotqa_paragraphs(row["context"]), question=row["question"])


def soft_question(dataset: str, row: dict) -> str:
    """The text the soft tokens stand for: GSM8K's question, or HotpotQA's paragraphs and question
    (its task prompt without the answer cue)."""
    if check_dataset(dataset) == "gsm8k":
        return row["question"]
    return task_prompt(dataset, row).removesuffix(ANSWER_CUE)


def soft_slot_prompt(dataset: str, row: dict, opening: str) -> str:
    """The soft_only layout with the question's own text where the soft tokens go: what a
    word-for-word translator would hand the target. ``opening`` is the text of what the target's
    tokenizer opens every text with (its BOS, or ""), which the bridged layout puts after the soft
    tokens; tokenize the result without adding special tokens."""
    return soft_question(dataset, row) + opening + SOFT_SUFFIX[dataset]


def shot_answer(answer: str) -> str:
    """A shot's answer as the original's prefix wrote it, rationale then ``#### <n>``: GSM8K's solution
    as it is; an answer without ``#### `` (HotpotQA's, in GSM8K's prompts) gains ``#### [invalid]``,
    what the original's extractor made of it."""
    return answer if "#### " in answer else f"{answer}\n#### {INVALID}"


def fewshot_prefix(shots: list[dict]) -> str:
    """The original's chain-of-thought prefix: header, then each shot as ``Q: …\\nA: <rationale>\\n#### <n>``."""
    blocks = [GSM8K_FEWSHOT_HEADER] + [f"Q: {shot['question']}\nA: {shot_answer(shot['answer'])}" for shot in shots]
    return "\n\n".join(blocks) + "\n\n"


def eval_prompt(dataset: str, row: dict, shots: list[dict]) -> str:
    """The evaluation prompt: the task prompt, or for GSM8K with shots the original's few-shot CoT prompt."""
    if dataset == "gsm8k" and shots:
        return fewshot_prefix(shots) + GSM8K_FEWSHOT_QUESTION.format(question=row["question"])
    return task_prompt(dataset, row)


def asked_question(text: str) -> str:
    """The question a sample row asks: ``text`` itself, or, where ``text`` is a whole few-shot evaluation
    prompt (the original's rows hold the prompt in their ``question`` field), its last question."""
    head, marker, question = text.rpartition("\n\n" + GSM8K_FEWSHOT_QUESTION.split("{question}")[0])
    ending = GSM8K_FEWSHOT_QUESTION.split("{question}")[1]
    if marker and head.startswith(GSM8K_FEWSHOT_HEADER) and question.endswith(ending):
        return question.removesuffix(ending)
    return text


def training_prompt(dataset: str, row: dict, train_prompt: str, shots: list[dict]) -> str:
    """What the source reads in training: the task prompt, or (``train_prompt: eval``, the original's) the evaluation prompt."""
    return eval_prompt(dataset, row, shots) if train_prompt == "eval" else task_prompt(dataset, row)


def sample_shots(train_rows: list[dict], count: int, seed: int = FEWSHOT_SEED) -> list[dict]:
    """``count`` training rows drawn with a fixed seed, so every run and baseline sees the same prefix."""
    if count > len(train_rows):
        raise ValueError(f"few_shot {count} exceeds the {len(train_rows)} training rows")
    return random.Random(seed).sample(train_rows, count)


def answer_text(dataset: str, row: dict) -> str:
    """The continuation the target is trained to produce after its prompt (a leading space, no EOS)."""
    return " " + row["answer"].strip()
