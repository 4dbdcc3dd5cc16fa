"""Two ablation studies of LLMs, one workflow: config in, evaluations, trainings, tables and figures out.

Shared rules in rules/ (config, paths, prefetch) and rules/world/ (the tiny world both studies use),
then the prefill-mask ablation's (rules/prefill/) and the cross-model latent bridge's (rules/bridge/);
config key `studies` picks which run.
"""

from snakemake.utils import min_version

min_version("9.0")


# One experiment per config file: config.yaml applies only when no --configfile was given, so a
# preset is never merged with the tiny default; --config key=value overrides whichever file applies.
if not workflow.overwrite_configfiles:

    configfile: "config.yaml"


report: "workflow/report/workflow.rst"


include: "rules/common.smk"
include: "rules/prefill/common.smk"
include: "rules/bridge/common.smk"
include: "rules/prefill/freeform_common.smk"
include: "rules/prefill/tuning_common.smk"
include: "rules/world/world.smk"
include: "rules/bridge/world.smk"
include: "rules/prefetch.smk"
include: "rules/prefill/eval.smk"
include: "rules/prefill/finetune.smk"
include: "rules/prefill/freeform.smk"
include: "rules/prefill/report.smk"
include: "rules/prefill/tuning.smk"
include: "rules/bridge/runs.smk"
include: "rules/bridge/report.smk"


# A seed sweep (config key `seeds`): every seed other than this config's own runs the prefill
# study's rules again as a module, on a copy of the config set to that seed (ablation.prefill.seed_sweep).
for sweep_seed in SWEEP_SEEDS:
    if is_own_seed(config, sweep_seed):
        continue
    sweep_module = f"seed_{sweep_seed}"
    sweep_rule_prefix = f"seed_{sweep_seed}_"

    module:
        name: sweep_module
        snakefile:
            "Snakefile"
        config:
            seed_study_config(config, sweep_seed)

    use rule * from sweep_module exclude all, prefill_mask, paper, paper_figure, paper_table, paper_bridge_figure, paper_bridge_table as sweep_rule_prefix*


rule all:
    input:
        prefill_outputs(),
        freeform_outputs(),
        bridge_outputs(),


rule prefill_mask:
    """Only the prefill-mask study's outputs (``snakemake prefill_mask``)."""
    input:
        prefill_outputs(),
        freeform_outputs(),


rule paper:
    """The LaTeX tables and PDF figures of both studies' reports, copied into paper/ (``snakemake paper``)."""
    input:
        paper_outputs(REPORT_FILES) if PREFILL_ACTIVE else [],
        paper_outputs(BRIDGE_REPORT_FILES) if BRIDGE_ACTIVE else [],
    localrule: True
