"""Jobs that write text, tokenizers and reports start without importing torch: at about 4 s a
process (torch and transformers' model code), that import was most of each such job's time."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPTS = Path(__file__).resolve().parents[2] / "workflow" / "scripts"
LIGHT = [
    "world/build_world_data.py", "world/train_tokenizer.py", "bridge/build_bridge_world_data.py", "prefill/build_dev_tasks.py",
    "prefill/freeform_tasks.py", "prefill/score_freeform.py", "prefill/report_results.py", "prefill/report_freeform.py",
    "bridge/report_bridge.py",
]  # fmt: skip


def library_imports(script: Path) -> str:
    """The script's ``import``/``from ... import`` statements, as source."""
    tree = ast.parse(script.read_text())
    return "\n".join(ast.unparse(node) for node in ast.walk(tree) if isinstance(node, (ast.Import, ast.ImportFrom)))


@pytest.mark.parametrize("script", LIGHT)
def test_a_light_job_does_not_import_torch(script):
    probe = library_imports(SCRIPTS / script) + "\nimport sys\nprint('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout.strip() == "False"


def test_the_probe_sees_torch_where_a_job_needs_it():
    probe = library_imports(SCRIPTS / "bridge/train_bridge.py") + "\nimport sys\nprint('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout.strip() == "True"
