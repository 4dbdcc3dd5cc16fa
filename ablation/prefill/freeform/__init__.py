"""Free-form generation under each mask mode, scored by reference metrics.

``paths`` (light: the Snakefile imports it), ``tasks`` (task sets), ``generation`` (batched,
mask-aware decoding against the KV cache), ``metrics`` (chrF, BLEU, exact match, token F1 with
bootstrap intervals), ``run`` (the stages' entry points) and ``report`` (table, figure, results page).
"""
