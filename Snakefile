"""Prefill-mask ablation study: config in, evaluations, fine-tunes, tables and figures out."""

from snakemake.utils import min_version

min_version("9.0")


# One experiment per config file: the default applies only when no --configfile was given,
# so a preset is never merged with the tiny default.
if not config:

    configfile: "config.yaml"


report: "workflow/report/workflow.rst"


include: "rules/common.smk"
include: "rules/world.smk"
include: "rules/prefetch.smk"
include: "rules/eval.smk"
include: "rules/finetune.smk"
include: "rules/report.smk"


rule all:
    input:
        final_outputs(),
