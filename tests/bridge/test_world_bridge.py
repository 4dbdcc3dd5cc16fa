"""Tests of the tiny latent bridge's data and second LM: determinism, held-out splits, correct
answers, hub-shaped rows, the Llama pre-training path and the untouched Mistral one."""

import json
import re

import pytest

from ablation.bridge.prompts import SOFT_SUFFIX, soft_question, task_prompt
from ablation.bridge.world_data import build_bridge_world_data, draw_rows
from ablation.config import load_schema
from ablation.world.pretrain import pretrain_model
from ablation.world.tokenizer import train_tokenizer
from ablation.world.corpus import DOCUMENT_SEPARATOR
from ablation.world.pretrain import MODEL_KEYS, TRAINING_KEYS, pack_corpus
from ablation.world.twohop import first_hop

SIZES = dict(train_examples=60, test_examples=20, corpus_documents=300)
FILES = ["corpus.txt", "gsm8k/test.jsonl", "gsm8k/train.jsonl", "hotpotqa/train.jsonl", "hotpotqa/validation.jsonl"]
MODEL = dict(
    hidden_size=24, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256, rope_theta=1000.0
)
TRAINING = dict(max_steps=6, batch_size=4, seq_len=128, learning_rate=3e-3, warmup_steps=1, weight_decay=0.0)


def read_jsonl(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def mentions(text, entity):
    """Whether `text` names `entity` as a whole word ("farm" is not in "farmer")."""
    return re.search(rf"\b{entity}\b", text) is not None


def snapshot(root):
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("bridge")
    summary = build_bridge_world_data(root, seed=5, **SIZES)
    return root, summary


@pytest.fixture(scope="module")
def tokenizer_dir(data):
    root, _ = data
    train_tokenizer(root / "corpus.txt", root / "tokenizer", vocab_size=320)
    return root / "tokenizer"


def test_same_seed_is_byte_identical_and_seeds_differ(data, tmp_path):
    root, _ = data
    build_bridge_world_data(tmp_path / "again", seed=5, **SIZES)
    build_bridge_world_data(tmp_path / "other", seed=6, **SIZES)
    first = {k: v for k, v in snapshot(root).items() if k in FILES}
    assert sorted(first) == FILES
    assert snapshot(tmp_path / "again") == first
    assert all(snapshot(tmp_path / "other")[name] != first[name] for name in FILES)


def test_layout_and_summary(data):
    root, summary = data
    assert summary["corpus.txt"]["documents"] == SIZES["corpus_documents"]
    for name in FILES[1:]:
        assert len(read_jsonl(root / name)) == summary[name]
        assert summary[name] == SIZES["train_examples" if name.endswith("train.jsonl") else "test_examples"]
    docs = (root / "corpus.txt").read_text().rstrip("\n").split(DOCUMENT_SEPARATOR)
    assert len(docs) == SIZES["corpus_documents"]
    assert all(doc.strip() == doc and doc for doc in docs)


def test_test_items_never_reach_training_or_corpus(data):
    root, _ = data
    corpus = (root / "corpus.txt").read_text()
    for dataset, held_out in (("gsm8k", "test"), ("hotpotqa", "validation")):
        train, test = read_jsonl(root / dataset / "train.jsonl"), read_jsonl(root / dataset / f"{held_out}.jsonl")
        # A two-hop item is its question together with its paragraphs.
        train_items = {soft_question(dataset, row) for row in train}
        test_items = [soft_question(dataset, row) for row in test]
        assert len(set(test_items)) == len(test_items) and not train_items & set(test_items)
        assert not [item for item in test_items if item in corpus]
        assert sum(item in corpus for item in train_items) > len(train_items) // 2


def test_draw_rows_skips_seen_items_even_in_a_small_space():
    import random

    def make_row(rng, row_id):
        return {"question": f"q{rng.randrange(5)}", "answer": "#### 1"}

    seen = set()
    test = draw_rows("gsm8k", make_row, random.Random(0), "test", 3, seen)
    train = draw_rows("gsm8k", make_row, random.Random(1), "train", 2, seen)
    assert len({r["question"] for r in test + train}) == 5
    with pytest.raises(ValueError, match="distinct"):
        draw_rows("gsm8k", make_row, random.Random(2), "train", 1, seen)


def evaluate_problem(question):
    """Re-derive a GSM8K-tiny answer from its wording alone: the first sentence's counts, then each step's verb."""
    first, *steps = re.findall(r"[^.?]+[.?]", question)
    total = sum(map(int, re.findall(r"\d+", first)))
    for sentence in steps:
        numbers = [int(n) for n in re.findall(r"\d+", sentence)]
        if not numbers:
            assert sentence.strip().startswith("How many")
            continue
        (count,) = numbers
        gains = re.search(r"\b(buys|finds|gets|gives (her|him))\b", sentence)
        losses = re.search(r"\b(loses|sells|breaks|gives)\b", sentence)
        assert gains or losses, sentence
        total += count if gains else -count
    return total


def test_gsm8k_answers_are_right_and_small(data):
    root, _ = data
    rows = read_jsonl(root / "gsm8k" / "train.jsonl") + read_jsonl(root / "gsm8k" / "test.jsonl")
    for row in rows:
        assert set(row) == {"question", "answer"}
        *work, final = row["answer"].split("\n")
        match = re.fullmatch(r"#### (\d+)", final)
        assert match and len(work) == 1, row
        assert int(match.group(1)) == evaluate_problem(row["question"]), row
        for a, op, b, result in re.findall(r"(\d+) ([+-]) (\d+) = (\d+)\.", work[0]):
            assert int(b) <= 9 and 0 <= int(result) <= 20
            assert int(result) == (int(a) + int(b) if op == "+" else int(a) - int(b))
    assert {len(re.findall(r"=", row["answer"])) for row in rows} == {1, 2}


def test_twohop_rows_are_hub_shaped_and_answerable(data):
    root, _ = data
    rows = read_jsonl(root / "hotpotqa" / "train.jsonl") + read_jsonl(root / "hotpotqa" / "validation.jsonl")
    assert len({row["id"] for row in rows}) == len(rows)
    for row in rows:
        assert set(row) == {"id", "question", "answer", "type", "level", "supporting_facts", "context"}
        titles, sentences = row["context"]["title"], row["context"]["sentences"]
        assert len(titles) == len(sentences) == 4 and len(set(titles)) == 4
        support = row["supporting_facts"]
        assert len(support["title"]) == len(support["sent_id"]) == 2 and len(set(support["title"])) == 2
        person, bridge = (sentences[titles.index(t)][i] for t, i in zip(support["title"], support["sent_id"]))
        assert mentions(person, first_hop(row)["answer"])  # the first hop names the bridge entity ...
        assert mentions(bridge, row["answer"])  # ... whose paragraph names the answer
        distractors = [" ".join(s) for t, s in zip(titles, sentences) if t not in support["title"]]
        assert not [d for d in distractors if mentions(d, row["answer"])]
        assert all(s[0] != " " and all(later.startswith(" ") for later in s[1:]) for s in sentences)
    assert {row["level"] for row in rows} == {"easy", "medium"}


def test_soft_documents_put_bos_before_the_suffix(data, tokenizer_dir):
    from transformers import AutoTokenizer

    root, _ = data
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    docs = (root / "corpus.txt").read_text().rstrip("\n").split(DOCUMENT_SEPARATOR)
    suffix = tokenizer(SOFT_SUFFIX["gsm8k"])["input_ids"]  # BOS + suffix, as the bridge feeds it
    soft = next(doc for doc in docs if SOFT_SUFFIX["gsm8k"] in doc)
    ids = tokenizer(soft, add_special_tokens=False)["input_ids"]
    assert any(ids[i : i + len(suffix)] == suffix for i in range(len(ids)))


def test_soft_documents_are_the_soft_slot_prompt_and_the_answer():
    from ablation.bridge.prompts import answer_text, soft_slot_prompt
    from ablation.bridge.world_data import soft_document
    from ablation.world.tokenizer import SPECIAL_TOKENS

    row = {"question": "Ada has 3 cups. How many cups does Ada have now?", "answer": "3.\n#### 3"}
    assert soft_document("gsm8k", row) == soft_slot_prompt("gsm8k", row, SPECIAL_TOKENS["bos_token"]) + answer_text("gsm8k", row)
    assert soft_document("gsm8k", row).startswith(row["question"] + SPECIAL_TOKENS["bos_token"] + SOFT_SUFFIX["gsm8k"])


def test_bridge_separator_keeps_prompts_whole(data, tokenizer_dir):
    from transformers import AutoTokenizer

    root, _ = data
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    text = (root / "corpus.txt").read_text()
    row = read_jsonl(root / "gsm8k" / "train.jsonl")[0]
    assert "\n\n" in task_prompt("gsm8k", row)  # so blank lines cannot delimit documents here
    packed_eos = {sep: int((pack_corpus(text, tokenizer, 16, sep) == tokenizer.eos_token_id).sum()) for sep in (DOCUMENT_SEPARATOR, "\n\n")}
    # At most one EOS per document (block starts overwrite a few); blank lines would cut prompts apart.
    assert SIZES["corpus_documents"] * 0.8 < packed_eos[DOCUMENT_SEPARATOR] <= SIZES["corpus_documents"]
    assert packed_eos["\n\n"] > 2 * SIZES["corpus_documents"]


def test_llama_target_trains_and_loads(data, tokenizer_dir, tmp_path):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaForCausalLM

    root, _ = data
    out = tmp_path / "bridge_model"
    summary = pretrain_model(
        root / "corpus.txt", tokenizer_dir, out, seed=0, model=MODEL, training=TRAINING, architecture="llama", document_separator=DOCUMENT_SEPARATOR
    )
    model = AutoModelForCausalLM.from_pretrained(out)
    tokenizer = AutoTokenizer.from_pretrained(out)
    assert isinstance(model, LlamaForCausalLM) and model.config.model_type == "llama"
    assert model.config.hidden_size == MODEL["hidden_size"] and len(tokenizer) == 320
    assert json.loads((out / "pretrain_summary.json").read_text()) == summary
    assert summary["final_train_loss"] < summary["initial_train_loss"]
    ids = torch.tensor([tokenizer.encode("Anna has 3 lamps.")])
    assert model(input_ids=ids).logits.shape == (1, ids.shape[1], len(tokenizer))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bridge_model"]


def test_mistral_path_is_unchanged(tmp_path):
    from safetensors.torch import load_file
    from transformers import AutoConfig

    from ablation.world.data import build_world_data

    build_world_data(tmp_path / "world", seed=0, corpus_documents=150, eval_examples_per_task=2, instruction_examples=2)
    corpus = tmp_path / "world" / "corpus.txt"
    train_tokenizer(corpus, tmp_path / "tok", vocab_size=300)
    small = dict(TRAINING, seq_len=64)
    pretrain_model(corpus, tmp_path / "tok", tmp_path / "default", seed=0, model=MODEL, training=small)
    pretrain_model(
        corpus, tmp_path / "tok", tmp_path / "explicit", seed=0, model=MODEL, training=small, architecture="mistral", document_separator="\n\n"
    )
    config = AutoConfig.from_pretrained(tmp_path / "default")
    assert config.model_type == "mistral" and config.sliding_window is None
    first, second = load_file(tmp_path / "default" / "model.safetensors"), load_file(tmp_path / "explicit" / "model.safetensors")
    assert first.keys() == second.keys() and all((first[k] == second[k]).all() for k in first)
    with pytest.raises(ValueError, match="architecture"):
        pretrain_model(corpus, tmp_path / "tok", tmp_path / "bad", seed=0, model=MODEL, training=small, architecture="gpt2")


def test_defaults_fit_the_pretraining_keys():
    lms = load_schema()["properties"]["bridge"]["properties"]["world"]["properties"]["models"]["properties"]
    assert set(lms) == {"bridge_model", "bridge_source_model"}
    for lm in lms.values():
        default = lm["default"]
        assert set(default["model"]) == set(MODEL_KEYS) and set(default["training"]) == set(TRAINING_KEYS)
        assert default["training"]["seq_len"] <= default["model"]["max_position_embeddings"]
    source, target = lms["bridge_source_model"]["default"], lms["bridge_model"]["default"]
    # different families, tokenizers and widths, the target the larger
    assert (source["architecture"], target["architecture"]) == ("mistral", "llama")
    assert source["vocab_size"] != target["vocab_size"] and source["model"]["hidden_size"] < target["model"]["hidden_size"]
