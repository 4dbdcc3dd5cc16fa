"""The embedded tiny world: a seeded synthetic stand-in for a real LLM study.

It generates a pre-training corpus, five benchmark-shaped zero-shot tasks and
an instruction set from one small world, trains a byte-level BPE tokenizer and
pre-trains a tiny Mistral-architecture model on CPU, so the whole ablation
workflow can run end to end without downloading anything.  For the latent
bridge it also generates GSM8K- and HotpotQA-shaped rows (arithmetic, two-hop
questions), which `ablation.bridge.world_data` renders in the bridge's prompts,
and pre-trains the bridge's own pair of LMs (a Mistral-architecture source, a
Llama-architecture target) on them.

Import from the submodules (``data``, ``tokenizer``, ``pretrain``, ``tasks``): this package
imports none of them, so a job writing the world's text never loads torch or transformers.
"""
