"""The prefill-mask ablation: remove the causal mask during prefill of a decoder LM, fine-tune, re-evaluate.

``study`` names the masks, tasks and conditions; ``masks``, ``scoring``, ``lm_eval_model`` and
``evaluate`` score a model under a mask; ``finetune`` and ``freeform`` train and generate;
``tuning``, ``seed_sweep`` and ``planner`` choose settings, repeat seeds and price a run;
``original`` holds the original study's tasks, scorer and published numbers; ``report`` writes
the study's tables, figures and RESULTS.md.
"""

from ablation.prefill import config_checks  # noqa: F401  (registers the study's config checks)
