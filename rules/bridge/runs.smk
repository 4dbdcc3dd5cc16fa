"""The latent bridge: source-alone and target-alone baselines, then one translator per distinct run."""


wildcard_constraints:
    bridge_model="|".join(BRIDGE["models"]) or "(?!)",
    bridge_dataset="gsm8k|hotpotqa",
    bridge_run="|".join(BRIDGE_TRAINED_RUNS) or "(?!)",


rule eval_bridge_baseline:
    input:
        unpack(bridge_baseline_inputs),
    output:
        **bridge_baseline_files("{bridge_model}", "{bridge_dataset}"),
    log:
        LOGS / "eval_bridge_baseline/{bridge_model}/{bridge_dataset}.log",
    params:
        library_code=library_code("bridge/eval_bridge_baseline.py"),
        model=lambda wildcards: bridge_job_model(wildcards.bridge_model),
        dataset_source=lambda wildcards: BRIDGE["datasets"][wildcards.bridge_dataset],
        embedded_data_dir=BRIDGE_WORLD,
        eval=BRIDGE["eval"],
        device=config["model"]["device"],
    threads: config["resources"]["bridge_eval"]["threads"]
    resources:
        **scheduler_resources("bridge_eval"),
    # Longest first: a baseline is short and unblocks translator runs, which take longer (up to
    # about 45 s on the tiny default) than the prefill study's evaluations; a run started last
    # leaves the second core idle at the end of the main command.
    priority: 2
    conda:
        "../../envs/ablation.yaml"
    script:
        "../../workflow/scripts/bridge/eval_bridge_baseline.py"


rule bridge_source_states:
    """The source's hidden states of every prompt of the runs sharing a key, read by those runs."""
    input:
        unpack(bridge_source_state_build_inputs),
    output:
        index=bridge_source_state_index("{source_state_key}"),
    log:
        LOGS / "bridge_source_states/{source_state_key}.log",
    wildcard_constraints:
        source_state_key="|".join(BRIDGE_SOURCE_STATE_RUNS) or "(?!)",
    params:
        library_code=library_code("bridge/build_bridge_cache.py"),
        kind="source_states",
        settings=lambda wildcards: BRIDGE_RUNS[BRIDGE_SOURCE_STATE_RUNS[wildcards.source_state_key]],
        key=lambda wildcards: BRIDGE_SOURCE_STATE_KEYS[BRIDGE_SOURCE_STATE_RUNS[wildcards.source_state_key]],
        model_name=lambda wildcards: BRIDGE_RUNS[BRIDGE_SOURCE_STATE_RUNS[wildcards.source_state_key]]["source"],
        model=lambda wildcards: bridge_job_model(
            BRIDGE_RUNS[BRIDGE_SOURCE_STATE_RUNS[wildcards.source_state_key]]["source"]
        ),
        dataset_source=lambda wildcards: BRIDGE["datasets"][
            BRIDGE_RUNS[BRIDGE_SOURCE_STATE_RUNS[wildcards.source_state_key]]["dataset"]
        ],
        embedded_data_dir=BRIDGE_WORLD,
        eval=BRIDGE["eval"],
        max_gb=BRIDGE["source_state_cache"]["max_gb"],
        device=config["model"]["device"],
    threads: config["resources"]["bridge_eval"]["threads"]
    resources:
        **scheduler_resources("bridge_eval"),
    priority: 2
    conda:
        "../../envs/ablation.yaml"
    script:
        "../../workflow/scripts/bridge/build_bridge_cache.py"


rule bridge_kl_baselines:
    """The target's log-probabilities at the first kl_tokens answer positions of its KL baseline,
    for every training row of the runs sharing a key, read by those runs."""
    input:
        unpack(bridge_kl_baseline_build_inputs),
    output:
        index=bridge_kl_baseline_index("{kl_baseline_key}"),
    log:
        LOGS / "bridge_kl_baselines/{kl_baseline_key}.log",
    wildcard_constraints:
        kl_baseline_key="|".join(BRIDGE_KL_BASELINE_RUNS) or "(?!)",
    params:
        library_code=library_code("bridge/build_bridge_cache.py"),
        kind="kl_baselines",
        settings=lambda wildcards: BRIDGE_RUNS[BRIDGE_KL_BASELINE_RUNS[wildcards.kl_baseline_key]],
        key=lambda wildcards: BRIDGE_KL_BASELINE_KEYS[BRIDGE_KL_BASELINE_RUNS[wildcards.kl_baseline_key]],
        model_name=lambda wildcards: BRIDGE_RUNS[BRIDGE_KL_BASELINE_RUNS[wildcards.kl_baseline_key]]["target"],
        model=lambda wildcards: bridge_job_model(
            BRIDGE_RUNS[BRIDGE_KL_BASELINE_RUNS[wildcards.kl_baseline_key]]["target"]
        ),
        dataset_source=lambda wildcards: BRIDGE["datasets"][
            BRIDGE_RUNS[BRIDGE_KL_BASELINE_RUNS[wildcards.kl_baseline_key]]["dataset"]
        ],
        embedded_data_dir=BRIDGE_WORLD,
        eval=BRIDGE["eval"],
        max_gb=BRIDGE["source_state_cache"]["max_gb"],
        device=config["model"]["device"],
    threads: config["resources"]["bridge_eval"]["threads"]
    resources:
        **scheduler_resources("bridge_eval"),
    priority: 2
    conda:
        "../../envs/ablation.yaml"
    script:
        "../../workflow/scripts/bridge/build_bridge_cache.py"


rule train_bridge:
    input:
        unpack(bridge_run_inputs),
    output:
        **{name.split(".")[0]: bridge_run_dir(RESULTS, "{bridge_run}") / name for name in BRIDGE_RUN_FILES},
    log:
        LOGS / "train_bridge/{bridge_run}.log",
    params:
        library_code=library_code("bridge/train_bridge.py"),
        settings=lambda wildcards: BRIDGE_RUNS[wildcards.bridge_run],
        models=lambda wildcards: {
            BRIDGE_RUNS[wildcards.bridge_run][role]: bridge_job_model(BRIDGE_RUNS[wildcards.bridge_run][role])
            for role in ("source", "target")
        },
        dataset_source=lambda wildcards: BRIDGE["datasets"][BRIDGE_RUNS[wildcards.bridge_run]["dataset"]],
        embedded_data_dir=BRIDGE_WORLD,
        eval=BRIDGE["eval"],
        device=config["model"]["device"],
        processes=lambda wildcards: BRIDGE_RUNS[wildcards.bridge_run]["processes"],
        source_state_key=lambda wildcards: BRIDGE_SOURCE_STATE_KEYS.get(wildcards.bridge_run),
        kl_baseline_key=lambda wildcards: BRIDGE_KL_BASELINE_KEYS.get(wildcards.bridge_run),
    threads: config["resources"]["bridge_train"]["threads"]
    resources:
        **bridge_train_resources(),
    priority: lambda wildcards: BRIDGE_RUN_PRIORITY[wildcards.bridge_run]
    conda:
        "../../envs/ablation.yaml"
    script:
        "../../workflow/scripts/bridge/train_bridge.py"


rule bridge:
    """Every bridge run of the config (``snakemake bridge``): only this study's jobs."""
    input:
        bridge_outputs(),


rule benchmark_bridge_inference:
    """Seed 004's Ablation 4 for one run: five ways to answer its eval set, measured per sample."""
    input:
        unpack(bridge_inference_inputs),
    output:
        summary=bridge_inference_dir(RESULTS, "{bridge_run}") / SUMMARY_FILE,
        samples=bridge_inference_dir(RESULTS, "{bridge_run}") / SAMPLES_FILE,
    log:
        LOGS / "benchmark_bridge_inference/{bridge_run}.log",
    wildcard_constraints:
        # any configured run, a reused one included: it reads the translator trained for it
        bridge_run="|".join(BRIDGE_RUNS) or "(?!)",
    params:
        library_code=library_code("bridge/benchmark_bridge_inference.py"),
        trained_run=lambda wildcards: BRIDGE_TRAINED_BY[wildcards.bridge_run],
        models=lambda wildcards: {
            BRIDGE_RUNS[wildcards.bridge_run][role]: bridge_job_model(BRIDGE_RUNS[wildcards.bridge_run][role])
            for role in ("source", "target")
        },
        dataset_source=lambda wildcards: BRIDGE["datasets"][BRIDGE_RUNS[wildcards.bridge_run]["dataset"]],
        embedded_data_dir=BRIDGE_WORLD,
        eval=BRIDGE["eval"],
        inference=BRIDGE["inference"],
        device=config["model"]["device"],
    threads: config["resources"]["bridge_eval"]["threads"]
    resources:
        **scheduler_resources("bridge_eval"),
    conda:
        "../../envs/ablation.yaml"
    script:
        "../../workflow/scripts/bridge/benchmark_bridge_inference.py"
