"""RESULTS.md: setup, answers and numbers from the metrics, links that resolve, verdict rules."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from ablation.prefill.report import FinetuneRun, Study, load_study, results_markdown, write_results_page
from ablation.prefill.report.results_page import recovery_answer, survival_answer
from ablation.prefill.study import ORIGINAL_TASKS
from tests.prefill.study_files import make_metrics, synthetic_study, write_study_files

LINK = re.compile(r"\]\(([^)]+)\)")


def fake_outputs(directory: Path, names: tuple[str, ...]) -> list[Path]:
    """Stand-ins for written figure/table files: the page only links them."""
    directory.mkdir(parents=True, exist_ok=True)
    for name in names:
        (directory / name).write_text("x")
    return [directory / name for name in names]


@pytest.fixture
def page(tmp_path):
    study = synthetic_study(tmp_path / "results")
    report = tmp_path / "report"
    figures = fake_outputs(report / "figures", ("recovery_ratio.pdf", "recovery_ratio.png", "eval_loss.pdf", "eval_loss.png"))
    tables = fake_outputs(report / "tables", ("stages.csv", "stages.md", "stages.tex"))
    path = write_results_page(study, report / "RESULTS.md", figures=figures, tables=tables)
    return path, path.read_text()


def test_page_describes_what_was_run(page):
    _, text = page
    assert text.startswith("# Results: tiny-prefill-ablation\n")
    assert "Task set: `tiny` (hellaswag, piqa, arc_easy, arc_challenge, winogrande); limit: all examples" in text
    assert "| `stage3b_prefix_lm` | `prefill_bidir` | 100 / 150 | 0.27 | auto-stopped: eval-loss plateau | 1.1600 | 56.7 min |" in text
    assert "Code commit: `2144bcc` (all evaluations)" in text
    # the original's full_bidir patch is scored in one pass: the page says which evaluations
    assert "- Scoring: `shared_prefill`, except `single_pass` in: Stage 2 full_bidir (original patch), no FT\n" in text


def test_a_resumed_runs_wall_time_says_it_sums_its_attempts(tmp_path):
    summary = {"max_steps": 150, "steps_run": 150, "stop_reason": "max_steps", "resume": {"resumes": 2}, "provenance": {"wall_seconds": 3400.0}}
    run = FinetuneRun("stage3b_prefix_lm", "prefill_bidir", summary=summary)
    text = results_markdown(Study(stage1=make_metrics((0.7,) * 5), stage2=make_metrics((0.35,) * 5), runs=(run,)), tmp_path)
    assert "| `stage3b_prefix_lm` | `prefill_bidir` | 150 / 150 | n/a | reached max_steps | n/a | 56.7 min (3 attempts) |" in text


def test_page_answers_both_questions_with_numbers(page):
    _, text = page
    survival = text.split("### 1. Does zero-shot capability survive the prefill ablation?")[1].split("###")[0]
    assert "**No: accuracy falls to chance level.**" in survival
    assert "0.6960" in survival and "0.3560" in survival and "damage -0.3400" in survival and "retention 0.511" in survival
    recovery = text.split("### 2. Can fine-tuning recover it?")[1].split("## Numbers")[0]
    assert recovery.startswith("\n\n**Only partly**")
    assert "`stage3b_prefix_lm`, wins back 48.8% of the lost accuracy (recovery ratio 0.750)" in recovery
    assert "recovery ratio 0.557, recovered fraction 9.4%; retains 80%: fail, gains 5 pts: fail" in recovery
    assert "best Stage 4: `prefill_bidir` 0.5220 (`stage3b_prefix_lm`) ahead of `causal` 0.3880" in recovery
    assert "`stage3b_prefix_lm` 0.6520 (-0.0440)" in recovery


def test_page_embeds_the_tables_and_figures(page):
    _, text = page
    for heading in ("### Evaluations", "### Derived numbers per fine-tune", "### Per-task accuracy", "### Fine-tune runs"):
        assert heading in text
    assert "| stage3b_prefix_lm " in text
    assert "![recovery_ratio](figures/recovery_ratio.png)" in text
    comparison = text.split("## The original study, for comparison")[1].split("##")[0]
    assert "published numbers are not shown: they are comparable only with the `original` task set" in comparison
    assert "|" not in comparison  # no published table beside the tiny set's numbers


def test_every_link_resolves_relative_to_the_page(page):
    path, text = page
    links = LINK.findall(text)
    assert "../results/eval/base/causal/metrics.json" in links
    assert "tables/stages.tex" in links
    assert all((path.parent / link).exists() for link in links)
    assert [p.name for p in path.parent.iterdir() if p.name.startswith(".")] == []


def original_set_metrics(accs, per_token, mask):
    """Metrics of the `original` task set, which carry the original's metric beside acc."""
    metrics = make_metrics(accs, mask=mask, tasks=ORIGINAL_TASKS, task_set="original")
    for entry, value in zip(metrics["tasks"].values(), per_token):
        entry["acc_per_token"] = value
    metrics["macro_acc_per_token"] = sum(per_token) / len(per_token)
    return metrics


def original_set_run(name, train_mask, max_steps, full_bidir_per_token, steps_run=None, stop_reason="max_steps"):
    """A fine-tune evaluated on the `original` set under all three masks; it trains all ``max_steps`` unless ``steps_run`` says less."""
    summary = {"max_steps": max_steps, "steps_run": steps_run or max_steps, "stop_reason": stop_reason, "epochs": 0.4, "final_eval_loss": 1.2}
    return FinetuneRun(
        name=name,
        train_mask=train_mask,
        summary=summary,
        ablated=original_set_metrics((0.3,) * 5, (0.3,) * 5, "prefill_bidir"),
        causal=original_set_metrics((0.6,) * 5, (0.6,) * 5, "causal"),
        full_bidir=original_set_metrics((0.3,) * 5, full_bidir_per_token, "full_bidir"),
    )


def test_published_numbers_sit_beside_the_original_sets_numbers(tmp_path):
    study = Study(
        stage1=original_set_metrics((0.6,) * 5, (0.62, 0.78, 0.80, 0.58, 0.67), "causal"),
        stage2=original_set_metrics((0.3,) * 5, (0.3,) * 5, "prefill_bidir"),
        full_bidir=original_set_metrics((0.25,) * 5, (0.24, 0.53, 0.24, 0.25, 0.52), "full_bidir"),
        runs=(
            original_set_run("stage3a_causal", "causal", 1200, (0.2,) * 5),
            original_set_run("stage3b_prefix_lm", "prefill_bidir", 1200, (0.33, 0.61, 0.35, 0.25, 0.5)),
            original_set_run("stage5c_6500", "prefill_bidir", 6500, (0.4,) * 5),
            original_set_run("stage5_6000", "prefill_bidir", 6000, (0.45,) * 5),
        ),
    )
    text = results_markdown(study, tmp_path)
    assert "Task set: `original` (hellaswag, piqa, arc_easy, arc_challenge, winogrande)" in text
    original = text.split("## The original study, for comparison")[1]
    assert "only beside evaluations of the `original` task set" in original
    assert "The original scored the first 500 examples per task; this study scored all examples." in original
    rows = {line.split("|")[1].strip(): line.split("|")[2:-1] for line in original.splitlines() if line.startswith("| ")}
    assert [cell.strip() for cell in rows["Stage 1 baseline, causal (published)"][:2]] == ["0.6951", "0.6220"]
    assert [cell.strip() for cell in rows["Stage 1 baseline, causal (this study)"][:2]] == ["0.6900", "0.6200"]
    assert [cell.strip() for cell in rows["Stage 2 ablated (full_bidir patch), no FT (this study)"][:2]] == ["0.3560", "0.2400"]
    assert [cell.strip() for cell in rows["Stage 4 ablated (full_bidir patch), after 3B FT (published)"][:2]] == ["0.4087", "0.3240"]
    # the 1200-step prefill_bidir fine-tune repeats 3B; the causal one repeats nothing
    stage4_ours = rows["Stage 4 ablated (full_bidir patch), after 3B FT (this study, after FT stage3b_prefix_lm)"]
    assert [cell.strip() for cell in stage4_ours[:2]] == ["0.4080", "0.3300"]
    assert not any("stage3a_causal" in label for label in rows)
    assert "damage -0.3392, retention 0.512, gain +0.0528, recovery ratio 0.5880" in original
    assert [cell.strip() for cell in rows["5C"]] == ["6500", "2.08", "1.2830", "0.5910", "0.4070"]
    assert [cell.strip() for cell in rows["stage5c_6500 (this study)"]] == ["6500", "0.40", "1.2000", "0.6000", "0.4000"]
    assert [cell.strip() for cell in rows["5B"]][0] == "10000"
    # a run no published one repeats closes the Stage 5 table
    assert list(rows)[-1] == "stage5_6000 (this study, no published run this long)"
    assert rows["stage5_6000 (this study, no published run this long)"][-1].strip() == "0.4500"


def test_a_fine_tune_that_stopped_early_repeats_no_published_run(tmp_path):
    study = Study(
        stage1=original_set_metrics((0.6,) * 5, (0.6,) * 5, "causal"),
        stage2=original_set_metrics((0.3,) * 5, (0.3,) * 5, "prefill_bidir"),
        full_bidir=original_set_metrics((0.25,) * 5, (0.25,) * 5, "full_bidir"),
        runs=(original_set_run("stage3b_prefix_lm", "prefill_bidir", 1200, (0.33,) * 5, steps_run=150, stop_reason="auto_stop_plateau"),),
    )
    original = results_markdown(study, tmp_path).split("## The original study, for comparison")[1]
    rows = {line.split("|")[1].strip(): line.split("|")[2:-1] for line in original.splitlines() if line.startswith("| ")}
    assert not any(label.startswith("Stage 4") and "this study" in label for label in rows)
    assert list(rows)[-1] == "stage3b_prefix_lm (this study, stopped at 150 of 1200 steps (auto_stop_plateau), repeats no published run)"
    assert rows[list(rows)[-1]][0].strip() == "150"


def test_published_numbers_are_refused_beside_another_task_set(tmp_path):
    study = synthetic_study(tmp_path / "results")
    with pytest.raises(ValueError, match="only beside the 'original' task set; this study ran 'tiny'"):
        results_markdown(study, tmp_path, compare_original=True)
    assert "## The original study" not in results_markdown(study, tmp_path, compare_original=False)


def test_page_without_fine_tunes_says_question_two_is_open(tmp_path):
    paths = write_study_files(tmp_path / "results")
    study = load_study({key: paths[key] for key in ("stage1", "stage2_prefill_bidir")})
    text = results_markdown(study, tmp_path)
    assert "**Not answered yet:**" in text
    assert "Fine-tune runs: none in this report." in text
    assert "### Derived numbers" not in text


def test_evaluations_that_scored_different_examples_are_flagged(tmp_path):
    paths = write_study_files(tmp_path / "results")
    stage2 = json.loads(paths["stage2_prefill_bidir"].read_text())
    stage2["limit"] = 100
    for entry in stage2["tasks"].values():
        entry["n"] = 100
    paths["stage2_prefill_bidir"].write_text(json.dumps(stage2))
    text = results_markdown(load_study({key: paths[key] for key in ("stage1", "stage2_prefill_bidir")}), tmp_path)
    line = next(line for line in text.splitlines() if line.startswith("- Task set:"))
    assert "**examples scored differ between evaluations**" in line
    assert "Stage 2 ablated (prefill_bidir), no FT: limit: first 100 per task; examples scored: hellaswag 100" in line
    assert "Stage 1 baseline, causal: limit: all examples; examples scored: hellaswag 300" in line


def test_page_needs_both_base_evaluations(tmp_path):
    paths = write_study_files(tmp_path / "results")
    with pytest.raises(ValueError, match="missing: stage2_prefill_bidir"):
        write_results_page(load_study({"stage1": paths["stage1"]}), tmp_path / "RESULTS.md")
    assert not (tmp_path / "RESULTS.md").exists()


@pytest.mark.parametrize(
    ("stage2", "verdict"),
    [(0.68, "**Yes.**"), (0.60, "**Largely.**"), (0.45, "**Only partly.**"), (0.35, "**No: accuracy falls to chance level.**")],
)
def test_survival_verdicts(stage2, verdict):
    study = Study(stage1=make_metrics((0.7,) * 5), stage2=make_metrics((stage2,) * 5))
    assert survival_answer(study).startswith(verdict)


def test_recovery_verdicts():
    base = dict(stage1=make_metrics((0.7,) * 5), stage2=make_metrics((0.35,) * 5))
    good = FinetuneRun("good", "prefill_bidir", ablated=make_metrics((0.6,) * 5, mask="prefill_bidir"))
    flat = FinetuneRun("flat", "causal", ablated=make_metrics((0.34,) * 5, mask="prefill_bidir"))
    answer = recovery_answer(Study(**base, runs=(flat, good)))
    assert answer.startswith("**Yes**") and "`good` meet both" in answer
    assert "`prefill_bidir` 0.6000 (`good`) ahead of `causal` 0.3400 (`flat`, -0.2600)" in answer
    assert recovery_answer(Study(**base, runs=(flat,))).startswith("**No**")
    assert "Only train mask `causal` was run" in recovery_answer(Study(**base, runs=(flat,)))


def test_page_links_the_other_studies_pages(tmp_path):
    study = synthetic_study(tmp_path / "results")
    text = results_markdown(study, tmp_path / "results", linked_pages={"Latent bridge": tmp_path / "results" / "bridge" / "RESULTS.md"})
    other = text.split("## Other studies")[1].split("## Artifacts")[0]
    assert "- Latent bridge: [bridge/RESULTS.md](bridge/RESULTS.md)" in other
    assert "## Other studies" not in results_markdown(study, tmp_path / "results")
