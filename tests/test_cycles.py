"""No import cycle in the runtime core (`executors/`, `spinbot/queue/`; docs/architecture.md, "Layers"): every
import counts, at the top, inside a function or under TYPE_CHECKING. Modules that need each other's objects
name them through the Protocols of executors/interface.py and spinbot/queue/interface.py."""

from __future__ import annotations

import ast
from collections.abc import Iterable
from pathlib import Path

from spinbot import ROOT

CORE = ("executors", "spinbot.queue")


def module_name(root: Path, path: Path) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph(root: Path, packages: Iterable[str]) -> dict[str, set[str]]:
    """module -> the modules of `packages` it imports (`from p import m` counts as importing p.m when m is a
    module, else p itself); relative imports resolved."""
    files = {module_name(root, p): p for pkg in packages for p in (root / pkg).rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        base = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom):
                module = node.module or ""
                if node.level:
                    up = base.split(".")[: len(base.split(".")) - node.level + 1]
                    module = ".".join([*up, module] if module else up)
                targets |= {f"{module}.{a.name}" if f"{module}.{a.name}" in files else module for a in node.names}
        for target in targets:
            while target and target not in files:  # `import a.b.c` of a name inside a module: the module
                target = target.rpartition(".")[0]
            if target and target != name:
                graph.setdefault(name, set()).add(target)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while (w := stack.pop()) != v:
                component.append(w)
            if component:
                found.append(sorted([v, *component]))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_runtime_core_has_no_import_cycle() -> None:
    # the whole kernel is in the graph: a circle through spinbot.store or spinbot.graph counts too
    core = [c for c in cycles(import_graph(ROOT, ["executors", "spinbot"])) if any(m.startswith(CORE) for m in c)]
    assert core == []


def test_a_cycle_under_type_checking_or_in_a_function_is_found(tmp_path: Path) -> None:
    pkg = tmp_path / "executors"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "core.py").write_text("from executors.jobrun import JobRun\nfrom . import leaf\n")
    (pkg / "jobrun.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .core import X\n")
    (pkg / "info.py").write_text("def f():\n    from executors import registry\n")
    (pkg / "registry.py").write_text("from executors import info, leaf\n")
    (pkg / "leaf.py").write_text("import os\n")
    assert sorted(cycles(import_graph(tmp_path, ["executors"]))) == [
        ["executors.core", "executors.jobrun"], ["executors.info", "executors.registry"]]
