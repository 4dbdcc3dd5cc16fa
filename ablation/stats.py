"""Uncertainty for the bridge's benchmark: percentile-bootstrap intervals of a mean, the paired
bootstrap of a mean difference, and the exact McNemar test of two classifiers on the same questions.

Pure numpy and the standard library, seeded, so a summary is reproducible to the last digit.
The paired bootstrap resamples questions, keeping each question's two measurements together
(Efron & Tibshirani 1993, ch. 13); McNemar's exact form is a two-sided binomial test on the
discordant pairs (McNemar 1947; the mid-p and chi-square variants are not used).
"""

from __future__ import annotations

from fractions import Fraction
from math import comb

import numpy as np

RESAMPLES = 10_000
CONFIDENCE = 0.95
SEED = 0
CHUNK = 1_000  # resamples drawn at once: bounds memory at CHUNK × n indices


def bootstrap_mean_ci(values, *, resamples: int = RESAMPLES, confidence: float = CONFIDENCE, seed: int = SEED) -> dict:
    """``{"mean", "ci95": [lo, hi]}``: the sample mean and its percentile-bootstrap interval."""
    values = np.asarray(values, dtype=float)
    if values.ndim != 1 or values.size == 0:
        raise ValueError(f"a bootstrap needs a non-empty 1-D sample, got shape {values.shape}")
    rng = np.random.default_rng(seed)
    means = []
    for start in range(0, resamples, CHUNK):
        indices = rng.integers(0, values.size, size=(min(CHUNK, resamples - start), values.size))  # [R, n]
        means.append(values[indices].mean(axis=1))
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(np.concatenate(means), [tail, 1.0 - tail])
    return {"mean": float(values.mean()), "ci95": [float(low), float(high)]}


def paired_bootstrap_difference(first, second, **bootstrap) -> dict:
    """Mean of ``first − second`` over paired measurements, with questions resampled as pairs."""
    first, second = np.asarray(first, dtype=float), np.asarray(second, dtype=float)
    if first.shape != second.shape:
        raise ValueError(f"paired samples differ in shape: {first.shape} vs {second.shape}")
    return bootstrap_mean_ci(first - second, **bootstrap)


def mcnemar_exact(first_correct, second_correct) -> float:
    """Two-sided exact McNemar p-value: 1.0 without discordant pairs."""
    first, second = np.asarray(first_correct, dtype=bool), np.asarray(second_correct, dtype=bool)
    if first.shape != second.shape:
        raise ValueError(f"paired samples differ in shape: {first.shape} vs {second.shape}")
    only_first, only_second = int((first & ~second).sum()), int((~first & second).sum())
    discordant = only_first + only_second
    if discordant == 0:
        return 1.0
    tail = sum(comb(discordant, k) for k in range(min(only_first, only_second) + 1))
    return float(min(Fraction(1), 2 * Fraction(tail, 2**discordant)))
