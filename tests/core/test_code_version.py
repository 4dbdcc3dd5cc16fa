"""The library-code hash that makes a rule's jobs rerun when the ablation modules they run change."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from ablation.code_version import library_code_sha256, library_modules
from ablation.provenance import check_one_library_code

REPOSITORY = Path(__file__).resolve().parents[2]
SCRIPTS = REPOSITORY / "workflow" / "scripts"


def write(path: Path, source: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(source))
    return path


@pytest.fixture
def package(tmp_path):
    """A miniature ``ablation`` package: the script imports ``a``, which imports ``b`` inside a
    function and ``c`` relatively from a subpackage; ``unused`` is imported by nobody."""
    root = tmp_path / "ablation"
    write(root / "__init__.py", "")
    write(root / "a.py", '''
        """Module a."""
        from .sub import c


        def f():
            from ablation import b  # a lazy import counts too
            return b.g() + c.h()
    ''')
    write(root / "b.py", "def g():\n    return 1\n")
    write(root / "sub" / "__init__.py", "")
    write(root / "sub" / "c.py", "def h():\n    return 2\n")
    write(root / "unused.py", "def u():\n    return 3\n")
    script = write(tmp_path / "scripts" / "job.py", "from ablation.a import f\n\nf()\n")
    return root, script


def test_the_hash_covers_the_modules_the_script_imports_directly_lazily_and_relatively(package):
    root, script = package
    assert sorted(library_modules(script, root)) == ["ablation", "ablation.a", "ablation.b", "ablation.sub", "ablation.sub.c"]


@pytest.mark.parametrize("module", ["b.py", "sub/c.py"])
def test_a_code_change_in_an_imported_module_changes_the_hash(package, module):
    root, script = package
    before = library_code_sha256(script, root)
    path = root / module
    path.write_text(path.read_text().replace("return", "return 10 +"))
    assert library_code_sha256(script, root) != before


def test_comments_docstrings_and_unimported_modules_change_nothing(package):
    root, script = package
    before = library_code_sha256(script, root)
    a = root / "a.py"
    a.write_text(a.read_text().replace('"""Module a."""', '"""Module a, now documented at length."""\n# a comment'))
    write(root / "b.py", 'def g():\n    """Why g."""\n    # one\n    return 1  # always\n')
    (root / "unused.py").write_text("def u():\n    return 4\n")
    assert library_code_sha256(script, root) == before


def test_a_package_with_data_files_counts_whole(tmp_path):
    root = tmp_path / "ablation"
    write(root / "__init__.py", "")
    write(root / "tasks" / "__init__.py", "DIR = __file__\n")
    write(root / "tasks" / "task.yaml", "task: one\n")
    write(root / "tasks" / "utils.py", "def process(doc):\n    return doc\n")
    script = write(tmp_path / "job.py", "from ablation.tasks import DIR\n")
    before = library_code_sha256(script, root)
    (root / "tasks" / "task.yaml").write_text("task: two\n")
    after_yaml = library_code_sha256(script, root)
    (root / "tasks" / "utils.py").write_text("def process(doc):\n    return doc[::-1]\n")
    assert len({before, after_yaml, library_code_sha256(script, root)}) == 3


def test_the_workflow_scripts_import_their_own_study_only():
    evaluation = library_modules(SCRIPTS / "prefill" / "eval_model.py")
    bridge = library_modules(SCRIPTS / "bridge" / "train_bridge.py")
    assert {"ablation.prefill.evaluate", "ablation.prefill.scoring", "ablation.prefill.masks", "ablation.prefill.original.tasks"} <= evaluation.keys()
    assert not any(module.startswith("ablation.bridge") for module in evaluation)
    assert "ablation.bridge.model" in bridge and "ablation.prefill.evaluate" not in bridge


def test_results_made_by_different_code_are_refused_by_name_unless_allowed():
    stamps = {"a": {"library_code_sha256": "1" * 64}, "b": {"library_code_sha256": "2" * 64}, "c": None}
    with pytest.raises(ValueError, match=r"the runs were made by different library code .*222222222222: b.*unrecorded: c"):
        check_one_library_code(stamps, what="runs")
    assert check_one_library_code(stamps, allow_mixed=True) == {"1" * 64: ["a"], "2" * 64: ["b"], "unrecorded": ["c"]}
    assert check_one_library_code({"a": stamps["a"], "d": stamps["a"]}) == {"1" * 64: ["a", "d"]}
