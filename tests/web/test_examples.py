"""Every example goal in README.md, docs/ and the web UI completes with no LLM at all (the new user's path)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from tests.web.conftest import LiveAPI, read_sse

ROOT = Path(__file__).resolve().parents[2]
#: Where examples are written, and how each kind of place quotes a goal.
SOURCES = [
    ("README.md", r'spinbot (?:chat|plan) "([^"]+)"'),
    ("docs/*.md", r'spinbot (?:chat|plan) "([^"]+)"'),
    ("docs/*.md", r'"goal": "([^"]+)"'),
    ("docs/*.md", r'"role": "user", "content": "([^"]+)"'),
    ("web/static/js/*.js", r"For example: “([^”]+)”"),
]


def example_goals() -> list[str]:
    goals: list[str] = []
    for pattern, regex in SOURCES:
        for path in sorted(ROOT.glob(pattern)):
            goals += re.findall(regex, path.read_text())
    return sorted(set(goals))


def test_the_examples_are_found() -> None:
    goals = example_goals()
    assert len(goals) >= 4, goals
    assert "a 20-second talking-head video about solar panels, female voice" in goals  # README's first


@pytest.mark.slow
@pytest.mark.parametrize("goal", example_goals())
async def test_example_completes_without_an_llm(api: LiveAPI, executors, goal: str) -> None:
    assert "127.0.0.1:9" in api.settings.ollama_url  # nothing listens there: no LLM
    async with api.client() as c, c.stream("POST", "/api/chat", json={"message": goal}) as resp:
        assert resp.status_code == 200
        events: list[dict[str, Any]] = await read_sse(resp)
    done = events[-1]
    assert done["event"] == "done", events[-3:]
    plan = next(e["data"] for e in events if e["event"] == "plan")
    services = [n["service"] for n in plan["graph"]["nodes"]]
    assert not any(s.startswith("llm.") for s in services), services
    assert done["data"]["status"] == "completed", (goal, done, [e for e in events if e["event"] == "node"][-2:])
