"""Golden planning cases: goal + manifest + recorded Ollama replies -> expected plan, through the real client.

Each file in tests/golden/cases/ is one case. The fake Ollama replays `replies` over HTTP, so
langchain-ollama's real ChatOllama runs; the expectations are services, edges, key params, how many
LLM calls were made and how each attempt ended.

Reply entries: a JSON plan object (sent as the message content), {"$raw": text} (sent verbatim),
{"$status": 500, "$error": msg} (an Ollama error), {"$delay_s": s, "content": plan} (a slow answer).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from evaluator import find_urls
from planner import PlanRequest, plan
from planner.pipelines import build_graph
from spinbot.settings import Settings
from tests.evaluator.catalog import catalog_manifest
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


def request_of(case: dict[str, Any]) -> PlanRequest:
    previous = case.get("previous_graph")
    if "previous_pipeline" in case:
        p = case["previous_pipeline"]
        previous = build_graph(p["name"], p["params"], goal=p.get("goal", "")).to_json()
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
    )


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
async def test_golden(path: Path, fake_ollama: FakeOllama, tmp_path: Path) -> None:
    case = load(path)
    fake_ollama.replies.extend(as_reply(r) for r in case.get("replies", []))
    manifest = catalog_manifest(unavailable=tuple(case.get("unavailable", ())))
    events: list[dict[str, Any]] = []

    async def on_event(event: dict[str, Any]) -> None:
        events.append(event)

    result = await plan(settings_of(case, fake_ollama, tmp_path), request_of(case), manifest, on_event)
    expect = case["expect"]

    assert len(fake_ollama.chat_requests) == expect["llm_calls"], result.attempts
    assert result.kind == expect["kind"]
    assert events and events[-1]["stage"] == "done"
    if expect["kind"] == "reply":
        assert result.graph is None and result.reply
        for text in expect.get("reply_contains", []):
            assert text in result.reply
        return

    assert result.approved, result.message
    assert result.fallback == expect.get("fallback", False)
    assert result.graph is not None and result.verdict is not None and result.verdict.ok
    graph = result.graph
    if "services" in expect:
        assert [n.service for n in graph.nodes] == expect["services"]
    if "edges" in expect:
        assert sorted([e.source, e.target] for e in graph.edges) == sorted(expect["edges"])
    for key, value in expect.get("params", {}).items():
        node, _, param = key.partition(".")
        assert graph.node(node).params.get(param) == value, (key, graph.node(node).params)
    if "outcomes" in expect:
        assert [a.get("outcome") for a in result.attempts] == expect["outcomes"]
    for i, codes in enumerate(expect.get("finding_codes", [])):
        found = {f["code"] for f in result.attempts[i].get("findings", []) if f["severity"] == "error"}
        assert set(codes) <= found, (i, found)
    if "pipeline" in expect:
        assert graph.metadata.get("pipeline") == expect["pipeline"]
    if "message_contains" in expect:
        assert expect["message_contains"] in result.message

    # Always: what the planner sent, and what it hands on.
    meta = graph.metadata["planner"]
    assert meta["llm_calls"] == sum(1 for a in result.attempts if a["stage"] != "fallback")
    assert meta["prompt_version"] == "plan.v1" and meta["fallback"] == result.fallback
    available = sorted(s.id for s in manifest.available())
    for req in fake_ollama.chat_requests:
        assert req.format["properties"]["steps"]["items"]["properties"]["service"]["enum"] == available
        assert req.format["properties"]["steps"]["maxItems"] <= 12
        assert req.options["temperature"] == 0 and req.options["num_predict"] <= 2048
    assert all(not find_urls(n.params) for n in graph.nodes)
    assert {n.service for n in graph.nodes} <= set(available)
    stages = [e["stage"] for e in events]
    assert ("fallback" in stages) == result.fallback
    if expect.get("user_prompt_contains"):
        assert expect["user_prompt_contains"] in fake_ollama.chat_requests[0].messages[-1]["content"]


def test_there_are_enough_cases() -> None:
    kinds = [load(p).get("covers", "") for p in CASES]
    assert len(CASES) >= 15
    for needed in ("invalid_json", "unknown_service", "cycle", "wrong_params", "repair", "fallback",
                   "reply_only", "prompt_injection", "follow_up"):  # fmt: skip
        assert any(needed in k for k in kinds), needed
