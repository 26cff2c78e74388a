"""dvc.yaml's ``deps:`` cover the code each stage runs.

DVC reruns a stage only when one of its deps changed. A library module that a stage's
script imports (directly or through other modules, at module level or inside a function)
but that its ``deps:`` leave out lets a code change pass unnoticed: ``dvc repro`` says the
stage is up to date and keeps outputs the current code would not make. The imports are read
with ``ast`` from ``stages/<stage>.py`` and from every module of ``src/stockclf`` it
reaches; a dep that is a directory covers every module below it.

Three kinds of import are followed although no ``import`` statement runs at module level:
imports inside functions (the code imports torch-heavy modules lazily), the factories a
registry imports by name (``Registry.get``: counted for the module that calls ``get``), and
the names a module's PEP 562 ``__getattr__`` imports on first use (counted where such a
name is imported or looked up, the module itself included). ``if TYPE_CHECKING:`` imports
never run and are not counted.
"""

from __future__ import annotations

import ast
import itertools
import shlex
import sys
from collections import deque
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from helpers import REPO

from stockclf import registry

#: Where paths in messages are relative to, and where the package's sources are; the test
#: of the reader itself points both at a made-up package.
ROOT = REPO
SRC = REPO / "src"
PACKAGE = "stockclf"
STAGES = yaml.safe_load((REPO / "dvc.yaml").read_text(encoding="utf-8"))["stages"]

#: Registry object name -> the modules its entries name (imported when ``get`` is called).
REGISTRY_MODULES = {
    name: {entry.partition(":")[0] for entry in value.entries.values()}
    for name, value in vars(registry).items()
    if isinstance(value, registry.Registry)
}


def module_file(module: str) -> Path | None:
    """The file that defines ``module`` under SRC, or None if it is not a module there."""
    base = SRC.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def with_parents(module: str) -> list[str]:
    """``stockclf.a.b`` -> ``stockclf``, ``stockclf.a``, ``stockclf.a.b``: importing a module
    runs the ``__init__`` of every package above it first."""
    parts = module.split(".")
    return [".".join(parts[: i + 1]) for i in range(len(parts))]


def _parse(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _is_lazy_getattr(node: ast.AST, tree: ast.Module) -> bool:
    return isinstance(node, ast.FunctionDef) and node.name == "__getattr__" and node in tree.body


def runtime_nodes(tree: ast.Module) -> Iterator[ast.AST]:
    """Every node of ``tree``, function bodies included, except ``if TYPE_CHECKING:``
    blocks and a module-level ``__getattr__`` (see :func:`lazy_names`)."""
    stack: list[ast.AST] = [tree]
    while stack:
        node = stack.pop()
        yield node
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child.test):
                stack.extend(child.orelse)
            elif not _is_lazy_getattr(child, tree):
                stack.append(child)


def _absolute(node: ast.ImportFrom, module: str | None, is_package: bool) -> str:
    if node.level == 0:
        return node.module or ""
    assert module is not None, "a relative import in a stage script"
    parts = module.split(".")
    package = parts if is_package else parts[:-1]
    package = package[: len(package) - (node.level - 1)]
    return ".".join(package + ([node.module] if node.module else []))


def _imports(
    nodes: list[ast.AST], module: str | None, is_package: bool
) -> tuple[set[str], set[tuple[str, str]]]:
    """The modules ``nodes`` import, and the (module, name) pairs they take from a module
    without that name being a submodule (a PEP 562 lazy name, perhaps)."""
    found: set[str] = set()
    names: set[tuple[str, str]] = set()
    bound: dict[str, str] = {}  # local name -> the module an ``import`` bound it to
    for node in nodes:
        if isinstance(node, ast.Import):
            for alias in node.names:
                found.add(alias.name)
                local = alias.asname or alias.name.split(".")[0]
                bound[local] = alias.name if alias.asname else local
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(node, module, is_package)
            found.add(base)
            for alias in node.names:
                if module_file(f"{base}.{alias.name}") is not None:
                    found.add(f"{base}.{alias.name}")
                else:
                    names.add((base, alias.name))
    for node in nodes:
        value = getattr(node, "value", None)
        if isinstance(node, ast.Attribute) and isinstance(value, ast.Name) and value.id in bound:
            names.add((bound[value.id], node.attr))
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            owner = node.func.value
            name = owner.id if isinstance(owner, ast.Name) else getattr(owner, "attr", None)
            if node.func.attr == "get" and name in REGISTRY_MODULES:
                found.update(REGISTRY_MODULES[name])
    return found, names


def lazy_names(module: str) -> dict[str, set[str]]:
    """Names that ``module``'s PEP 562 ``__getattr__`` imports on first use, each with the
    modules that function imports. It runs only when such a name is looked up."""
    path = module_file(module)
    if path is None:
        return {}
    tree = _parse(path)
    lazy: dict[str, set[str]] = {}
    for node in tree.body:
        if _is_lazy_getattr(node, tree):
            inner = list(ast.walk(node))
            modules, _ = _imports(inner, module, path.name == "__init__.py")
            for imp in inner:
                if isinstance(imp, ast.ImportFrom | ast.Import):
                    for alias in imp.names:
                        lazy.setdefault(alias.asname or alias.name, set()).update(modules)
    return lazy


def imported_modules(path: Path, module: str | None) -> set[str]:
    """The ``stockclf`` modules that ``path`` (module ``module``; None for a script) imports.

    ``from stockclf.x import y`` imports ``stockclf.x.y`` when that is a module (else ``y``
    is a name defined in ``stockclf.x``); relative imports resolve against ``module``.
    """
    nodes = list(runtime_nodes(_parse(path)))
    found, names = _imports(nodes, module, path.name == "__init__.py")
    for base, name in names:
        found |= lazy_names(base).get(name, set())
    if module is not None:  # a module that looks up its own lazy name (sys.modules[...].x)
        own = lazy_names(module)
        for node in nodes:
            if isinstance(node, ast.Attribute):
                found |= own.get(node.attr, set())
            elif isinstance(node, ast.Name):
                found |= own.get(node.id, set())
    return {m for m in found if m == PACKAGE or m.startswith(PACKAGE + ".")}


def stage_modules(script: Path) -> dict[str, list[str]]:
    """Every ``stockclf`` module ``script`` reaches, with a shortest import chain to it
    (breadth first), for the failure message."""
    chains: dict[str, list[str]] = {}
    start = script.relative_to(ROOT).as_posix()
    todo = deque((m, [start]) for m in sorted(imported_modules(script, None)))
    while todo:
        module, chain = todo.popleft()
        for name in with_parents(module):
            path = module_file(name)
            if name in chains or path is None:
                continue
            chains[name] = [*chain, name]
            todo.extend((m, chains[name]) for m in sorted(imported_modules(path, name)))
    return chains


def covered(path: Path, deps: list[str]) -> bool:
    """Whether a dep is ``path`` or a directory above it."""
    rel = path.relative_to(ROOT)
    return any(rel == Path(dep) or Path(dep) in rel.parents for dep in deps)


def uncovered(script: Path, deps: list[str]) -> list[str]:
    """One line per module ``script`` reaches that no dep covers: its file, and how."""
    return [
        f"{module_file(m).relative_to(ROOT)} (module {m}, imported via {' -> '.join(chain)})"
        for m, chain in sorted(stage_modules(script).items())
        if not covered(module_file(m), deps)
    ]


def stage_script(stage: str) -> Path:
    argv = shlex.split(STAGES[stage]["cmd"])
    assert argv[0] == "python" and argv[1].endswith(".py"), STAGES[stage]["cmd"]
    return REPO / argv[1]


def dep_paths(stage: str) -> list[str]:
    """The stage's deps without the ones DVC fills in from params (``${data.source}``)."""
    return [d for d in STAGES[stage].get("deps", []) if "${" not in d]


@pytest.mark.parametrize("stage", list(STAGES))
def test_deps_cover_every_module_the_stage_imports(stage: str) -> None:
    script = stage_script(stage)
    deps = dep_paths(stage)
    assert script.relative_to(REPO).as_posix() in deps, f"stage {stage!r}: {script} not a dep"
    missing = uncovered(script, deps)
    assert not missing, f"stage {stage!r}: dvc.yaml deps miss\n  " + "\n  ".join(missing)


@pytest.mark.parametrize("stage", list(STAGES))
def test_code_deps_exist(stage: str) -> None:
    """A dep moved or deleted makes ``dvc repro`` stop with a missing dependency."""
    code = [d for d in dep_paths(stage) if d.startswith(("src/", "stages/"))]
    gone = [d for d in code if not (REPO / d).exists()]
    assert not gone, f"stage {stage!r}: dvc.yaml deps that do not exist: {gone}"


#: A made-up package for the reader's own test: file -> source.
FAKE = {
    "stockclf/__init__.py": (
        "def __getattr__(name):\n"  # PEP 562: runs only for a name the package lacks
        "    from stockclf.heavy import load\n"
        "    return load\n"
    ),
    "stockclf/config.py": "from stockclf import errors\nimport stockclf.tuning as tuning\n",
    "stockclf/errors.py": "",
    "stockclf/heavy.py": "import stockclf.deep\n",
    "stockclf/deep.py": "",
    "stockclf/only_typed.py": "",
    "stockclf/tuning/__init__.py": "",
    "stockclf/tuning/runner.py": "from . import trials\n",
    "stockclf/tuning/trials.py": "from ..config import VALUE\n",
    "stockclf/tuning/lazy.py": (
        "import sys\n"
        "def __getattr__(name):\n"
        "    from stockclf.deep import fit\n"
        "    return fit\n"
        "def run():\n"
        "    return sys.modules[__name__].fit()\n"  # its own lazy name, looked up
    ),
    "stockclf/data/__init__.py": "",
    "stockclf/data/features.py": "",  # a FEATURES registry entry
}

SCRIPT = """from typing import TYPE_CHECKING

from stockclf.config import Params  # a name in stockclf.config, not a module

if TYPE_CHECKING:
    import stockclf.only_typed


def main():
    from stockclf.tuning import runner  # imported only when main runs

    return FEATURES.get("log_return")
"""


@pytest.fixture
def fake_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for rel, source in FAKE.items():
        (tmp_path / "src" / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "src" / rel).write_text(source, encoding="utf-8")
    (tmp_path / "stages").mkdir()
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    monkeypatch.setattr(sys.modules[__name__], "SRC", tmp_path / "src")
    return tmp_path


def test_the_reader_follows_lazy_relative_registry_and_package_imports(fake_package) -> None:
    script = fake_package / "stages" / "demo.py"
    script.write_text(SCRIPT, encoding="utf-8")
    assert imported_modules(script, None) == {
        "stockclf.config",
        "stockclf.tuning",
        "stockclf.tuning.runner",
        "stockclf.data.features",
    }
    chains = stage_modules(script)
    # the parents' __init__ run too; runner's relative import of trials, whose own
    # two-level relative import lands on config; heavy and only_typed never run
    assert set(chains) == {
        "stockclf",
        "stockclf.config",
        "stockclf.errors",
        "stockclf.tuning",
        "stockclf.tuning.runner",
        "stockclf.tuning.trials",
        "stockclf.data",
        "stockclf.data.features",
    }
    assert chains["stockclf.tuning.trials"] == [
        "stages/demo.py",
        "stockclf.tuning.runner",
        "stockclf.tuning.trials",
    ]
    for chain in chains.values():  # each link is an import of the module before it
        for before, after in itertools.pairwise(chain[1:]):
            reached = imported_modules(module_file(before), before)
            assert after in {p for m in reached for p in with_parents(m)}, chain

    # a lazy name of the package, imported or looked up, brings in what __getattr__ imports
    for use in ("from stockclf import load\n", "import stockclf\nstockclf.load()\n"):
        script.write_text(use, encoding="utf-8")
        assert {"stockclf.heavy", "stockclf.deep"} <= set(stage_modules(script)), use
    script.write_text("from stockclf.tuning import lazy\n", encoding="utf-8")
    assert "stockclf.deep" in stage_modules(script)


def test_the_message_names_each_uncovered_module_and_its_chain(fake_package) -> None:
    script = fake_package / "stages" / "demo.py"
    script.write_text(SCRIPT, encoding="utf-8")
    deps = ["stages/demo.py", "src/stockclf/__init__.py", "src/stockclf/tuning", "src/stockclf/d"]
    assert uncovered(script, deps) == [
        "src/stockclf/config.py (module stockclf.config, imported via stages/demo.py"
        " -> stockclf.config)",
        "src/stockclf/data/__init__.py (module stockclf.data, imported via stages/demo.py"
        " -> stockclf.data)",
        "src/stockclf/data/features.py (module stockclf.data.features, imported via"
        " stages/demo.py -> stockclf.data.features)",
        "src/stockclf/errors.py (module stockclf.errors, imported via stages/demo.py"
        " -> stockclf.config -> stockclf.errors)",
    ]
    assert uncovered(script, [*deps, "src/stockclf/config.py", "src/stockclf"]) == []
