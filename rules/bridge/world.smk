"""The tiny world's bridge tasks (GSM8K- and HotpotQA-shaped) and the bridge's own two LMs, each with its tokenizer."""


rule build_bridge_world_data:
    output:
        gsm8k=directory(BRIDGE_WORLD / "gsm8k"),
        hotpotqa=directory(BRIDGE_WORLD / "hotpotqa"),
        corpus=BRIDGE_WORLD / "corpus.txt",
    log:
        LOGS / "build_bridge_world_data/world.log",
    params:
        library_code=library_code("bridge/build_bridge_world_data.py"),
        world=BRIDGE["world"],
    conda:
        "../../envs/ablation.yaml"
    script:
        "../../workflow/scripts/bridge/build_bridge_world_data.py"


use rule train_tokenizer as train_bridge_tokenizer with:
    input:
        corpus=rules.build_bridge_world_data.output.corpus,
    output:
        tokenizer=directory(BRIDGE_WORLD / "tokenizers" / "{bridge_lm}"),
    log:
        LOGS / "train_bridge_tokenizer/{bridge_lm}.log",
    params:
        library_code=library_code("world/train_tokenizer.py"),
        vocab_size=lambda wildcards: BRIDGE_LMS[wildcards.bridge_lm]["vocab_size"],
    wildcard_constraints:
        bridge_lm=BRIDGE_LM_PATTERN,


# The bridge's two LMs train side by side at one thread each (tiny models scale poorly over threads).
use rule pretrain_base_model as pretrain_bridge_model with:
    input:
        corpus=rules.build_bridge_world_data.output.corpus,
        tokenizer=rules.train_bridge_tokenizer.output.tokenizer,
    output:
        model=directory(BRIDGE_WORLD / "{bridge_lm}"),
    log:
        LOGS / "pretrain_bridge_model/{bridge_lm}.log",
    params:
        library_code=library_code("world/pretrain_model.py"),
        seed=BRIDGE["world"]["seed"],
        model=lambda wildcards: BRIDGE_LMS[wildcards.bridge_lm]["model"],
        training=lambda wildcards: BRIDGE_LMS[wildcards.bridge_lm]["training"],
        architecture=lambda wildcards: BRIDGE_LMS[wildcards.bridge_lm]["architecture"],
        document_separator=DOCUMENT_SEPARATOR,
    threads: 1
    priority: 3
    wildcard_constraints:
        bridge_lm=BRIDGE_LM_PATTERN,
