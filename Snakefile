"""Two ablation studies of LLMs, one workflow: config in, evaluations, trainings, tables and figures out.

The prefill-mask ablation (rules/world, eval, finetune, report) and the cross-model latent bridge
(rules/bridge_*); config key `studies` picks which run.
"""

from snakemake.utils import min_version

min_version("9.0")


# One experiment per config file: the default applies only when no --configfile was given,
# so a preset is never merged with the tiny default.
if not config:

    configfile: "config.yaml"


report: "workflow/report/workflow.rst"


include: "rules/common.smk"
include: "rules/bridge_common.smk"
include: "rules/world.smk"
include: "rules/bridge_world.smk"
include: "rules/prefetch.smk"
include: "rules/eval.smk"
include: "rules/finetune.smk"
include: "rules/freeform.smk"
include: "rules/report.smk"
include: "rules/bridge.smk"
include: "rules/bridge_report.smk"


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
