"""RESULTS.md: what was run, the numbers, and the study's two questions answered from them.

The page is generated only from the study's metrics and fine-tune summaries, so it can never
disagree with the tables and figures built from the same files; it links to all of them with
paths relative to the page. The answers are worded from the derived numbers by fixed rules
(thresholds below), so a reader can check every sentence against the tables.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from pathlib import Path

from ablation.io import atomic_write_text
from ablation.prefill.report.derived import (
    GAIN_TARGET,
    RETENTION_TARGET,
    ablation_damage,
    derived_by_run,
    derived_numbers,
    macro_stderr,
)
from ablation.prefill.original.published import (
    original_comparison_table,
    original_metrics,
    original_results_table,
    original_stage5_table,
)
from ablation.prefill.report.study import STAGE1, STAGE2, Study, display_task, stop_reason_label
from ablation.prefill.report.tables import PREFILL_STYLE, derived_table, per_task_table, stage5_table, stage_table
from ablation.writers import artifacts_section, duration, figures_section, markdown_table, relative_link

# Verdict thresholds on retention (S2 / S1) for "does zero-shot capability survive?".
SURVIVES_RETENTION = 0.95
LARGELY_RETENTION = RETENTION_TARGET
# Below this share of the baseline's margin over chance, Stage 2 counts as chance level.
CHANCE_LEVEL_MARGIN = 0.1


def _pass(flag: bool | None) -> str:
    return "n/a" if flag is None else ("pass" if flag else "fail")


def _signed(value: float | None) -> str:
    return "n/a" if value is None else f"{value:+.4f}"


def _number(value: float | None, spec: str = ".4f") -> str:
    return "n/a" if value is None else format(value, spec)



def _model_line(metrics: Mapping) -> str:
    model = (metrics.get("provenance") or {}).get("model") or {}
    identity = model.get("id", "unknown")
    if model.get("revision"):
        return f"`{identity}` (revision `{model['revision']}`)"
    if model.get("local_dir_sha256"):
        return f"`{identity}` (directory sha256 `{model['local_dir_sha256'][:12]}`)"
    return f"`{identity}`"


def _provenance_lines(study: Study) -> list[str]:
    """Code commit, config hash and seed, flagged when the evaluations disagree on them."""
    lines = []
    conditions = study.conditions()
    for field, name in (("code_commit", "code commit"), ("config_sha256", "config sha256"), ("seed", "seed")):
        values = {c.key: (c.metrics.get("provenance") or {}).get(field) for c in conditions}
        distinct = sorted({str(v) for v in values.values() if v is not None})
        if len(distinct) == 1:
            lines.append(f"- {name.capitalize()}: `{distinct[0]}` (all evaluations)")
        elif distinct:
            detail = ", ".join(f"{key} `{value}`" for key, value in values.items())
            lines.append(f"- **{name.capitalize()} differs between evaluations**: {detail}")
    return lines


def _run_rows(study: Study) -> list[str]:
    if not study.runs:
        return ["- Fine-tune runs: none in this report."]
    lines = [
        "- Fine-tune runs:",
        "",
        "| run | train mask | steps run / max | epochs | stop | final eval loss | wall time |",
        "|---|---|---:|---:|---|---:|---:|",
    ]
    for run in study.runs:
        s = run.summary or {}
        wall = duration((s.get("provenance") or {}).get("wall_seconds"))
        resumes = (s.get("resume") or {}).get("resumes")
        if resumes:
            wall += f" ({resumes + 1} attempts)"  # the summary counts each attempt up to the checkpoint the next resumed from
        steps = f"{s.get('steps_run', 'n/a')} / {s.get('max_steps', 'n/a')}"
        stop = stop_reason_label(s.get("stop_reason")) if run.summary else "no summary"
        lines.append(
            f"| `{run.name}` | `{run.train_mask or '?'}` | {steps} | {_number(s.get('epochs'), '.2f')} | {stop} "
            f"| {_number(s.get('final_eval_loss'))} | {wall} |"
        )
    return lines


def _shared_except(values: dict[str, str]) -> str:
    """The value most evaluations (label -> value) share, then each other value with the evaluations that have it."""
    groups: dict[str, list[str]] = {}
    for label, value in values.items():
        groups.setdefault(value, []).append(label)
    shared = max(groups, key=lambda value: len(groups[value]))
    others = [f"`{value}` in: {'; '.join(labels)}" for value, labels in groups.items() if value != shared]
    return f"`{shared}`" + (f", except {' — '.join(others)}" if others else " (all evaluations)")


def _examples_line(study: Study) -> str:
    """Task set, limit and examples scored per task: one line when every evaluation scored the same
    examples, each evaluation's in bold where they differ (their numbers are then not comparable)."""
    tasks = study.tasks

    def scored(metrics: dict) -> str:
        limit = metrics.get("limit")
        counts = ", ".join(f"{display_task(t)} {(metrics['tasks'][t] or {}).get('n', '?')}" for t in tasks)
        return f"limit: {'all examples' if limit is None else f'first {limit} per task'}; examples scored: {counts}"

    reference = study.conditions()[0].metrics
    line = f"- Task set: `{reference.get('task_set', '?')}` ({', '.join(display_task(t) for t in tasks)}); "
    each = {c.label: scored(c.metrics) for c in study.conditions()}
    if len(set(each.values())) == 1:
        return line + scored(reference)
    return line + "**examples scored differ between evaluations**: " + "; ".join(f"{label}: {text}" for label, text in each.items())


def what_was_run(study: Study) -> str:
    """The setup: model, tasks and limit, evaluations, fine-tune runs, provenance."""
    reference = study.conditions()[0].metrics
    evaluations = [
        f"  - {c.label}: model `{c.model}`, mask `{c.mask}`, macro acc {c.metrics['macro_acc']:.4f}"
        for c in study.conditions()
    ]
    lines = [
        f"- Model: {_model_line(reference)}",
        _examples_line(study),
        f"- Scoring: {_shared_except({c.label: c.metrics.get('scoring', '?') for c in study.conditions()})}",
        "- Evaluations:",
        *evaluations,
        *_run_rows(study),
        "",
        *_provenance_lines(study),
    ]
    return "\n".join(lines)


def survival_answer(study: Study) -> str:
    """Question 1 answered from damage and retention (Stage 1 vs Stage 2 prefill_bidir)."""
    study.require("the survival answer", STAGE1, STAGE2)
    damage = ablation_damage(study.stage1, study.stage2)
    macro = damage["macro"]
    chance = study.stage1.get("chance_macro")
    retention = macro["retention"]
    margin = None
    if chance is not None and macro["s1"] - chance > 0:
        margin = (macro["s2"] - chance) / (macro["s1"] - chance)
    if retention is not None and retention >= SURVIVES_RETENTION:
        verdict = "Yes."
    elif retention is not None and retention >= LARGELY_RETENTION:
        verdict = "Largely."
    elif margin is not None and margin <= CHANCE_LEVEL_MARGIN:
        verdict = "No: accuracy falls to chance level."
    else:
        verdict = "Only partly."
    text = (
        f"**{verdict}** Macro accuracy goes from {macro['s1']:.4f} (Stage 1, causal) to {macro['s2']:.4f} "
        f"under the prefill_bidir ablation: damage {_signed(macro['damage'])}, retention {_number(retention, '.3f')}"
    )
    if chance is not None:
        text += f" (chance {chance:.4f}"
        text += f"; {margin:.0%} of the baseline's margin over chance kept)" if margin is not None else ")"
    text += "."
    per_task = [(task, numbers["damage"]) for task, numbers in damage["tasks"].items() if numbers["damage"] is not None]
    if per_task:
        worst = min(per_task, key=lambda item: item[1])
        mildest = max(per_task, key=lambda item: item[1])
        text += (
            f" Largest change: {display_task(worst[0])} ({worst[1]:+.3f}); "
            f"smallest: {display_task(mildest[0])} ({mildest[1]:+.3f})."
        )
    if study.full_bidir is not None:
        leaky = study.full_bidir["macro_acc"]
        text += (
            f" For reference, the original study's full_bidir patch, which also lets the scored answer tokens "
            f"see each other and later tokens, gives {leaky:.4f} (damage {leaky - macro['s1']:+.4f})."
        )
    return text


def _run_line(study: Study, name: str, macro: Mapping) -> str:
    run = next(run for run in study.runs if run.name == name)
    s = run.summary or {}
    training = f"train `{run.train_mask or '?'}`"
    if run.summary:
        training += f", {s.get('steps_run', '?')} steps, {stop_reason_label(s.get('stop_reason'))}"
    fraction = "n/a" if macro["recovered_fraction"] is None else f"{macro['recovered_fraction']:.1%}"
    return (
        f"- `{name}` ({training}): Stage 4 {macro['s4']:.4f}, gain {_signed(macro['gain'])}, "
        f"recovery ratio {_number(macro['recovery_ratio'], '.3f')}, recovered fraction {fraction}; "
        f"retains {RETENTION_TARGET:.0%}: {_pass(macro['retains_80pct'])}, "
        f"gains {GAIN_TARGET * 100:.0f} pts: {_pass(macro['gains_5pts'])}."
    )


def _mask_comparison(study: Study, derived: Mapping[str, dict]) -> str:
    """Best Stage 4 per train mask, best first."""
    masks = {run.name: run.train_mask or "?" for run in study.runs}
    best_by_mask: dict[str, str] = {}
    for name, numbers in derived.items():
        held = best_by_mask.get(masks[name])
        if held is None or numbers["macro"]["s4"] > derived[held]["macro"]["s4"]:
            best_by_mask[masks[name]] = name
    best = sorted(best_by_mask.values(), key=lambda name: -derived[name]["macro"]["s4"])
    if len(best) == 1:
        return f"Only train mask `{masks[best[0]]}` was run, so train masks cannot be compared."
    top = derived[best[0]]["macro"]["s4"]
    others = "; ".join(
        f"`{masks[name]}` {derived[name]['macro']['s4']:.4f} (`{name}`, {derived[name]['macro']['s4'] - top:+.4f})"
        for name in best[1:]
    )
    return f"By train mask, best Stage 4: `{masks[best[0]]}` {top:.4f} (`{best[0]}`) ahead of {others}."


def recovery_answer(study: Study) -> str:
    """Question 2 answered from recovery ratio, recovered fraction and the success criteria."""
    if not any(run.ablated is not None for run in study.runs):
        return "**Not answered yet:** no fine-tune has been evaluated under the ablation (Stage 4)."
    derived = derived_by_run(study, "the recovery answer")
    macros = {name: numbers["macro"] for name, numbers in derived.items()}
    successes = [name for name, macro in macros.items() if macro["success"]]
    best = max(macros, key=lambda name: macros[name]["s4"])
    best_fraction = macros[best]["recovered_fraction"]
    criteria = f"S4 >= {RETENTION_TARGET} x S1 and S4 >= S2 + {GAIN_TARGET}"
    if successes:
        names = ", ".join(f"`{name}`" for name in successes)
        verdict = f"**Yes**, by the design's success criteria ({criteria}): {names} meet both."
    elif macros[best]["gain"] is not None and macros[best]["gain"] > 0:
        share = (
            "improves on Stage 2" if best_fraction is None else f"wins back {best_fraction:.1%} of the lost accuracy"
        )
        verdict = (
            f"**Only partly**: no run meets both success criteria ({criteria}); the best, `{best}`, "
            f"{share} (recovery ratio {_number(macros[best]['recovery_ratio'], '.3f')})."
        )
    else:
        verdict = "**No**: no fine-tune improves on Stage 2 under the ablation."
    evaluated = [study.stage2, *(run.ablated for run in study.runs if run.ablated is not None)]
    stderrs = [error for error in map(macro_stderr, evaluated) if error is not None]
    noise = ""
    if stderrs:
        # two independent evaluations: the stderr of their difference is sqrt(2) times one's
        largest = max(stderrs)
        noise = (
            f" Macro stderr: about {largest:.4f} per evaluation, "
            f"{math.sqrt(2) * largest:.4f} for a difference of two."
        )
    lines = [verdict + noise, "", *(_run_line(study, name, macro) for name, macro in macros.items()), ""]
    lines.append(_mask_comparison(study, derived))
    side = [(name, macro) for name, macro in macros.items() if macro["side_effect"] is not None]
    if side:
        scores = ", ".join(f"`{name}` {m['side_effect']:.4f} ({m['side_effect_delta']:+.4f})" for name, m in side)
        baseline = macros[side[0][0]]["s1"]
        lines += ["", f"Side effect, without the ablation (causal eval, change vs Stage 1 {baseline:.4f}): {scores}."]
    return "\n".join(lines)


# The one task set measured as the original measured (ablation.prefill.original.tasks)
COMPARABLE_TASK_SET = "original"
ORIGINAL_LIMIT = 500  # examples per task the published numbers scored (the original's --limit)


def _limit_words(study: Study) -> str:
    limit = study.stage1.get("limit")
    return "all examples" if limit is None else f"the first {limit}"


def _not_comparable_note(task_set: str | None) -> str:
    return (
        f"The original study's published numbers are not shown: they are comparable only with the "
        f"`{COMPARABLE_TASK_SET}` task set (the original's prompts, no BOS token, its per-token metric), "
        f"and this report ran the `{task_set}` set."
    )


def _original_section(study: Study) -> str:
    """This study's `original`-set numbers beside the published ones, then the published tables and
    their derived numbers, with the caveats that make them differ."""
    derived = derived_numbers(*map(original_metrics, ("stage1", "stage2", "stage4", "side_effect")))["macro"]
    summary = (
        f"Derived from the published macros with the same definitions: damage {derived['damage']:+.4f}, "
        f"retention {derived['retention']:.3f}, gain {derived['gain']:+.4f}, recovery ratio "
        f"{derived['recovery_ratio']:.4f}, recovered fraction {derived['recovered_fraction']:.1%}, "
        f"side-effect delta {derived['side_effect_delta']:+.4f}; retains 80%: {_pass(derived['retains_80pct'])}, "
        f"gains 5 pts: {_pass(derived['gains_5pts'])}."
    )
    return "\n\n".join(
        [
            f"Published numbers are put only beside evaluations of the `{COMPARABLE_TASK_SET}` task set, as here: "
            "the original's prompts on the same validation splits, tokenized without a BOS token, and its metric, "
            "`acc_per_token` (the choice with the highest mean log-probability per continuation token). "
            f"The original scored the first {ORIGINAL_LIMIT} examples per task; this study scored {_limit_words(study)}. "
            "The original ablated with an `is_causal=False` patch that also let the scored answer tokens see "
            "each other and the future: its Stage 2 and Stage 4 rows, and the \"ablated\" column of its Stage 5 "
            "table, correspond to this report's `full_bidir` evaluations, not to the clean `prefill_bidir` "
            "ablation. A fine-tune is put beside the published run it repeats: trained `prefill_bidir` for the "
            "same number of steps (3B: 1200, 5C: 6500, 5B: 10000); one that stopped before its configured steps "
            "repeats none.",
            markdown_table(original_comparison_table(study.stage1, study.full_bidir, study.runs), PREFILL_STYLE),
            "The published tables (in the Stage 5 table, this study's fine-tunes beneath the run they repeat):",
            markdown_table(original_results_table(), PREFILL_STYLE),
            summary,
            markdown_table(original_stage5_table(study.runs), PREFILL_STYLE),
        ]
    )


def _numbers_section(study: Study) -> str:
    """The tables the study has the evaluations for (Stage 1 and 2 are checked by the caller)."""
    parts = ["### Evaluations", markdown_table(stage_table(study), PREFILL_STYLE)]
    if any(run.ablated is not None for run in study.runs):
        parts += ["### Derived numbers per fine-tune (macro)", markdown_table(derived_table(study), PREFILL_STYLE)]
    parts += ["### Per-task accuracy (± stderr)", markdown_table(per_task_table(study), PREFILL_STYLE)]
    if any(run.summary is not None for run in study.runs):
        parts += ["### Fine-tune runs (Stage 5 view)", markdown_table(stage5_table(study), PREFILL_STYLE)]
    return "\n\n".join(parts)


def results_markdown(
    study: Study,
    base_dir: str | Path,
    *,
    figures: Iterable[str | Path] = (),
    tables: Iterable[str | Path] = (),
    compare_original: bool | None = None,
    linked_pages: Mapping[str, str | Path] | None = None,
    seed_sweep: str | None = None,
) -> str:
    """The page's Markdown, links relative to ``base_dir`` (the page's folder).

    ``seed_sweep``: the claims across seeds (``ablation.prefill.report.seed_sweep.sweep_answer``), a third answer.

    ``compare_original`` adds the original study's published numbers beside this study's; by
    default when the study ran the `original` task set, the only one they are comparable with (for
    any other the page says so; asking for them there is a ValueError). ``linked_pages`` (title ->
    path) links the results pages of the config's other studies, built by their own rules.
    """
    study.require("the results page", STAGE1, STAGE2)
    base_dir = Path(base_dir)
    figures, tables = list(map(Path, figures)), list(map(Path, tables))
    task_set = study.stage1.get("task_set")
    comparable = task_set == COMPARABLE_TASK_SET
    if compare_original and not comparable:
        raise ValueError(
            f"the original study's numbers are shown only beside the {COMPARABLE_TASK_SET!r} task set; "
            f"this study ran {task_set!r}"
        )
    title = f"# Results: {study.experiment}" if study.experiment else "# Results: prefill-mask ablation"
    sections = [
        title,
        "_Generated by `ablation.prefill.report` from the metrics files listed under Artifacts; rebuild it with the "
        "workflow instead of editing it._",
        "## What was run",
        what_was_run(study),
        "## Answers",
        "### 1. Does zero-shot capability survive the prefill ablation?",
        survival_answer(study),
        "### 2. Can fine-tuning recover it?",
        recovery_answer(study),
        *(["### 3. Do the answers hold across seeds?", seed_sweep] if seed_sweep else []),
        "## Numbers",
        _numbers_section(study),
    ]
    if figures:
        sections += ["## Figures", figures_section(figures, base_dir)]
    if compare_original is not False:
        sections += [
            "## The original study, for comparison",
            _original_section(study) if comparable else _not_comparable_note(task_set),
        ]
    if linked_pages:
        sections += [
            "## Other studies",
            "\n".join(f"- {title}: [{(link := relative_link(path, base_dir))}]({link})" for title, path in linked_pages.items()),
        ]
    sections += ["## Artifacts", artifacts_section(study.sources, base_dir, figures, tables)]
    return "\n\n".join(sections) + "\n"


def write_results_page(
    study: Study,
    out_path: str | Path,
    *,
    figures: Iterable[str | Path] = (),
    tables: Iterable[str | Path] = (),
    compare_original: bool | None = None,
    linked_pages: Mapping[str, str | Path] | None = None,
    seed_sweep: str | None = None,
) -> Path:
    """Write RESULTS.md atomically, linking the given figure and table files relative to it."""
    out_path = Path(out_path)
    text = results_markdown(
        study,
        out_path.parent,
        figures=figures,
        tables=tables,
        compare_original=compare_original,
        linked_pages=linked_pages,
        seed_sweep=seed_sweep,
    )
    return atomic_write_text(out_path, text)
