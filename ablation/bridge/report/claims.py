"""Seed 004's claims matrix, decided from the run and benchmark summaries instead of ticked by hand.

Each claim is a list of tests ("parts"), each an interval checked against a threshold; the
intervals are 95% paired intervals (two evaluations on the same questions: the paired bootstrap
of ``ablation.stats``, or the benchmark's own comparison), never a difference of two points.
A part passes when the whole interval is on the claimed side of the threshold, fails when the
whole interval is on the other side (or touches the threshold), is inconclusive when it straddles
it, and is missing when its run or benchmark has not been run, its run's answers cannot be scored
(HotpotQA under the original's rule), or two runs share no question.

A claim's verdict from its parts, in this order:

- supported: every part passes;
- partial: some part passes;
- not supported: some part fails, or every part is inconclusive;
- not yet run: nothing failed and something is still missing.

The roles and thresholds come from ``bridge.report.claims``; the tests themselves are here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial

from ablation.bridge.report.study import NOT_YET_RUN, BridgeRun, BridgeStudy, paired_difference

PASS, FAIL, INCONCLUSIVE, MISSING = "pass", "fail", "inconclusive", "missing"
SUPPORTED, PARTIAL, NOT_SUPPORTED = "supported", "partial", "not supported"
VERDICTS = (SUPPORTED, PARTIAL, NOT_SUPPORTED, NOT_YET_RUN)


@dataclass(frozen=True)
class Part:
    """One test behind a verdict: what is tested, its outcome, and the numbers it was decided on."""

    test: str
    outcome: str
    numbers: str


@dataclass(frozen=True)
class Claim:
    key: str
    claim: str
    evidence: str
    ablation: str
    verdict: str
    parts: tuple[Part, ...]


def verdict(parts: list[Part]) -> str:
    outcomes = [part.outcome for part in parts]
    if all(outcome == PASS for outcome in outcomes):
        return SUPPORTED
    if PASS in outcomes:
        return PARTIAL
    if FAIL in outcomes or MISSING not in outcomes:
        return NOT_SUPPORTED
    return NOT_YET_RUN


def _interval(interval: Mapping, unit: str = "") -> str:
    low, high = interval["ci95"]
    return f"{interval['mean']:+.3f}{unit} [{low:+.3f}, {high:+.3f}]"


def above(interval: Mapping, threshold: float) -> str:
    """Outcome of "the value is above ``threshold``" for a ``{"mean", "ci95"}`` interval."""
    low, high = interval["ci95"]
    return PASS if low > threshold else FAIL if high <= threshold else INCONCLUSIVE


def below(interval: Mapping, threshold: float) -> str:
    low, high = interval["ci95"]
    return PASS if high < threshold else FAIL if low >= threshold else INCONCLUSIVE


positive = partial(above, threshold=0.0)


def _missing(test: str, why: str) -> Part:
    return Part(test, MISSING, why)


def _run_label(study: BridgeStudy, role: str) -> str:
    run = study.roles.get(role)
    return role if run in (None, role) else f"{role} ({run})"


def _run_or_missing(study: BridgeStudy, role: str) -> BridgeRun | str:
    """The run playing ``role``, or why there is none (or why its answers cannot be scored, so that
    a run that cannot score never fails a claim)."""
    run = study.run_of(role)
    if run is not None and run.unscorable:
        return f"{role}: not scorable (run {run.name!r}: {run.dataset} under GSM8K's '#### n' rule, as the original scored it)"
    if run is not None:
        return run
    name = study.roles.get(role)
    return f"{role}: {NOT_YET_RUN}" + ("" if name is None else f" (run {name!r} has no summary)")


def _paired_part(test: str, first: Mapping, second: Mapping, check: Callable[[Mapping], str], what: str, runs=()) -> Part:
    """A part decided on the paired difference ``first − second`` (of ``runs``' evaluations, when two runs are compared)."""
    difference = paired_difference(first, second)
    if difference is None:
        return _missing(test, f"{what}: the two evaluations share no question")
    numbers = f"{what} {_interval(difference)}, {difference['n']} paired questions, McNemar p = {difference['mcnemar_p']:.3g}"
    if len({run.origin for run in runs}) > 1:  # a preserved run's settings are the original's, not the ablation's
        numbers += f"; {', '.join(f'{run.name} is {run.origin}' for run in runs)}: they differ in more than the ablated settings"
    return Part(test, check(difference), numbers)


def _benchmark(study: BridgeStudy) -> tuple[str, Mapping] | None:
    """The inference benchmark the claims read (the config benchmarks one run, bridge.inference.run)."""
    return next(iter(study.inference.items()), None)


def _benchmark_parts(study: BridgeStudy, baselines, field: str, test: str, check, unit: str = "") -> list[Part]:
    """One part per baseline, decided on the benchmark's ``latent_vs_<baseline>`` comparison ``field``."""
    benchmark = _benchmark(study)
    parts = []
    for baseline in baselines:
        label = test.format(baseline=baseline)
        if benchmark is None:
            parts.append(_missing(label, f"inference benchmark: {NOT_YET_RUN}"))
            continue
        run, summary = benchmark
        comparison = (summary.get("comparisons") or {}).get(f"latent_vs_{baseline}")
        if comparison is None or field not in comparison:
            parts.append(_missing(label, f"the benchmark of {run} has no latent_vs_{baseline} comparison"))
            continue
        interval = comparison[field]
        detail = f"run {run}: {_interval(interval, unit)}, {summary.get('samples', '?')} questions"
        if field == "accuracy_difference" and comparison.get("mcnemar_p") is not None:
            detail += f", McNemar p = {comparison['mcnemar_p']:.3g}"
        parts.append(Part(label, check(interval), detail))
    return parts


def fusion_beats_both(study: BridgeStudy, params: Mapping) -> list[Part]:
    return _benchmark_parts(study, params["baselines"], "accuracy_difference", "accuracy latent − {baseline} > 0", positive)


def soft_tokens_beat_text(study: BridgeStudy, params: Mapping) -> list[Part]:
    return _benchmark_parts(study, [params["baseline"]], "accuracy_difference", "accuracy latent − {baseline} > 0", positive)


def kv_cache_savings(study: BridgeStudy, params: Mapping) -> list[Part]:
    threshold = params["min_saved_mb"]
    parts = _benchmark_parts(
        study, [params["baseline"]], "kv_cache_mb_saved", f"KV cache saved vs {{baseline}} > {threshold:g} MB",
        partial(above, threshold=threshold), unit=" MB",
    )  # fmt: skip
    benchmark = _benchmark(study)
    estimate = ((benchmark[1].get("compression") or {}) if benchmark else {}).get("kv_saved_mb_seed_estimate")
    if estimate is not None and parts[0].outcome != MISSING:
        parts[0] = Part(parts[0].test, parts[0].outcome, parts[0].numbers + f"; the seed's 0.5 MB/token estimate: {estimate:.1f} MB")
    return parts


def stability_fixes_work(study: BridgeStudy, params: Mapping) -> list[Part]:
    stable_role, unstable_role, limit = params["stable"], params["unstable"], params["max_degradation"]
    stable, unstable = _run_or_missing(study, stable_role), _run_or_missing(study, unstable_role)
    versus = f"final bridged accuracy {_run_label(study, stable_role)} − {_run_label(study, unstable_role)} > 0"
    kept = f"degradation of {_run_label(study, stable_role)} (peak − final, same questions) < {limit:g}"
    if isinstance(stable, str) or isinstance(unstable, str):
        why = "; ".join(item for item in (stable, unstable) if isinstance(item, str))
        parts = [_missing(versus, why)]
    else:
        parts = [_paired_part(versus, stable.scores(stable.final_step), unstable.scores(unstable.final_step), positive, "difference",
                              runs=(stable, unstable))]  # fmt: skip
    if isinstance(stable, str):
        return [*parts, _missing(kept, stable)]
    peak, final = stable.summary["peak_step"], stable.final_step
    return [*parts, _paired_part(kept, stable.scores(peak), stable.scores(final), partial(below, threshold=limit), f"step {peak} − {final}")]


def compression_tradeoff(study: BridgeStudy, params: Mapping) -> list[Part]:
    """Each pair of neighbours in K (among the runs present): the larger K ends higher, paired."""
    found = {role: _run_or_missing(study, role) for role in params["roles"]}
    present = sorted(((role, run) for role, run in found.items() if not isinstance(run, str)), key=lambda item: item[1].k_order)
    missing = [why for why in found.values() if isinstance(why, str)]
    parts = []
    for (fewer_role, fewer), (more_role, more) in zip(present, present[1:]):
        test = f"final bridged accuracy {_run_label(study, more_role)} − {_run_label(study, fewer_role)} > 0 (more soft tokens, higher accuracy)"
        parts.append(_paired_part(test, more.scores(more.final_step), fewer.scores(fewer.final_step), positive, "difference", runs=(more, fewer)))
    if missing:
        parts.append(_missing("every run of the K sweep", "; ".join(missing)))
    return parts


def generalises_beyond_math(study: BridgeStudy, params: Mapping) -> list[Part]:
    role = params["role"]
    run = _run_or_missing(study, role)
    tests = {side: f"final accuracy bridged − {side} alone on {_run_label(study, role)} > 0" for side in params["baselines"]}
    if isinstance(run, str):
        return [_missing(test, run) for test in tests.values()]
    step = run.final_step
    return [
        _paired_part(f"{test} ({run.dataset})", run.scores(step), run.scores(step, side), positive, "difference")
        for side, test in tests.items()
    ]


BENCHMARK = "4 (inference benchmark)"


@dataclass(frozen=True)
class ClaimRule:
    """A claim of seed 004's matrix: its wording, evidence, the ablation it rests on, and its test."""

    claim: str
    evidence: str
    ablation: Callable[[Mapping], str]  # from the claim's bridge.report.claims parameters
    test: Callable[[BridgeStudy, Mapping], list[Part]]


CLAIMS = {  # in seed 004's order
    "fusion_beats_both": ClaimRule(
        "Cross-model fusion beats both models", "latent > source alone and > target alone",
        lambda params: BENCHMARK, fusion_beats_both,
    ),
    "stability_fixes_work": ClaimRule(
        "Stability fixes work", "final with the fixes > final without; little loss after the peak",
        lambda params: f"{params['stable']} vs {params['unstable']}", stability_fixes_work,
    ),
    "compression_tradeoff": ClaimRule(
        "Compression-quality trade-off", "fewer soft tokens, lower final accuracy",
        lambda params: ", ".join(params["roles"]), compression_tradeoff,
    ),
    "generalises_beyond_math": ClaimRule(
        "Generalises beyond math", "beyond GSM8K the bridged answers beat the single models",
        lambda params: params["role"], generalises_beyond_math,
    ),
    "soft_tokens_beat_text": ClaimRule(
        "Soft tokens beat text transfer", "latent > the text hand-over", lambda params: BENCHMARK, soft_tokens_beat_text,
    ),
    "kv_cache_savings": ClaimRule(
        "KV-cache savings", "latent needs less KV cache than the target reading the prompt",
        lambda params: BENCHMARK, kv_cache_savings,
    ),
}  # fmt: skip


def evaluate_claims(study: BridgeStudy) -> list[Claim]:
    """Every claim of ``CLAIMS`` with its verdict and the parts it was decided on."""
    claims = []
    for key, rule in CLAIMS.items():
        params = study.report["claims"][key]
        parts = rule.test(study, params)
        claims.append(Claim(key, rule.claim, rule.evidence, rule.ablation(params), verdict(parts), tuple(parts)))
    return claims
