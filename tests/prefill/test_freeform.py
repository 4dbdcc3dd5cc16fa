"""Free-form generation: mask-aware batched decoding against references, task sets, metrics, the stages."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml

from ablation.config import validate_config
from ablation.prefill.freeform import run as freeform_run
from ablation.prefill.freeform.generation import DecodingSettings, generate
from ablation.prefill.freeform.metrics import exact_match, score, token_f1
from ablation.prefill.freeform.report import write_report
from ablation.prefill.freeform.run import generate_freeform, partial_path
from ablation.prefill.freeform.scores import score_generations
from ablation.prefill.freeform.tasks import build_task_set, hub_translation_items, original_items, read_items, tiny_items, write_items
from ablation.io import read_jsonl
from tests.conftest import VOCAB, build_model
from tests.helpers import planned_jobs, snakemake

REPOSITORY = Path(__file__).resolve().parents[2]
EOS = 2
PAD = 0


def random_prompts(count=6, seed=3):
    generator = torch.Generator().manual_seed(seed)
    lengths = torch.randint(2, 14, (count,), generator=generator).tolist()
    return [torch.randint(3, VOCAB, (length,), generator=generator).tolist() for length in lengths]


def reference_generate(model, prompt, max_new_tokens):
    """transformers' generate on one unpadded prompt: the original's one-at-a-time loop."""
    output = model.generate(
        torch.tensor([prompt]), attention_mask=torch.ones(1, len(prompt), dtype=torch.long),
        max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=PAD, eos_token_id=EOS,
    )
    return tuple(output[0, len(prompt):].tolist())


def hand_made_prefill_bidir(model, prompt, max_new_tokens):
    """Prefill with an all-True 4-D mask over the prompt, then plain cached decoding."""
    with torch.inference_mode():
        ids = torch.tensor([prompt])
        output = model(input_ids=ids, attention_mask=torch.ones(1, 1, len(prompt), len(prompt), dtype=torch.bool), use_cache=True)
        tokens = []
        for step in range(max_new_tokens):
            token = int(output.logits[0, -1].argmax())
            tokens.append(token)
            if token == EOS:
                break
            output = model(input_ids=torch.tensor([[token]]), position_ids=torch.tensor([[len(prompt) + step]]), past_key_values=output.past_key_values, use_cache=True)
    return tuple(tokens)


@pytest.mark.parametrize("architecture", ["mistral", "qwen2"])
def test_causal_generation_is_model_generate_token_for_token(architecture):
    model, prompts = build_model(architecture), random_prompts()
    ours = generate(model, prompts, mode="causal", settings=DecodingSettings(max_new_tokens=10), eos_token_ids=[EOS], pad_token_id=PAD, batch_size=4)
    assert [row.tokens for row in ours] == [reference_generate(model, prompt, 10) for prompt in prompts]


def test_prefill_bidir_generation_is_a_bidirectional_prefill_then_cached_decoding():
    model, prompts = build_model("mistral"), random_prompts()
    ours = generate(model, prompts, mode="prefill_bidir", settings=DecodingSettings(max_new_tokens=10), eos_token_ids=[EOS], pad_token_id=PAD, batch_size=4)
    assert [row.tokens for row in ours] == [hand_made_prefill_bidir(model, prompt, 10) for prompt in prompts]
    causal = generate(model, prompts, mode="causal", settings=DecodingSettings(max_new_tokens=10), eos_token_ids=[EOS], pad_token_id=PAD)
    assert [row.tokens for row in ours] != [row.tokens for row in causal]  # the mask mattered


def test_the_originals_is_causal_patch_generates_what_prefill_bidir_does():
    model, prompts = build_model("mistral"), random_prompts()
    attention_modules = [module for name, module in model.named_modules() if name.endswith("self_attn")]
    for module in attention_modules:
        module.is_causal = False  # the original's patch; decode steps have one query, so only the prefill changes
    patched = [reference_generate(model, prompt, 10) for prompt in prompts]
    for module in attention_modules:
        module.is_causal = True
    ours = generate(model, prompts, mode="prefill_bidir", settings=DecodingSettings(max_new_tokens=10), eos_token_ids=[EOS], pad_token_id=PAD)
    assert [row.tokens for row in ours] == patched
    assert patched != [reference_generate(model, prompt, 10) for prompt in prompts]


def test_sampling_is_seeded_and_a_vanishing_nucleus_is_greedy():
    model, prompts = build_model("mistral"), random_prompts()

    def run(**settings):
        return [row.tokens for row in generate(model, prompts, mode="prefill_bidir", settings=DecodingSettings(max_new_tokens=8, **settings), eos_token_ids=[EOS], pad_token_id=PAD)]

    assert run(do_sample=True, seed=1) == run(do_sample=True, seed=1) != run(do_sample=True, seed=2)
    assert run(do_sample=True, top_p=1e-6, seed=1) == run()


def test_generation_refuses_full_bidir_and_empty_prompts():
    model = build_model("mistral")
    with pytest.raises(ValueError, match="full_bidir patch is prefill_bidir"):
        generate(model, [[5, 6]], mode="full_bidir", eos_token_ids=[EOS], pad_token_id=PAD)
    with pytest.raises(ValueError, match="at least one token"):
        generate(model, [[5, 6], []], mode="causal", eos_token_ids=[EOS], pad_token_id=PAD)


def test_tiny_tasks_are_deterministic_and_need_the_prompt_in_order():
    items = tiny_items(1234, 3)
    assert items == tiny_items(1234, 3) and len(items) == 6
    route = items[0]
    assert route.task == "tiny_route_retell" and route.metrics[0] == "bleu"
    first_place = route.reference.split(".")[0]
    assert f"to the {first_place}" in route.prompt  # the answer is read from the prompt
    move = items[3]
    assert move.task == "tiny_move_answer" and move.reference in move.prompt and move.prompt.endswith("\nAnswer:")


def test_original_task_file_is_read_and_a_missing_field_is_named(tmp_path):
    path = tmp_path / "tasks.json"
    path.write_text(json.dumps({
        "translation_en_de": [{"id": 1, "source": "The cat sleeps.", "reference": "Die Katze schläft."}],
        "code_understanding": [{"id": "c1", "instruction": "What does print(1) do?", "reference": "It prints 1."}],
    }))
    items = original_items(path)
    assert [item.id for item in items] == ["translation_en_de-1", "code_understanding-c1"]
    assert "The cat sleeps." in items[0].prompt and items[0].metrics == ("chrf", "bleu")
    path.write_text(json.dumps({"code_understanding": [{"id": "c1", "reference": "x"}]}))
    with pytest.raises(ValueError, match=r"code_understanding\[0\] has no non-empty 'instruction'"):
        original_items(path)
    with pytest.raises(FileNotFoundError, match="freeform.tasks_file"):
        original_items(tmp_path / "missing.json")


def test_the_originals_prompt_style_asks_the_bare_item_after_a_system_turn_per_task(tmp_path, micro_world):
    from ablation.models import load_tokenizer

    path = tmp_path / "tasks.json"
    path.write_text(json.dumps({
        "translation_en_de": [{"id": 1, "source": "The cat sleeps.", "reference": "Die Katze schläft."}],
        "code_understanding": [{"id": "c1", "instruction": "What does print(1) do?", "reference": "It prints 1."}],
    }))
    ours, original = original_items(path), original_items(path, prompt_style="original")
    assert [item.system for item in ours] == ["", ""] and ours[0].prompt != "The cat sleeps."
    assert [item.prompt for item in original] == ["The cat sleeps.", "What does print(1) do?"]
    assert original[0].system.startswith("You are a professional translator.") and original[1].system.startswith("You are an expert Python")
    tokenizer = load_tokenizer(str(micro_world / "base_model"))
    tokenizer.chat_template = "{% for m in messages %}[{{ m['role'] }}:{{ m['content'] }}]{% endfor %}{% if add_generation_prompt %}=>{% endif %}"
    item = original[1]
    assert tokenizer.decode(freeform_run.encode_prompt(tokenizer, item.prompt, True, item.system)) == f"[system:{item.system}][user:{item.prompt}]=>"
    written = tmp_path / "items.jsonl"
    write_items(original, written)
    assert read_items(written) == original  # the system turn survives the task file every generation job reads


def test_translation_set_is_read_through_datasets(tmp_path):
    rows = tmp_path / "wmt.jsonl"
    rows.write_text("".join(json.dumps({"translation": {"en": f"house {i}", "de": f"Haus {i}"}}) + "\n" for i in range(4)))
    items = hub_translation_items({"path": "json", "name": None, "split": "train", "data_files": str(rows), "limit": 3})
    assert [item.reference for item in items] == ["Haus 0", "Haus 1", "Haus 2"] and "house 0" in items[0].prompt


def test_metrics_and_their_intervals():
    assert exact_match("  Ashford.", "ashford") == 1.0 and exact_match("Ashford now", "Ashford") == 0.0
    assert token_f1("the red house", "the house") == pytest.approx(0.8)
    perfect = score("chrf", ["Die Katze schläft."] * 5, ["Die Katze schläft."] * 5, resamples=200)
    assert perfect["value"] == pytest.approx(100.0) and perfect["n"] == 5
    mixed = score("bleu", ["der Hund läuft schnell heute", "ein Haus"] * 5, ["der Hund rennt schnell heute", "das Haus"] * 5, resamples=200)
    assert mixed["ci95"][0] <= mixed["value"] <= mixed["ci95"][1] and 0 < mixed["value"] < 100
    with pytest.raises(ValueError, match="unknown free-form metric"):
        score("rouge", ["a"], ["a"])


def micro_config(tmp_path, **freeform):
    config = {"seed": 7, "model": {"device": "cpu"}, "freeform": {"activate": True, "examples_per_task": 3, "max_new_tokens": 6, "batch_size": 2, "bootstrap_resamples": 100, **freeform}}
    validate_config(config)
    return config


@pytest.mark.parametrize(
    ("section", "key", "changed"),
    [("freeform", "max_new_tokens", 4), ("model", "dtype", "bfloat16"), ("model", "attn_implementation", "eager")],
)
def test_generation_after_a_settings_change_discards_the_saved_batches(micro_world, tmp_path, monkeypatch, section, key, changed):
    config = micro_config(tmp_path)
    tasks = tmp_path / "tasks.jsonl"
    build_task_set(config["freeform"], 7, tasks)
    output = tmp_path / "generations.jsonl"
    real_generate, prompts_seen = freeform_run.generate, []

    def fails_after_one_batch(model, prompts, **options):
        def stop(indices, generations):
            on_batch(indices, generations)
            raise RuntimeError("killed")
        on_batch = options["on_batch"]
        return real_generate(model, prompts, **{**options, "on_batch": stop})

    monkeypatch.setattr(freeform_run, "generate", fails_after_one_batch)
    with pytest.raises(RuntimeError, match="killed"):
        generate_freeform(model_id=str(micro_world / "base_model"), mask="causal", tasks_path=tasks, output=output, config=config)

    def counting(model, prompts, **options):
        prompts_seen.extend(prompts)
        return real_generate(model, prompts, **options)

    monkeypatch.setattr(freeform_run, "generate", counting)
    config[section][key] = changed
    rows = generate_freeform(model_id=str(micro_world / "base_model"), mask="causal", tasks_path=tasks, output=output, config=config)
    assert len(prompts_seen) == 6 and all(row["tokens"] <= config["freeform"]["max_new_tokens"] for row in rows)
    assert "settings or inputs changed" in rows[0]["provenance"]["resume"]["restarted_because"]


def test_generation_stage_resumes_after_a_failure_and_feeds_scores_and_report(micro_world, tmp_path, monkeypatch):
    config = micro_config(tmp_path)
    tasks = tmp_path / "tasks.jsonl"
    assert build_task_set(config["freeform"], 7, tasks) == 6
    output = tmp_path / "base" / "causal" / "generations.jsonl"
    real_generate, prompts_seen = freeform_run.generate, []

    def fails_after_one_batch(model, prompts, **options):
        def stop(indices, generations):
            options_on_batch(indices, generations)
            raise RuntimeError("killed")
        options_on_batch = options["on_batch"]
        return real_generate(model, prompts, **{**options, "on_batch": stop})

    monkeypatch.setattr(freeform_run, "generate", fails_after_one_batch)
    with pytest.raises(RuntimeError, match="killed"):
        generate_freeform(model_id=str(micro_world / "base_model"), mask="causal", tasks_path=tasks, output=output, config=config)
    assert not output.exists() and len(read_jsonl(partial_path(output))) == 2  # the first batch is kept

    def counting(model, prompts, **options):
        prompts_seen.extend(prompts)
        return real_generate(model, prompts, **options)

    monkeypatch.setattr(freeform_run, "generate", counting)
    rows = generate_freeform(model_id=str(micro_world / "base_model"), mask="causal", tasks_path=tasks, output=output, config=config)
    assert len(prompts_seen) == 4 and not partial_path(output).exists()
    assert rows[0]["provenance"]["resume"]["resumed_from"] == "2 rows"
    assert [row["id"] for row in rows] == [item.id for item in read_items(tasks)]
    assert {"id", "task", "prompt", "response", "tokens", "seconds", "provenance"} <= set(rows[0])
    assert rows[0]["provenance"]["mask"] == "causal" and 1 <= rows[0]["tokens"] <= 6

    monkeypatch.setattr(freeform_run, "generate", real_generate)
    bidir = tmp_path / "base" / "prefill_bidir" / "generations.jsonl"
    generate_freeform(model_id=str(micro_world / "base_model"), mask="prefill_bidir", tasks_path=tasks, output=bidir, config=config)
    files = {("base", "causal"): output, ("base", "prefill_bidir"): bidir}
    scores = score_generations(files, tmp_path / "scores.json", resamples=100)
    assert {(row["mask"], row["task"], row["metric"]) for row in scores["rows"]} == {
        (mask, task, metric) for mask in ("causal", "prefill_bidir")
        for task, metrics in (("tiny_route_retell", ("bleu", "token_f1")), ("tiny_move_answer", ("exact_match", "token_f1"))) for metric in metrics
    }
    write_report(scores, files, table_stem=tmp_path / "tables" / "freeform", figure_stem=tmp_path / "freeform", page=tmp_path / "RESULTS.md", examples_per_task=1, experiment="micro")
    page = (tmp_path / "RESULTS.md").read_text()
    assert "| base · prefill_bidir |" in page and "route-0000" in page and "move-0000" in page
    assert (tmp_path / "freeform.png").stat().st_size > 1000 and (tmp_path / "tables" / "freeform.tex").exists()
    assert page.split("## Provenance")[1].strip().endswith("(all generations).")

    # generations made by other library code: refused with nothing written, or tabulated and named when allowed
    stale = [{**row, "provenance": {**row["provenance"], "library_code_sha256": "0" * 64}} for row in read_jsonl(bidir)]
    bidir.write_text("".join(json.dumps(row) + "\n" for row in stale))
    with pytest.raises(ValueError, match=r"free-form generations were made by different library code .*000000000000: base · prefill_bidir"):
        write_report(scores, files, table_stem=tmp_path / "mixed" / "freeform", figure_stem=tmp_path / "mixed" / "freeform",
                     page=tmp_path / "mixed" / "RESULTS.md", examples_per_task=1, experiment="micro")  # fmt: skip
    assert not (tmp_path / "mixed").exists()
    write_report(scores, files, table_stem=tmp_path / "mixed" / "freeform", figure_stem=tmp_path / "mixed" / "freeform",
                 page=tmp_path / "mixed" / "RESULTS.md", examples_per_task=1, experiment="micro", allow_mixed_code=True)  # fmt: skip
    mixed = (tmp_path / "mixed" / "RESULTS.md").read_text().split("## Provenance")[1]
    assert "**The generations differ in provenance:**" in mixed and "- base · prefill_bidir: code commit" in mixed and "`000000000000`" in mixed


def test_a_chat_template_wraps_the_prompt(micro_world):
    from ablation.models import load_tokenizer

    tokenizer = load_tokenizer(str(micro_world / "base_model"))
    assert not freeform_run.uses_chat_template(tokenizer, "auto")
    tokenizer.chat_template = "{% for m in messages %}[{{ m['content'] }}]{% endfor %}{% if add_generation_prompt %}=>{% endif %}"
    assert freeform_run.uses_chat_template(tokenizer, "auto")
    assert tokenizer.decode(freeform_run.encode_prompt(tokenizer, "hi", chat=True)) == "[hi]=>"


def test_config_section_is_off_by_default_and_a_real_task_set_needs_a_source():
    config = {}
    validate_config(config)
    assert config["freeform"]["activate"] is False and config["freeform"]["masks"] == ["causal", "prefill_bidir"]
    with pytest.raises(ValueError, match="freeform"):
        validate_config({"freeform": {"task_set": "real"}})


def test_workflow_generates_base_and_every_finetune_under_each_mask(tmp_path):
    """A dry run of the micro free-form config: the original's four configurations, generalised."""
    result = snakemake(tmp_path, REPOSITORY / "tests" / "configs" / "micro_freeform.yaml", "-n")
    assert result.returncode == 0, result.stderr[-3000:]
    runs = yaml.safe_load((REPOSITORY / "tests" / "configs" / "micro_freeform.yaml").read_text())["finetune"]["runs"]
    counts = planned_jobs(result)
    assert counts["generate_freeform"] == 2 * (1 + len(runs))
    assert counts["score_freeform"] == counts["report_freeform"] == counts["freeform_tasks"] == 1
