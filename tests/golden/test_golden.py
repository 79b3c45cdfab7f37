"""Golden planning cases: goal + manifest + recorded Ollama replies -> expected plan, through the real client.

Each file in tests/golden/cases/ is one case. The fake Ollama replays `replies` over HTTP, so
langchain-ollama's real ChatOllama runs; the expectations are the services, edges and key params
of the graph the builder makes from the merged intent, how many LLM calls were made, and the message.

Reply entries: an intent answer (sent as the message content), {"$raw": text} (sent verbatim),
{"$status": 500, "$error": msg} (an Ollama error), {"$delay_s": s, "content": answer} (a slow answer).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from evaluator import find_urls
from planner import PlanRequest, plan, reading
from spinbot.settings import Settings
from tests.evaluator.declared import declared_manifest
from tests.fake_ollama import FakeOllama, Reply

CASES = sorted((Path(__file__).parent / "cases").glob("*.json"))


def load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


def as_reply(entry: Any) -> Reply:
    if isinstance(entry, dict) and "$raw" in entry:
        return Reply(entry["$raw"])
    if isinstance(entry, dict) and "$status" in entry:
        return Reply(status=entry["$status"], error=entry.get("$error", ""))
    if isinstance(entry, dict) and "$delay_s" in entry:
        return Reply(json.dumps(entry["content"]), delay_s=entry["$delay_s"])
    return Reply(json.dumps(entry), completion_tokens=len(json.dumps(entry)) // 4)


async def request_of(case: dict[str, Any], manifest: Any, tmp_path: Path) -> PlanRequest:
    previous = None
    if "previous_goal" in case:  # the previous turn, planned without an LLM
        earlier = await plan(Settings(ollama_url="http://127.0.0.1:9", data_dir=tmp_path),
                             PlanRequest(goal=case["previous_goal"]), manifest)
        assert earlier.graph is not None
        previous = earlier.graph.to_json()
    return PlanRequest(
        goal=case["goal"],
        conversation=case.get("conversation", []),
        attachments=case.get("attachments", []),
        previous_graph=previous,
        constraints=case.get("constraints", {}),
    )


def settings_of(case: dict[str, Any], fake: FakeOllama, tmp_path: Path) -> Settings:
    ollama = case.get("ollama", {})
    url = "http://127.0.0.1:9" if ollama.get("down") else fake.url
    return Settings(
        ollama_url=url,
        ollama_model=ollama.get("model", "qwen2.5:7b-instruct"),
        ollama_timeout_s=ollama.get("timeout_s", 10),
        data_dir=tmp_path,
        planner_trust="rules",
    )


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
async def test_golden(path: Path, fake_ollama: FakeOllama, tmp_path: Path) -> None:
    case = load(path)
    fake_ollama.replies.extend(as_reply(r) for r in case.get("replies", []))
    manifest = declared_manifest(unavailable=tuple(case.get("unavailable", ())))
    events: list[dict[str, Any]] = []

    async def on_event(event: dict[str, Any]) -> None:
        events.append(event)

    request = await request_of(case, manifest, tmp_path)
    result = await plan(settings_of(case, fake_ollama, tmp_path), request, manifest, on_event)
    expect = case["expect"]

    assert len(fake_ollama.chat_requests) == expect["llm_calls"], result.attempts
    assert result.kind == expect["kind"], result
    assert events and events[-1]["stage"] == "done"
    assert result.fallback == expect.get("fallback", False), result.attempts
    if "message_contains" in expect:
        assert expect["message_contains"] in result.message, result.message
    # What the planner sent: the intent schema, a bounded answer, a prompt that fits the context it set.
    for req in fake_ollama.chat_requests:
        assert req.format == reading.schema()
        assert req.options["temperature"] == 0 and req.options["num_predict"] <= 512
        prompt_bytes = sum(len(m["content"].encode()) for m in req.messages)
        assert prompt_bytes / 3 < 1200, "the small-model prompt stays under 1,200 tokens, whatever the goal's size"
        assert "num_ctx" in req.options and prompt_bytes / 3 + req.options["num_predict"] <= req.options["num_ctx"]
    if expect["kind"] == "reply":
        assert result.graph is None and result.reply
        for text in expect.get("reply_contains", []):
            assert text in result.reply, result.reply
        return
    if expect.get("unbuilt"):
        assert result.graph is None and not result.approved
        return

    assert result.approved, result.message
    assert result.graph is not None and result.verdict is not None and result.verdict.ok
    graph = result.graph
    if "services" in expect:
        assert [n.service for n in graph.nodes] == expect["services"]
    if "edges" in expect:
        assert sorted([e.source, e.target] for e in graph.edges) == sorted(expect["edges"])
    for key, value in expect.get("params", {}).items():
        node, _, param = key.partition(".")
        assert graph.node(node).params.get(param) == value, (key, graph.node(node).params)
    meta = graph.metadata["planner"]
    assert meta["llm_calls"] == sum(1 for a in result.attempts if a.get("outcome") == "read")
    assert meta["fallback"] == result.fallback
    assert all(not find_urls(n.params) for n in graph.nodes)
    assert {n.service for n in graph.nodes} <= {s.id for s in manifest.available()}
    assert not any("\x00" in json.dumps(n.params) or "\\ud800" in json.dumps(n.params) for n in graph.nodes)


def test_there_are_enough_cases() -> None:
    kinds = [load(p).get("covers", "") for p in CASES]
    assert len(CASES) >= 20
    for needed in ("invalid_json", "refusal", "fallback unreachable", "fallback model missing", "fallback timeout",
                   "reply_only", "prompt_injection", "follow_up", "attachment", "other language", "image only"):
        assert any(needed in k for k in kinds), needed
