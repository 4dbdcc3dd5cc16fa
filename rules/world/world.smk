"""The embedded tiny world: synthetic corpus and tasks, tokenizer and a pre-trained tiny model."""


rule build_world_data:
    output:
        corpus=WORLD / "corpus.txt",
        tasks=directory(TINY_TASKS_DIR),
        instructions=WORLD / "instructions.jsonl",
    log:
        LOGS / "build_world_data/world.log",
    params:
        library_code=library_code("world/build_world_data.py"),
        world=config["world"],
    priority: 4  # the start of the longest chain (pretrain_base_model)
    conda:
        "../../envs/ablation.yaml"
    script:
        "../../workflow/scripts/world/build_world_data.py"


rule train_tokenizer:
    input:
        corpus=rules.build_world_data.output.corpus,
    output:
        tokenizer=directory(WORLD / "tokenizer"),
    log:
        LOGS / "train_tokenizer/world.log",
    params:
        library_code=library_code("world/train_tokenizer.py"),
        vocab_size=config["world"]["vocab_size"],
    priority: 4
    conda:
        "../../envs/ablation.yaml"
    script:
        "../../workflow/scripts/world/train_tokenizer.py"


rule pretrain_base_model:
    input:
        corpus=rules.build_world_data.output.corpus,
        tokenizer=rules.train_tokenizer.output.tokenizer,
    output:
        model=directory(WORLD / "base_model"),
    log:
        LOGS / "pretrain_base_model/world.log",
    params:
        library_code=library_code("world/pretrain_model.py"),
        seed=config["world"]["seed"],
        model=config["world"]["model"],
        training=config["world"]["training"],
        architecture="mistral",
        document_separator="\n\n",
    # One thread: the same weights bit for bit as two (tiny models scale poorly over threads: two
    # threads are 1.3x faster), so the other core serves the bridge's pre-trainings meanwhile.
    # First of all jobs: it is the start of the longest chain.
    threads: 1
    priority: 4
    conda:
        "../../envs/ablation.yaml"
    script:
        "../../workflow/scripts/world/pretrain_model.py"
