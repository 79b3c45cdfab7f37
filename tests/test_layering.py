"""The import rules of DESIGN.md: the evaluator is pure; executors never import the planner or the web app."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from spinbot import ROOT

FORBIDDEN = {
    "evaluator": {"planner", "executors", "web", "redis", "asyncpg", "httpx"},
    "executors": {"planner", "web"},
    "spinbot": {"planner", "web", "evaluator", "executors"},
}
# entrypoints (the CLI, `spinbot up`, `spinbot submit` evaluating as the API does, `spinbot evaluate` reading the
# live manifest) may reach every part
ENTRYPOINTS = {ROOT / "spinbot" / f for f in ("cli.py", "up.py", "client.py", "submit.py")} | {
    ROOT / "evaluator" / "cli.py"}


def imported_roots(path: Path) -> set[str]:
    roots = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            roots |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_packages_respect_the_layering(package: str) -> None:
    offenders = {
        str(p.relative_to(ROOT)): sorted(imported_roots(p) & FORBIDDEN[package])
        for p in (ROOT / package).rglob("*.py")
        if p not in ENTRYPOINTS and imported_roots(p) & FORBIDDEN[package]
    }
    assert offenders == {}
