"""The layout's promise: the core imports no study, the tiny world imports no study, and the two
studies do not import each other, so either can be changed without reading the other."""

from __future__ import annotations

import ast
from pathlib import Path

from ablation.code_version import PACKAGE_DIR, imported_modules

STUDIES = ("prefill", "bridge")
# what each part of the package may import, besides itself
ALLOWED = {"core": {"core"}, "world": {"core", "world"}, "prefill": {"core", "world", "prefill"}, "bridge": {"core", "world", "bridge"}}


def part(module: str) -> str:
    """``ablation.<study>...`` -> the study, ``ablation.world...`` -> world, the rest -> core."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in (*STUDIES, "world") else "core"


def module_name(path: Path, package_dir: Path) -> str:
    relative = path.relative_to(package_dir.parent).with_suffix("")
    parts = relative.parts[:-1] if relative.name == "__init__" else relative.parts
    return ".".join(parts)


def forbidden_imports(package_dir: Path) -> list[str]:
    """Every import, also inside functions, that crosses a boundary the layout forbids."""
    found = []
    for path in sorted(package_dir.rglob("*.py")):
        module = module_name(path, package_dir)
        for imported in sorted(imported_modules(ast.parse(path.read_text()), module, package_dir)):
            if part(imported) not in ALLOWED[part(module)]:
                found.append(f"{module} ({part(module)}) imports {imported} ({part(imported)})")
    return found


def test_no_import_crosses_the_layout():
    assert forbidden_imports(PACKAGE_DIR) == []


def test_a_forbidden_import_is_found(tmp_path):
    package = tmp_path / "ablation"
    for folder in (package, package / "bridge", package / "prefill", package / "world"):
        folder.mkdir(exist_ok=True)
        (folder / "__init__.py").write_text("")
    (package / "bridge" / "roles.py").write_text("")
    (package / "prefill" / "study.py").write_text("")
    (package / "config.py").write_text("def check():\n    from ablation.bridge.roles import report_problems\n")
    (package / "world" / "tasks.py").write_text("from ablation.prefill.study import TINY_TASKS\n")
    (package / "bridge" / "page.py").write_text("from ablation.prefill import study\n")
    (package / "prefill" / "report.py").write_text("from ablation.world import tasks\nfrom ablation import config\n")
    assert forbidden_imports(package) == [
        "ablation.bridge.page (bridge) imports ablation.prefill (prefill)",
        "ablation.bridge.page (bridge) imports ablation.prefill.study (prefill)",
        "ablation.config (core) imports ablation.bridge (bridge)",
        "ablation.config (core) imports ablation.bridge.roles (bridge)",
        "ablation.world.tasks (world) imports ablation.prefill (prefill)",
        "ablation.world.tasks (world) imports ablation.prefill.study (prefill)",
    ]


def test_the_world_generates_the_prefill_study_tiny_tasks():
    from ablation.prefill.study import TINY_TASKS as STUDY_TASKS
    from ablation.world.tasks import TINY_TASKS as WORLD_TASKS

    assert WORLD_TASKS == STUDY_TASKS
