"""Byte-level BPE tokenizer trained on the tiny world's corpus.

Byte-level pre-tokenisation keeps a word's leading space inside its token
("Ġword"), so encode(context) is a prefix of encode(context + " continuation")
at word boundaries: exactly what lm-eval's loglikelihood split relies on.
Like Llama/Mistral tokenizers, a space is prepended to text that does not
start with one (and stripped again on decoding), so a name opening a prompt
is the same token as the name mid-sentence; without that, in-context
retrieval of the first-mentioned character is needlessly hard.  Also like
them, encoding prepends BOS (and never appends EOS): lm-eval encodes context
and context + continuation with the tokenizer's defaults and splits at the
context length, which a shared BOS prefix keeps intact while a trailing EOS
would corrupt.  Pre-training starts every sequence with BOS too.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import PreTrainedTokenizerFast

from ablation.io import atomic_directory
from .validation import require_positive

log = logging.getLogger(__name__)

SPECIAL_TOKENS = {"unk_token": "<unk>", "bos_token": "<s>", "eos_token": "</s>", "pad_token": "<pad>"}


def train_tokenizer(corpus_path: str | os.PathLike, out_dir: str | os.PathLike, *, vocab_size: int) -> None:
    """Train on `corpus_path` and save a transformers tokenizer dir at `out_dir`."""
    require_positive(vocab_size=vocab_size)
    alphabet = pre_tokenizers.ByteLevel.alphabet()
    if vocab_size < len(alphabet) + len(SPECIAL_TOKENS):
        raise ValueError(
            f"vocab_size must be at least {len(alphabet) + len(SPECIAL_TOKENS)} (bytes + special tokens), got {vocab_size}"
        )
    corpus = Path(corpus_path)
    if not corpus.is_file():
        raise ValueError(f"corpus_path {str(corpus)!r} is not a file")

    tok = Tokenizer(models.BPE(unk_token=SPECIAL_TOKENS["unk_token"]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True)
    tok.decoder = decoders.Sequence([decoders.ByteLevel(), decoders.Strip(" ", 1, 0)])
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL_TOKENS.values()),
        initial_alphabet=alphabet,
        show_progress=False,
    )
    # Train on whole documents, not file lines: a line-based pass would see every
    # line start with the prepended space and never learn "\nAnswer"-style tokens.
    documents = [d for d in corpus.read_text(encoding="utf-8").split("\n\n") if d.strip()]
    tok.train_from_iterator(documents, trainer)
    bos = SPECIAL_TOKENS["bos_token"]
    tok.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A", pair=f"{bos} $A {bos} $B", special_tokens=[(bos, tok.token_to_id(bos))]
    )
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, clean_up_tokenization_spaces=False, **SPECIAL_TOKENS)
    with atomic_directory(out_dir) as tmp:
        fast.save_pretrained(tmp)
    log.info("trained tokenizer with %d tokens into %s", tok.get_vocab_size(), out_dir)
