"""The prefill study's report: tables, the recovery-ratio figure, RESULTS.md, paper/ copies and the cost plan."""


rule report_results:
    input:
        **report_inputs(),
    output:
        tables=report(
            update(REPORT_FILES["tables"]),
            caption="../../workflow/report/tables.rst",
            category="Tables",
        ),
        figures=report(
            update(REPORT_FILES["figures"]),
            caption="../../workflow/report/figures.rst",
            category="Figures",
        ),
        page=report(
            update(REPORT_FILES["page"][0]),
            caption="../../workflow/report/results_page.rst",
            category="Results",
        ),
    log:
        LOGS / "report_results/report.log",
    params:
        library_code=library_code("prefill/report_results.py"),
        train_masks={run: settings["train_mask"] for run, settings in config["finetune"]["runs"].items()},
        experiment=config["experiment"],
        allow_mixed_code=config["report"]["allow_mixed_code"],
        # the bridge study's page is its own rule's output: linked, not waited for
        linked_pages={
            **({"Latent bridge": BRIDGE_REPORT_FILES["page"][0]} if BRIDGE_ACTIVE else {}),
            **({"Free-form generation": FREEFORM_REPORT_FILES["page"][0]} if FREEFORM_ACTIVE else {}),
        },
    localrule: True
    conda:
        "../../envs/ablation.yaml"
    script:
        "../../workflow/scripts/prefill/report_results.py"


rule paper_figure:
    input:
        RESULTS / "{name}.pdf",
    output:
        "paper/figures/{name}.pdf",
    log:
        LOGS / "paper/figure_{name}.log",
    localrule: True
    conda:
        "../../envs/ablation.yaml"
    shell:
        "cp {input} {output} 2> {log}"


rule paper_table:
    input:
        RESULTS / "tables" / "{name}.tex",
    output:
        "paper/tables/{name}.tex",
    log:
        LOGS / "paper/table_{name}.log",
    localrule: True
    conda:
        "../../envs/ablation.yaml"
    shell:
        "cp {input} {output} 2> {log}"


rule plan_costs:
    input:
        history=lambda wildcards: planner_history(),
    output:
        plan=RESULTS / "plan.md",
    log:
        LOGS / "plan_costs/plan.log",
    params:
        library_code=library_code("prefill/plan_costs.py"),
        planner=config["planner"],
    localrule: True
    conda:
        "../../envs/ablation.yaml"
    script:
        "../../workflow/scripts/prefill/plan_costs.py"
