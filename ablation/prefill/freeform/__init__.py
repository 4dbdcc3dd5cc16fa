"""Free-form generation under each mask mode, scored by reference metrics.

``paths`` (light: the Snakefile imports it), ``tasks`` (task sets), ``generation`` (batched,
mask-aware decoding against the KV cache), ``run`` (generation's entry point), ``metrics`` (chrF,
BLEU, exact match, token F1 with bootstrap intervals), ``scores`` (every configuration scored),
``judge`` and ``report`` (table, figure, results page). Only ``run`` and ``generation`` load torch.
"""
