"""The cross-model latent-bridge study: a trained translator turns a source LM's hidden states
into soft tokens for a target LM (seeds 003/004, shared/reference/BRIDGE_FACTS.md).

Shares model loading, provenance, atomic io, config validation, jobs and the report helpers
with the prefill-mask study; everything specific to the bridge lives in this package.
"""
