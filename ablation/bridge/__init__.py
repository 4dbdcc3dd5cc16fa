"""The cross-model latent-bridge study: a trained translator turns a source LM's hidden states
into soft tokens for a target LM (the seeds' Phase 1/2 runs, see docs/glossary.md).

Uses the core's model loading, provenance, atomic io, config validation, jobs and report writers;
everything specific to the bridge lives in this package.
"""

from ablation.bridge import config_checks  # noqa: F401  (registers the study's config checks)
