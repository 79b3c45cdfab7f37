"""Replanning from what ran: reuse completed outputs, avoid what failed, degrade when nothing else fits."""

from __future__ import annotations

from typing import Any

from evaluator import evaluate
from planner.builder import build
from planner.intent import read_rules
from planner.replan import continuation
from spinbot.graph import Attachment
from tests.evaluator.declared import declared_manifest

MANIFEST = declared_manifest()
FACE = Attachment(id="face", kind="image", key="uploads/u/a1/face.png")
SPEECH = {"key": "jobs/j1/voice/speech.wav", "contentType": "audio/wav", "size": 10, "sha256": "ab"}
VIDEO = {"key": "jobs/j1/talk/talking.mp4", "contentType": "video/mp4", "size": 10, "sha256": "cd"}


States = dict[str, tuple[str, dict[str, Any] | None]]


def ran(goal: str, attachments: list[Attachment], states: States) -> dict[str, Any]:
    """A planned graph as the executors leave it: node id -> (status, output)."""
    graph, _ = build(read_rules(goal, attachments), MANIFEST, goal=goal, attachments=attachments, constraints={},
                     llm=False)
    doc = graph.to_json()
    for n in doc["nodes"]:
        status, output = states.get(n["id"], ("pending", None))
        n["status"], n["output"] = status, output
        if status == "failed":
            n["error"] = {"code": "permanent", "message": "OSError: cannot identify image file", "transient": False}
    return doc


def test_a_failed_animation_degrades_to_the_speech_that_ran() -> None:
    doc = ran("make this photo say 'hello'", [FACE], {
        "speech": ("completed", {"audio": SPEECH, "duration_s": 1.0}),
        "talking_video": ("failed", None)})
    cont = continuation(doc, MANIFEST, llm=False)
    assert cont.graph is not None, cont.message
    assert [n.service for n in cont.graph.nodes] == ["artifact.publish"]  # nothing re-runs
    assert cont.graph.nodes[0].params["items"] == [SPEECH]
    assert "cannot identify image file" in cont.message and "speech" in cont.message
    replan = {"version": 1, "failed": ["talking_video"], "reused": ["Read text aloud"]}
    assert cont.graph.metadata["replan"] == replan
    assert evaluate(cont.graph, MANIFEST).ok


def test_a_failed_upscale_delivers_the_video_before_it() -> None:
    doc = ran("a talking-head video about tea, upscaled 2x", [], {
        "speech": ("completed", {"audio": SPEECH}), "image": ("completed", {"image": {"key": "jobs/j1/image/i.png"}}),
        "talking_video": ("completed", {"video": VIDEO}), "upscale": ("failed", None)})
    cont = continuation(doc, MANIFEST, llm=False)
    assert cont.graph is not None, cont.message
    assert [n.service for n in cont.graph.nodes] == ["artifact.publish"]
    assert cont.graph.nodes[0].params["items"] == [VIDEO]


def test_an_alternative_chain_is_preferred_and_completed_steps_are_reused() -> None:
    # the drawn portrait failed: with a photo attached there is another way to the face
    doc = ran("a video about tea", [], {"speech": ("completed", {"audio": SPEECH}), "image": ("failed", None)})
    doc["context"]["attachments"] = [FACE.model_dump(mode="json", by_alias=True, exclude_none=True)]
    doc["metadata"]["intent"]["portrait"] = "face"
    cont = continuation(doc, MANIFEST, llm=False)
    assert cont.graph is not None, cont.message
    talk = next(n for n in cont.graph.nodes if n.service == "video.animate_portrait")
    assert talk.params == {"audio": SPEECH, "image": {"$attachment": "face"}}
    assert "tts.synthesize" not in {n.service for n in cont.graph.nodes}
    assert "replanned without image.render" in cont.message


def test_nothing_to_go_on_with_says_why() -> None:
    doc = ran("upscale the attached video", [Attachment(id="clip", kind="video", key="uploads/u/a/c.mp4")],
              {"upscale": ("failed", None)})
    cont = continuation(doc, MANIFEST, llm=False)
    assert cont.graph is None and "cannot go on" in cont.message
    hand_written = {"schema": "langgraph.v1", "workflowId": "w", "nodes": [
        {"id": "a", "service": "diag.echo", "plane": "control", "status": "failed"}]}
    assert "not made by the planner" in continuation(hand_written, MANIFEST, llm=False).message
