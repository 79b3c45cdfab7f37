"""Issue 24, items 5 and 6: capabilities in a user's words (only what runs now), and the no-LLM mode said once
per conversation under one name, never "asking <model>" when no model can be asked."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from planner import PlanRequest, plan
from planner.models import Message
from planner.pipelines import list_pipelines
from spinbot.manifest import MergedManifest
from spinbot.settings import NO_LLM_MODE, Settings
from tests.evaluator.declared import declared_manifest

SETTINGS = Settings(ollama_url="http://127.0.0.1:9", data_dir=Path("/tmp/spinbot-test-replies"))


async def planned(goal: str, history: list[Message] = (), manifest: MergedManifest | None = None,  # type: ignore[assignment]
                  events: list[dict[str, Any]] | None = None) -> Any:
    async def on_event(e: dict[str, Any]) -> None:
        if events is not None:
            events.append(e)

    return await plan(SETTINGS, PlanRequest(goal=goal, history=list(history)), manifest or declared_manifest(),
                      on_event)


async def test_capabilities_are_said_in_a_users_words_without_service_ids_or_pipelines() -> None:
    manifest = declared_manifest()
    reply = (await planned("what can you do?", manifest=manifest)).reply
    assert "read text aloud" in reply and "upscale a video" in reply
    ids = [s for s in manifest.services if s in reply]
    assert not ids, f"internal service ids in the reply: {ids}"
    assert not [p.name for p in list_pipelines() if p.name in reply]
    assert not re.search(r"\b(gpu|control)\b|executor", reply), reply


async def test_capabilities_list_only_what_runs_now_and_say_why_the_rest_does_not() -> None:
    manifest = declared_manifest()
    script = manifest.services["llm.generate_script"].model_copy(
        update={"available": False, "unavailable_reason": "Ollama is not reachable at http://127.0.0.1:9"})
    manifest = manifest.model_copy(update={"services": {**manifest.services, "llm.generate_script": script}})
    reply = (await planned("what can you do?", manifest=manifest)).reply
    can, _, rest = reply.partition("not now:")
    assert "write a script" not in can and "write a script for a short spoken video (Ollama is not reachable" in rest


async def test_a_greeting_is_answered_as_a_greeting() -> None:
    for goal in ("hello", "Hi there!", "good morning"):
        reply = (await planned(goal)).reply
        assert reply.startswith("Hello!"), reply


async def test_no_llm_mode_is_said_once_in_a_conversation_by_its_one_name() -> None:
    events: list[dict[str, Any]] = []
    first = await planned("read this aloud: the train leaves at nine", events=events)
    assert first.approved and first.fallback
    assert first.message.count("No-LLM mode") == 1 and "rules" in first.message
    assert not [e for e in events if "asking" in str(e.get("message", ""))], events  # no model was asked
    assert any(NO_LLM_MODE in str(e.get("message", "")) for e in events)
    history = [Message(role="user", content="read this aloud: the train leaves at nine"),
               Message(role="assistant", content=first.message)]
    second = await planned("read this aloud: the bus leaves at ten", history)
    assert second.approved and second.fallback
    assert "LLM" not in second.message and "Ollama" not in second.message, second.message
    reply = await planned("book me a flight", history)
    assert "LLM" not in (reply.reply or reply.message) and "Ollama" not in (reply.reply or reply.message)
