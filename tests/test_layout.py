"""The package layout: subpackages by pipeline stage, imports only go down, no cycle, no private name
imported across modules. Walks the imports of every module with ``ast`` (nothing is imported)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

PACKAGE_DIR = Path(__file__).resolve().parent.parent / "probeft"

# Each subpackage and the subpackages it may import (besides itself); probeft/__init__ imports nothing.
ALLOWED: dict[str, set[str]] = {
    "core": set(),
    "data": {"core"},
    "models": {"core"},
    "results": {"core"},
    "verdicts": {"core", "results"},
    "probing": {"core", "data", "models", "results", "verdicts"},
    "finetune": {"core", "data", "models", "results"},
    "diagnostics": {"core", "data", "models", "finetune"},
    "report": {"core", "results", "verdicts"},
}
ALLOWED["grid"] = set(ALLOWED)


def module_name(path: Path, root: Path) -> str:
    """``root/probeft/a/b.py`` -> ``probeft.a.b``; a package's ``__init__.py`` -> the package."""
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def package_modules(package_dir: Path) -> dict[str, Path]:
    """Every module of the package: dotted name -> file."""
    return {module_name(path, package_dir): path for path in sorted(package_dir.rglob("*.py"))}


def imports_of(path: Path, name: str, modules: dict[str, Path]) -> list[tuple[str, str | None, int]]:
    """The package modules one module imports, at any depth of its code.

    Returns:
        ``(imported module, imported name or None, line)``; ``from probeft.x import y`` names module
        ``probeft.x.y`` when that is a module, else module ``probeft.x`` and name ``y``.
    """
    top = name.split(".")[0]
    is_package = path.name == "__init__.py"
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [(alias.name, None, node.lineno) for alias in node.names if alias.name.split(".")[0] == top]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against this module's package
                base = name.split(".") if is_package else name.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            if source.split(".")[0] != top:
                continue
            for alias in node.names:
                submodule = f"{source}.{alias.name}"
                found.append((submodule, None, node.lineno) if submodule in modules else (source, alias.name, node.lineno))
    return found


def subpackage(module: str) -> str:
    """``probeft.probing.stage`` -> ``probing``; ``probeft`` itself -> ``""``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def layout_problems(package_dir: Path, allowed: dict[str, set[str]]) -> list[str]:
    """Everything wrong with a package's layout, one line each (empty when none)."""
    modules = package_modules(package_dir)
    problems: list[str] = []
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        where = path.relative_to(package_dir.parent)
        room = subpackage(name)
        if room and room not in allowed:
            problems.append(f"{where}: module outside the subpackages {sorted(allowed)}")
            continue
        if not room and name != package_dir.name:
            problems.append(f"{where}: module outside the subpackages {sorted(allowed)}")
        for target, imported, line in imports_of(path, name, modules):
            if target not in modules:
                problems.append(f"{where}:{line}: imports {target}, which does not exist")
                continue
            graph[name].add(target)
            target_room = subpackage(target)
            if not room and target_room:
                problems.append(f"{where}:{line}: the package root imports {target}")
            elif target_room and target_room != room and target_room not in allowed.get(room, set()):
                problems.append(f"{where}:{line}: {room} imports {target} ({target_room} is not below it)")
            if imported and imported.startswith("_") and not imported.startswith("__") and target != name:
                problems.append(f"{where}:{line}: private name {imported} imported from {target}")
    problems += [f"import cycle: {' -> '.join(cycle)}" for cycle in import_cycles(graph)]
    return problems


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle (closed path of module names) per strongly connected component larger than one module,
    and every module that imports itself."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def visit(node: str) -> None:  # Tarjan's algorithm; the package has ~60 modules, recursion is fine
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for successor in sorted(graph[node]):
            if successor not in index:
                visit(successor)
                low[node] = min(low[node], low[successor])
            elif successor in on_stack:
                low[node] = min(low[node], index[successor])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1 or node in graph[node]:
                components.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    cycles = []
    for component in components:
        members = set(component)
        path = [component[0]]  # walk inside the component until a module repeats
        while True:
            following = sorted(graph[path[-1]] & members)[0]
            if following in path:
                cycles.append(path[path.index(following):] + [following])
                break
            path.append(following)
    return cycles


def test_the_package_layout_has_no_upward_import_cycle_or_private_import():
    assert layout_problems(PACKAGE_DIR, ALLOWED) == []


def test_every_subpackage_says_what_it_holds_and_may_import():
    for room, below in ALLOWED.items():
        init = PACKAGE_DIR / room / "__init__.py"
        docstring = ast.get_docstring(ast.parse(init.read_text())) or ""
        match = re.search(r"May import: (.*?)(?:\n\n|$)", docstring, re.S)
        assert match, f"{init}: no 'May import:' line"
        stated = set(re.findall(r"probeft\.(\w+)", match.group(1)))
        if room == "grid":
            assert "everything" in match.group(1)
        else:
            assert stated == below, f"{init}: says it may import {sorted(stated)}, the layout test allows {sorted(below)}"
        assert len(docstring.split("May import:")[0].strip()) > 40, f"{init}: say what the subpackage holds"


def test_no_flat_modules_beside_the_subpackages():
    flat = sorted(p.name for p in PACKAGE_DIR.glob("*.py") if p.name != "__init__.py")
    assert flat == []
    assert sorted(p.name for p in PACKAGE_DIR.iterdir() if (p / "__init__.py").is_file()) == sorted(ALLOWED)


def _write_package(root: Path, files: dict[str, str]) -> Path:
    for relative, text in files.items():
        path = root / "pkg" / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root / "pkg"


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        ({"low/a.py": "from pkg.high import b\n", "high/b.py": ""}, "low imports pkg.high.b (high is not below it)"),
        ({"high/b.py": "def f():\n    from pkg.low.a import _secret\n", "low/a.py": "_secret = 1\n"},
         "private name _secret imported from pkg.low.a"),
        ({"low/a.py": "from pkg.low import b\n", "low/b.py": "import pkg.low.a\n"},
         "import cycle: pkg.low.a -> pkg.low.b -> pkg.low.a"),
        ({"loose.py": ""}, "module outside the subpackages"),
        ({"high/b.py": "from pkg.gone import x\n"}, "imports pkg.gone, which does not exist"),
    ],
)
def test_the_layout_check_finds_each_kind_of_problem(tmp_path, files, expected):
    base = {"__init__.py": "", "low/__init__.py": "", "high/__init__.py": ""}
    package = _write_package(tmp_path, {**base, **files})
    problems = layout_problems(package, {"low": set(), "high": {"low"}})
    assert any(expected in problem for problem in problems), problems


def test_a_downward_import_through_a_package_reexport_is_fine(tmp_path):
    package = _write_package(tmp_path, {
        "__init__.py": "", "low/__init__.py": "from pkg.low.a import f\n", "low/a.py": "def f():\n    pass\n",
        "high/__init__.py": "", "high/b.py": "from pkg import low\nfrom pkg.low.a import f\n",
    })
    assert layout_problems(package, {"low": set(), "high": {"low"}}) == []
