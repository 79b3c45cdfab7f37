"""README.md and docs/: every SPINBOT_ variable named is a setting, the settings table is complete, links resolve."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from spinbot import ROOT
from spinbot.settings import Settings

DOCS = ROOT / "docs"
PAGES = [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]
FIELDS = set(Settings.model_fields)


def test_the_docs_exist() -> None:
    names = {p.name for p in DOCS.glob("*.md")}
    assert {"architecture.md", "graph-contract.md", "writing-a-service.md", "open-webui.md", "operations.md"} <= names


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_named_variables_are_settings(page: Path) -> None:
    named = {m.lower() for m in re.findall(r"\bSPINBOT_([A-Z][A-Z0-9_]*[A-Z0-9])\b", page.read_text())}
    assert named - FIELDS == set(), f"{page.name} names settings that do not exist: {sorted(named - FIELDS)}"


def test_settings_table_lists_every_setting() -> None:
    rows = [ln for ln in (ROOT / "README.md").read_text().splitlines() if ln.startswith("| `SPINBOT_")]
    listed = {m.lower() for row in rows for m in re.findall(r"`SPINBOT_([A-Z0-9_]+)`", row.split("|")[1])}
    assert FIELDS - listed == set(), f"settings missing from the table: {sorted(FIELDS - listed)}"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_relative_links_resolve(page: Path) -> None:
    for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", page.read_text()):
        if "://" in target:
            continue
        assert (page.parent / target).exists(), f"{page.name} links to {target}, which does not exist"


def test_mermaid_blocks_are_closed_and_typed() -> None:
    """Each ```mermaid block starts with a diagram type GitHub renders."""
    kinds = ("graph", "flowchart", "sequenceDiagram", "stateDiagram-v2")
    blocks = re.findall(r"```mermaid\n(.*?)```", (DOCS / "architecture.md").read_text(), re.S)
    assert len(blocks) >= 6
    for block in blocks:
        assert block.split(None, 1)[0] in kinds, block[:60]
