"""Study loading and the tables: rows, columns and values, and the CSV/Markdown/LaTeX files."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from ablation.prefill.report import (
    TABLE_NAMES,
    derived_table,
    load_study,
    per_task_table,
    stage5_table,
    stage_table,
    study_paths,
    write_tables,
)
from ablation.prefill.report.tables import PREFILL_STYLE
from ablation.writers import latex_escape, latex_table
from tests.prefill.study_files import RUNS, synthetic_study, write_study_files


@pytest.fixture
def study(tmp_path):
    return synthetic_study(tmp_path / "results")


def test_load_study_reads_every_condition(study):
    assert [c.key for c in study.conditions()] == [
        "stage1",
        "stage2_prefill_bidir",
        "stage2_full_bidir",
        "stage4_stage3a_causal",
        "stage4_stage3b_prefix_lm",
        "side_effect_stage3a_causal",
        "side_effect_stage3b_prefix_lm",
    ]
    run = study.runs[1]
    assert (run.name, run.train_mask, run.summary["stop_reason"]) == ("stage3b_prefix_lm", "prefill_bidir", "auto_stop_plateau")
    assert run.loss_history["eval_loss"].notna().sum() == 4
    assert study.tasks[0] == "tiny_hellaswag"


def test_stage_table_rows_columns_values(study):
    table = stage_table(study)
    assert list(table.columns) == [
        "condition", "model", "eval mask", "macro acc", "macro acc_norm", "chance",
        "hellaswag", "piqa", "arc_easy", "arc_challenge", "winogrande",
    ]  # fmt: skip
    assert len(table) == 7
    rows = table.set_index("condition")
    assert rows.loc["Stage 1 baseline, causal", "macro acc"] == pytest.approx(0.696)
    assert rows.loc["Stage 2 full_bidir (original patch), no FT", "eval mask"] == "full_bidir"
    stage4 = rows.loc["Stage 4 ablated (prefill_bidir), after FT stage3b_prefix_lm (train prefill_bidir)"]
    assert (stage4["model"], stage4["arc_easy"]) == ("stage3b_prefix_lm", 0.55)
    side = rows.loc["Side effect: FT stage3a_causal (train causal), evaluated causal"]
    assert (side["eval mask"], side["hellaswag"]) == ("causal", 0.63)
    assert rows["chance"].tolist() == pytest.approx([0.35] * 7)


def test_derived_table_has_one_row_per_fine_tune(study):
    table = derived_table(study).set_index("run")
    assert list(table.index) == list(RUNS)
    prefix_lm = table.loc["stage3b_prefix_lm"]
    assert prefix_lm["train mask"] == "prefill_bidir"
    assert prefix_lm["gain"] == pytest.approx(0.166)
    assert prefix_lm["recovery ratio"] == pytest.approx(0.522 / 0.696)
    assert prefix_lm["recovered fraction"] == pytest.approx(0.166 / 0.34)
    assert prefix_lm["side-effect delta"] == pytest.approx(-0.044)
    assert (prefix_lm["retains 80%"], prefix_lm["gains 5 pts"], prefix_lm["success"]) == (False, True, False)
    assert table.loc["stage3a_causal", "gains 5 pts"] == False  # noqa: E712 (numpy bool)


def test_per_task_table_shows_acc_with_stderr(study):
    table = per_task_table(study).set_index("task")
    assert list(table.index) == ["hellaswag", "piqa", "arc_easy", "arc_challenge", "winogrande", "macro"]
    assert table.loc["hellaswag", "Stage 1 baseline (causal)"] == "0.620 ± 0.028"
    assert table.loc["macro", "Stage 2 ablated (prefill_bidir)"] == "0.356"
    assert table.loc["winogrande", "chance"] == 0.5


def test_stage5_table_starts_with_the_vanilla_row(study):
    table = stage5_table(study)
    assert table["run"].tolist() == ["vanilla (base model)", "stage3a_causal", "stage3b_prefix_lm"]
    vanilla, _, prefix_lm = table.to_dict("records")
    assert (vanilla["steps"], vanilla["epochs"]) == (0, 0.0)
    assert vanilla["non-ablated (causal)"] == pytest.approx(0.696)
    assert vanilla["ablated (prefill_bidir)"] == pytest.approx(0.356)
    assert (prefix_lm["steps"], prefix_lm["stop reason"]) == (100, "auto_stop_plateau")
    assert prefix_lm["non-ablated (causal)"] == pytest.approx(0.652)
    assert prefix_lm["final eval loss"] == 1.16


def test_fine_tunes_evaluated_under_full_bidir_join_the_tables(tmp_path):
    study = synthetic_study(tmp_path / "results", full_bidir_after_ft=True)
    keys = [c.key for c in study.conditions()]
    assert keys[5:7] == ["full_bidir_after_ft_stage3a_causal", "full_bidir_after_ft_stage3b_prefix_lm"]
    rows = stage_table(study).set_index("condition")
    row = rows.loc["Stage 4 full_bidir (original patch), after FT stage3b_prefix_lm (train prefill_bidir)"]
    assert (row["eval mask"], row["hellaswag"]) == ("full_bidir", 0.34)
    table = stage5_table(study)
    assert list(table.columns)[-2:] == ["ablated (full_bidir)", "stop reason"]
    assert table["ablated (full_bidir)"].tolist() == pytest.approx([0.384, 0.372, 0.41])


def test_write_tables_writes_csv_markdown_and_latex(study, tmp_path):
    written = write_tables(study, tmp_path / "tables")
    assert sorted(p.name for p in written) == sorted(f"{n}.{ext}" for n in TABLE_NAMES for ext in ("csv", "md", "tex"))
    assert not [p for p in (tmp_path / "tables").iterdir() if p.name.startswith(".")]  # no temporaries left
    csv = pd.read_csv(tmp_path / "tables" / "derived.csv")
    assert csv["gain"].tolist() == pytest.approx([0.032, 0.166])
    markdown = (tmp_path / "tables" / "stages.md").read_text()
    assert markdown.startswith("| condition")
    assert "| Stage 1 baseline, causal" in markdown and "0.6960" in markdown
    derived_md = (tmp_path / "tables" / "derived.md").read_text()
    assert "+0.1660" in derived_md and "48.8%" in derived_md and "pass" in derived_md
    latex = (tmp_path / "tables" / "stage5.tex").read_text()
    assert r"\toprule" in latex and r"\midrule" in latex and r"\bottomrule" in latex
    assert r"stage3b\_prefix\_lm & prefill\_bidir & 100 & 0.27" in latex
    assert r"auto\_stop\_plateau" in latex
    per_task_tex = (tmp_path / "tables" / "per_task.tex").read_text()
    assert r"0.620 $\pm$ 0.028" in per_task_tex


def test_latex_escapes_specials():
    assert latex_escape("a_b & 5% #1 {x} ~^\\") == r"a\_b \& 5\% \#1 \{x\} \textasciitilde{}\textasciicircum{}\textbackslash{}"
    table = pd.DataFrame({"run": ["x_y"], "gain": [0.1]})
    assert latex_table(table, PREFILL_STYLE).splitlines()[1] == r"\begin{tabular}{lr}"


def test_base_only_study_writes_the_tables_it_can(tmp_path):
    paths = write_study_files(tmp_path / "results")
    study = load_study({key: paths[key] for key in ("stage1", "stage2_prefill_bidir")})
    written = write_tables(study, tmp_path / "tables", names=("stages", "per_task"))
    assert len(written) == 6
    with pytest.raises(ValueError, match="Stage 4"):
        write_tables(study, tmp_path / "all")
    assert not (tmp_path / "all").exists()  # nothing half-written
    with pytest.raises(ValueError, match="fine-tune run"):
        stage5_table(study)
    with pytest.raises(ValueError, match="unknown table"):
        write_tables(study, tmp_path / "tables", names=("stage6",))


def test_stage5_table_needs_the_base_evaluations(tmp_path):
    paths = write_study_files(tmp_path / "results")
    study = load_study({"stage1": paths["stage1"], "finetune_stage3a_causal": paths["finetune_stage3a_causal"]})
    with pytest.raises(ValueError, match="missing: stage2_prefill_bidir"):
        stage5_table(study)


def test_one_fine_tune_and_a_run_directory_as_input(tmp_path):
    paths = write_study_files(tmp_path / "results")
    keys = ("stage1", "stage2_prefill_bidir", "stage4_stage3a_causal")
    study = load_study({**{k: paths[k] for k in keys}, "finetune_stage3a_causal": paths["finetune_stage3a_causal"].parent})
    assert derived_table(study)["run"].tolist() == ["stage3a_causal"]
    assert study.runs[0].train_mask == "causal" and study.runs[0].loss_history is not None


def test_loading_rejects_miswired_inputs(tmp_path):
    paths = write_study_files(tmp_path / "results")
    with pytest.raises(ValueError, match="unknown condition key 'stage3'"):
        load_study({"stage3": paths["stage1"]})
    with pytest.raises(ValueError, match="mask 'causal'"):
        load_study({"stage2_prefill_bidir": paths["stage1"]})
    with pytest.raises(ValueError, match="configured with 'causal'"):
        load_study({"finetune_stage3b_prefix_lm": paths["finetune_stage3b_prefix_lm"]}, train_masks={"stage3b_prefix_lm": "causal"})
    bogus = tmp_path / "bogus.json"
    bogus.write_text(json.dumps({"macro_acc": 0.5}))
    with pytest.raises(ValueError, match="no tasks"):
        load_study({"stage1": bogus})


def test_study_paths_follow_the_results_layout(tmp_path):
    paths = study_paths(tmp_path, ["run_a"], side_effect=False)
    assert paths["stage1"] == tmp_path / "eval" / "base" / "causal" / "metrics.json"
    assert paths["stage2_full_bidir"] == tmp_path / "eval" / "base" / "full_bidir" / "metrics.json"
    assert paths["stage4_run_a"] == tmp_path / "eval" / "run_a" / "prefill_bidir" / "metrics.json"
    assert paths["finetune_run_a"] == tmp_path / "finetune" / "run_a" / "summary.json"
    assert "side_effect_run_a" not in paths
    assert "full_bidir_after_ft_run_a" not in paths
    with_full_bidir = study_paths(tmp_path, ["run_a"], full_bidir_after_ft=True)
    assert with_full_bidir["full_bidir_after_ft_run_a"] == tmp_path / "eval" / "run_a" / "full_bidir" / "metrics.json"


def test_tables_show_missing_values_as_a_dash(tmp_path):
    paths = write_study_files(tmp_path / "results")
    study = load_study({k: paths[k] for k in ("stage1", "stage2_prefill_bidir", "finetune_stage3a_causal")})
    table = stage5_table(study)
    assert pd.isna(table.loc[1, "ablated (prefill_bidir)"])
    assert "| –" in (write_tables(study, tmp_path / "t", names=("stage5",))[1]).read_text()


def test_tables_of_an_empty_study_raise():
    with pytest.raises(ValueError, match="at least one evaluation"):
        stage_table(load_study({}))
    with pytest.raises(ValueError, match="at least one evaluation"):
        per_task_table(load_study({}))
