"""The world tokenizer: offline loading, round trips and lm-eval-compatible splits."""

import pytest

from ablation.world.data import build_world_data
from ablation.world.tokenizer import train_tokenizer


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    from transformers import AutoTokenizer

    root = tmp_path_factory.mktemp("tok")
    build_world_data(root / "world", seed=0, corpus_documents=300, eval_examples_per_task=4, instruction_examples=4)
    train_tokenizer(root / "world" / "corpus.txt", root / "tok", vocab_size=600)
    return AutoTokenizer.from_pretrained(root / "tok")


def test_special_tokens_are_set(tokenizer):
    assert tokenizer.bos_token == "<s>" and tokenizer.eos_token == "</s>"
    assert tokenizer.unk_token == "<unk>" and tokenizer.pad_token == "<pad>"
    assert len({tokenizer.bos_token_id, tokenizer.eos_token_id, tokenizer.unk_token_id, tokenizer.pad_token_id}) == 4
    assert len(tokenizer) <= 600


# like Llama/Mistral tokenizers, a leading space is implied and dropped again: texts start without one
@pytest.mark.parametrize("text", ["Mia lives in Redcliff.\nAnswer: Sudria", "odd  spacing, ünïcode & 42!\n\n"])
def test_round_trip(tokenizer, text):
    assert tokenizer.decode(tokenizer.encode(text, add_special_tokens=False)) == text


def test_default_encoding_prepends_bos_and_never_appends_eos(tokenizer):
    text = "Where does Tom live?"
    assert tokenizer(text)["input_ids"] == [tokenizer.bos_token_id] + tokenizer(text, add_special_tokens=False)["input_ids"]


def test_first_word_is_the_mid_sentence_token(tokenizer):
    # The implied leading space makes "Tom" opening a prompt the same token as in "Ask Tom".
    assert tokenizer.tokenize("Tom")[-1] == tokenizer.tokenize("Ask Tom")[-1]


def test_context_is_a_prefix_of_context_plus_continuation(tokenizer):
    # lm-eval splits encode(context + continuation) at len(encode(context)).
    for context, continuation in [
        ("In which country does Mia live?\nAnswer:", " Sudria"),
        ("Anna is a baker and Tom is a pilot. Every day, Anna", " bakes fresh bread."),
    ]:
        ctx = tokenizer.encode(context)
        whole = tokenizer.encode(context + continuation)
        assert whole[: len(ctx)] == ctx
        assert tokenizer.decode(whole[len(ctx):]) == continuation.removeprefix(" ")  # a decoded start drops its space
        assert tokenizer.decode(whole, skip_special_tokens=True) == context + continuation


def test_training_is_deterministic(tokenizer, tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("Mia lives in Redcliff.\n\nTom moved from Redcliff to Dunmore.\n\n" * 20)
    train_tokenizer(corpus, tmp_path / "a", vocab_size=300)
    train_tokenizer(corpus, tmp_path / "b", vocab_size=300)
    assert (tmp_path / "a" / "tokenizer.json").read_bytes() == (tmp_path / "b" / "tokenizer.json").read_bytes()


def test_bad_arguments_raise(tmp_path):
    corpus = tmp_path / "c.txt"
    corpus.write_text("hello world\n")
    with pytest.raises(ValueError, match="vocab_size"):
        train_tokenizer(corpus, tmp_path / "t", vocab_size=0)
    with pytest.raises(ValueError, match="vocab_size"):
        train_tokenizer(corpus, tmp_path / "t", vocab_size=100)
    with pytest.raises(ValueError, match="corpus_path"):
        train_tokenizer(tmp_path / "missing.txt", tmp_path / "t", vocab_size=500)
    assert not (tmp_path / "t").exists()
