"""The layers of docs/architecture.md ("Layers"): a package imports only the packages it names below, with
no exception for any file; nothing imports the shell; the evaluator does no I/O."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from spinbot import ROOT

#: package -> the project's packages it may import (every import counts: top level, in a function,
#: under TYPE_CHECKING)
MAY_IMPORT: dict[str, set[str]] = {
    "spinbot": set(),  # the shared kernel
    "evaluator": {"spinbot"},  # pure checks of a graph
    "executors": {"spinbot"},  # the planes' runtime
    "planner": {"spinbot", "evaluator"},  # goal -> graph
    "conversation": {"spinbot", "evaluator", "planner"},  # the chat use case every front end shares
    "web": {"spinbot", "evaluator", "planner", "conversation"},  # HTTP: routes, middleware, SSE, /v1, the UI
    "shell": {"spinbot", "evaluator", "planner", "executors", "conversation", "web"},  # entrypoints: nothing imports
}
#: the evaluator is pure: no client library of Redis, Postgres or HTTP
NO_IO = {"redis", "asyncpg", "httpx"}


def imported_roots(path: Path) -> set[str]:
    roots = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            roots |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


def test_the_layers_cover_every_package_and_the_docs_name_them() -> None:
    packages = {p.parent.name for p in ROOT.glob("*/__init__.py")} - {"tests", "manifests", "prompts"}  # data
    assert packages == set(MAY_IMPORT)
    layers = (ROOT / "docs" / "architecture.md").read_text().split("## Layers", 1)[1].split("\n## ", 1)[0]
    assert all(f"`{p}/`" in layers for p in MAY_IMPORT)


@pytest.mark.parametrize("package", sorted(MAY_IMPORT))
def test_packages_import_only_the_layers_below(package: str) -> None:
    forbidden = set(MAY_IMPORT) - MAY_IMPORT[package] - {package}
    if package == "evaluator":
        forbidden |= NO_IO
    offenders = {
        str(p.relative_to(ROOT)): sorted(imported_roots(p) & forbidden)
        for p in (ROOT / package).rglob("*.py")
        if imported_roots(p) & forbidden
    }
    assert offenders == {}
