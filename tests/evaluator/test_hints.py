"""Findings' hints are read by people (the plan card, `spinbot evaluate`): words, not raw schemas or "a image"."""

from __future__ import annotations

from evaluator import evaluate
from evaluator.core import allowed_text
from spinbot.capabilities import committed_manifest


def hints(graph: dict) -> dict[str, str]:
    return {f.code: f.hint for f in evaluate(graph, committed_manifest()).findings}


def test_a_bad_param_says_what_is_allowed_in_words() -> None:
    found = hints({"schema": "langgraph.v1", "workflowId": "w", "nodes": [
        {"id": "v", "service": "tts.synthesize", "plane": "gpu", "params": {"text": "hi", "voice": "robot"}}]})
    assert found["invalid_param"] == "voice must be one of female, male (default female)"
    found = hints({"schema": "langgraph.v1", "workflowId": "w", "nodes": [
        {"id": "v", "service": "tts.synthesize", "plane": "gpu", "params": {"text": "hi", "speed": 9000}}]})
    assert found["invalid_param"] == "speed must be a whole number from 80 to 450 (default 160)"
    assert "{" not in found["invalid_param"]


def test_allowed_text_reads_every_kind_of_param() -> None:
    assert allowed_text("prompt", {"type": "string", "maxLength": 4000}) == (
        "prompt must be text of at most 4000 characters")
    assert allowed_text("seconds", {"type": "number", "minimum": 0}) == "seconds must be a number of at least 0"
    assert allowed_text("title", {"anyOf": [{"type": "string", "maxLength": 300}, {"type": "null"}]}) == (
        "title must be text of at most 300 characters")
    assert allowed_text("x", {}) == "x must match the service's params schema"


def test_a_wrong_wire_names_the_kind_with_its_article() -> None:
    found = hints({"schema": "langgraph.v1", "workflowId": "w", "nodes": [
        {"id": "say", "service": "tts.synthesize", "plane": "gpu", "params": {"text": "hi"}},
        {"id": "talk", "service": "video.animate_portrait", "plane": "gpu",
         "params": {"image": {"$node": "say", "output": "audio"}, "audio": {"$node": "say", "output": "audio"}}}]})
    assert found["type_mismatch"].startswith("use an image output"), found
    assert " a image" not in " ".join(found.values())
