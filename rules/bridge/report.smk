"""The bridge study's report: preserved runs of the original code imported into the run format, then
tables, figures and results/bridge/RESULTS.md from every run's summary and the inference benchmark."""


wildcard_constraints:
    legacy_run="|".join(BRIDGE_LEGACY) or "(?!)",


rule import_legacy_run:
    """A preserved run as a run of ours. Its folder is a param, not an input: the workflow plans (and
    dry-runs) without the preserved data, and the import stops with an error naming a folder that is absent."""
    output:
        summary=bridge_legacy_dir(RESULTS, "{legacy_run}") / SUMMARY_FILE,
        history=bridge_legacy_dir(RESULTS, "{legacy_run}") / HISTORY_FILE,
    log:
        LOGS / "import_legacy_run/{legacy_run}.log",
    params:
        library_code=library_code("bridge/import_legacy_run.py"),
        entry=lambda wildcards: BRIDGE_LEGACY[wildcards.legacy_run],
    localrule: True
    conda:
        "../../envs/ablation.yaml"
    script:
        "../../workflow/scripts/bridge/import_legacy_run.py"


rule report_bridge:
    input:
        **bridge_report_inputs(),
    output:
        tables=report(
            update(BRIDGE_REPORT_FILES["tables"]),
            caption="../../workflow/report/bridge_tables.rst",
            category="Latent bridge",
            subcategory="Tables",
        ),
        figures=report(
            update(BRIDGE_REPORT_FILES["figures"]),
            caption="../../workflow/report/bridge_figures.rst",
            category="Latent bridge",
            subcategory="Figures",
        ),
        page=report(
            update(BRIDGE_REPORT_FILES["page"][0]),
            caption="../../workflow/report/bridge_results_page.rst",
            category="Latent bridge",
            subcategory="Results",
        ),
    log:
        LOGS / "report_bridge/report.log",
    params:
        library_code=library_code("bridge/report_bridge.py"),
        roles=role_runs(BRIDGE),
        descriptions=run_descriptions(BRIDGE),
        report=BRIDGE["report"],
        experiment=config["experiment"],
        reproductions=reproductions(BRIDGE),
        parity_config=parity_config(BRIDGE),
        forced_prompt_modes=forced_prompt_modes(BRIDGE_RUNS),
        allow_mixed_code=config["report"]["allow_mixed_code"],
    localrule: True
    conda:
        "../../envs/ablation.yaml"
    script:
        "../../workflow/scripts/bridge/report_bridge.py"


rule paper_bridge_figure:
    input:
        RESULTS / "bridge" / "figures" / "{name}.pdf",
    output:
        "paper/figures/{name}.pdf",
    log:
        LOGS / "paper/figure_{name}.log",
    wildcard_constraints:
        name="bridge_\\w+",
    localrule: True
    conda:
        "../../envs/ablation.yaml"
    shell:
        "cp {input} {output} 2> {log}"


rule paper_bridge_table:
    input:
        RESULTS / "bridge" / "tables" / "{name}.tex",
    output:
        "paper/tables/{name}.tex",
    log:
        LOGS / "paper/table_{name}.log",
    wildcard_constraints:
        name="bridge_\\w+",
    localrule: True
    conda:
        "../../envs/ablation.yaml"
    shell:
        "cp {input} {output} 2> {log}"
