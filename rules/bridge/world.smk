"""The tiny world's bridge tasks (GSM8K- and HotpotQA-shaped) and its second LM, a Llama-architecture model."""


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
        tokenizer=directory(BRIDGE_WORLD / "tokenizer"),
    log:
        LOGS / "train_bridge_tokenizer/world.log",
    params:
        library_code=library_code("world/train_tokenizer.py"),
        vocab_size=BRIDGE["world"]["vocab_size"],


rule pretrain_bridge_model:
    input:
        corpus=rules.build_bridge_world_data.output.corpus,
        tokenizer=rules.train_bridge_tokenizer.output.tokenizer,
    output:
        model=directory(BRIDGE_WORLD / "bridge_model"),
    log:
        LOGS / "pretrain_bridge_model/world.log",
    params:
        library_code=library_code("world/pretrain_bridge_model.py"),
        world=BRIDGE["world"],
    threads: 2
    conda:
        "../../envs/ablation.yaml"
    script:
        "../../workflow/scripts/world/pretrain_bridge_model.py"
