"""The conda environment for cluster nodes pins exactly what requirements.lock pins."""

from pathlib import Path

import yaml

REPOSITORY = Path(__file__).resolve().parents[2]


def test_conda_environment_pins_the_lock_file():
    environment = yaml.safe_load((REPOSITORY / "envs" / "ablation.yaml").read_text())
    pip = next(item["pip"] for item in environment["dependencies"] if isinstance(item, dict))
    lock = [line for line in (REPOSITORY / "requirements.lock").read_text().splitlines() if line.strip()]
    assert pip == lock
    assert "python=3.11" in environment["dependencies"]


def test_every_script_or_shell_rule_runs_in_the_conda_environment():
    for rules in (REPOSITORY / "rules").glob("*.smk"):
        text = rules.read_text()
        assert text.count("    script:") + text.count("    shell:") == text.count('    conda:\n        "../envs/ablation.yaml"'), rules.name
