"""Which library code a job runs: a hash of the ``ablation`` modules its script imports.

Snakemake's own code trigger sees only a rule's thin script; the library does the work. Each rule
therefore gets this hash as a params value (``rules/common.smk``'s ``library_code``), so a change
to a module a job imports, directly or through other modules, makes that job's outputs out of date
and ``snakemake -n`` lists it with "params have changed". The import graph is read statically
(every import statement, also those inside functions), and each module is hashed from its syntax
tree without docstrings, so comments, docstrings and formatting change nothing. A package that
ships data files (``ablation.prefill.original.tasks``: task YAML and the helpers it names) counts whole.
"""

from __future__ import annotations

import ast
import hashlib
import sys
from functools import lru_cache
from pathlib import Path

PACKAGE = "ablation"
PACKAGE_DIR = Path(__file__).resolve().parent


def module_file(module: str, package_dir: Path = PACKAGE_DIR) -> Path | None:
    """The source file of an ``ablation`` module or package; None where there is none."""
    parts = module.split(".")
    if parts[0] != PACKAGE:
        return None
    base = package_dir.joinpath(*parts[1:])
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _with_parents(module: str) -> list[str]:
    """Importing ``a.b.c`` runs ``a``, ``a.b`` and ``a.b.c``."""
    parts = module.split(".")
    return [".".join(parts[:end]) for end in range(1, len(parts) + 1)]


def imported_modules(tree: ast.AST, module: str | None, package_dir: Path = PACKAGE_DIR) -> set[str]:
    """The ``ablation`` modules a parsed source imports anywhere in it; ``module`` (None for a script)
    resolves relative imports."""
    own_file = module_file(module, package_dir) if module is not None else None
    is_package = own_file is not None and own_file.name == "__init__.py"
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                if module is None:
                    continue
                anchor = module.split(".")
                anchor = anchor if is_package else anchor[:-1]
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, *([node.module] if node.module else [])])
            else:
                base = node.module or ""
            # ``from ablation.x import y`` imports the submodule y where there is one
            names = [base, *(f"{base}.{alias.name}" for alias in node.names)]
        else:
            continue
        for name in names:
            if name.split(".")[0] == PACKAGE and module_file(name, package_dir) is not None:
                found.update(part for part in _with_parents(name) if module_file(part, package_dir) is not None)
    return found


def _strip_docstrings(tree: ast.AST) -> ast.AST:
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
                node.body = node.body[1:] or [ast.Pass()]
    return tree


@lru_cache(maxsize=None)
def _source_record(source: str, module: str | None, package_dir: Path) -> tuple[frozenset[str], str]:
    """The modules a source imports and the hash of its normalised form (cached by content: a
    workflow parses each module once however many rules import it)."""
    tree = _strip_docstrings(ast.parse(source))
    normalised = ast.dump(tree, annotate_fields=False, include_attributes=False)
    return frozenset(imported_modules(tree, module, package_dir)), hashlib.sha256(normalised.encode()).hexdigest()


def _record(path: Path, module: str | None, package_dir: Path) -> tuple[frozenset[str], str]:
    try:
        return _source_record(path.read_text(), module, package_dir)
    except SyntaxError as error:
        raise SyntaxError(f"{path}: {error}") from None


def _files_of(path: Path) -> list[Path]:
    """The files a module stands for: its source, or all files of a package that ships data files."""
    if path.name != "__init__.py":
        return [path]
    files = sorted(p for p in path.parent.iterdir() if p.is_file() and p.suffix != ".pyc")
    return files if any(p.suffix != ".py" for p in files) else [path]


def _file_hash(path: Path, module: str, package_dir: Path) -> str:
    if path.suffix == ".py":
        return _record(path, module, package_dir)[1]
    return hashlib.sha256(path.read_bytes()).hexdigest()


def library_modules(script: str | Path, package_dir: Path = PACKAGE_DIR) -> dict[str, list[Path]]:
    """Every ``ablation`` module ``script`` imports, directly or through others, with the files it
    stands for (a resource package: all its files)."""
    script = Path(script)
    pending = sorted(_record(script, _script_module(script, package_dir), package_dir)[0])
    modules: dict[str, list[Path]] = {}
    while pending:
        module = pending.pop()
        if module in modules:
            continue
        path = module_file(module, package_dir)
        modules[module] = _files_of(path)
        pending.extend(_record(path, module, package_dir)[0] - modules.keys())
    return modules


def _script_module(script: Path, package_dir: Path) -> str | None:
    """The module name of a file inside the package (``python -m`` entry points); None for a script."""
    try:
        relative = script.resolve().relative_to(package_dir.resolve())
    except ValueError:
        return None
    parts = relative.with_suffix("").parts
    return ".".join([PACKAGE, *(parts[:-1] if parts[-1] == "__init__" else parts)])


def library_code_sha256(script: str | Path, package_dir: Path = PACKAGE_DIR) -> str:
    """sha256 over the normalised source of the ``ablation`` modules ``script`` runs (``library_modules``)."""
    digest = hashlib.sha256()
    for module, files in sorted(library_modules(script, package_dir).items()):
        for path in files:
            digest.update(f"{module}:{path.name}:{_file_hash(path, module, package_dir)}\n".encode())
    return digest.hexdigest()


def entry_point_code_sha256() -> str | None:
    """``library_code_sha256`` of the file this process was started with (a job's script, or a
    ``python -m ablation...`` launcher); None when that imports no library module (pytest, a shell)."""
    main = getattr(sys.modules.get("__main__"), "__file__", None)
    if main is None or Path(main).suffix != ".py" or not Path(main).is_file() or not library_modules(main):
        return None
    return library_code_sha256(main)
