"""The planner's pieces: the merge of a model's reading, the builder, events and metrics, `spinbot plan`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import REGISTRY

from evaluator import evaluate
from planner import PlanRequest, plan, reading
from planner.builder import Unbuildable, build
from planner.intent import read_rules
from shell.plan import plan_command
from spinbot.graph import Attachment
from spinbot.manifest import MergedManifest
from spinbot.settings import Settings as SpinbotSettings
from tests.evaluator.declared import declared_manifest
from tests.fake_ollama import FakeOllama

MANIFEST = declared_manifest()
FACE = Attachment(id="face", kind="image", key="uploads/u/a1/face.png")


def _value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_request_accepts_the_web_history_shape() -> None:
    req = PlanRequest(goal="and now?", history=[{"role": "assistant", "content": "ok", "job_id": "j1", "extra": 1}])
    assert req.conversation[0].job_id == "j1"


def test_without_an_llm_no_llm_service_is_planned() -> None:
    talking = read_rules("a 20-second video about otters", [])
    doc, notes = build(talking, MANIFEST, goal="a 20-second video about otters", attachments=[], constraints={},
                       llm=False)
    assert "llm.generate_script" not in {n.service for n in doc.nodes}
    assert doc.nodes[0].params["text"] == "Here is a short introduction to otters."
    assert notes and "template" in notes[0]
    assert evaluate(doc, MANIFEST).ok
    with_llm, _ = build(talking, MANIFEST, goal="g", attachments=[], constraints={}, llm=True)
    assert with_llm.nodes[0].service == "llm.generate_script"
    with pytest.raises(Unbuildable, match="needs the LLM"):
        build(read_rules("write a script about otters", []), MANIFEST, goal="g", attachments=[], constraints={},
              llm=False)


def test_the_builder_uses_only_what_is_available() -> None:
    no_render = declared_manifest(unavailable=("image.render",))
    read = read_rules("a video about bees", [])
    with pytest.raises(Unbuildable, match="no available service makes video"):
        build(read, no_render, goal="g", attachments=[], constraints={}, llm=False)
    # with a photo attached, no drawing is needed
    photo = read_rules("make this photo say 'hi'", [FACE])
    doc, _ = build(photo, no_render, goal="g", attachments=[FACE], constraints={}, llm=False)
    assert [n.service for n in doc.nodes] == ["tts.synthesize", "video.animate_portrait", "artifact.publish"]


async def test_events_and_metrics_of_a_model_reading(fake_ollama: FakeOllama, tmp_path: Path) -> None:
    fake_ollama.replies.append({"kind": "plan", "deliverables": ["speech"], "say": "good night", "topic": "",
                                "voice": "male", "duration_s": 0, "language": "en", "answer": ""})
    settings = SpinbotSettings(ollama_url=fake_ollama.url, data_dir=tmp_path, planner_trust="rules")
    reads = _value("spinbot_planner_attempts_total", outcome="read")
    events: list[dict[str, Any]] = []

    async def on_event(event: dict[str, Any]) -> None:
        events.append(event)

    result = await plan(settings, PlanRequest(goal="please say good night"), MANIFEST, on_event)
    assert result.approved and not result.fallback
    assert [e["stage"] for e in events] == ["reading", "building", "done"]
    assert _value("spinbot_planner_attempts_total", outcome="read") == reads + 1
    assert result.graph is not None
    voice = result.graph.node("speech").params
    assert voice["text"] == "good night" and voice["voice"] == "male"
    meta = result.graph.metadata["planner"]
    assert meta["llm_calls"] == 1 and meta["trace"] == {"voice": "model"}
    assert meta["prompt_tokens"] > 0 and result.graph.metadata["intent"]["say"] == "good night"


async def test_nothing_available_says_why(tmp_path: Path) -> None:
    settings = SpinbotSettings(ollama_url="http://127.0.0.1:9", data_dir=tmp_path)
    fallbacks = _value("spinbot_planner_fallbacks_total")
    result = await plan(settings, PlanRequest(goal="a video about tea"), MergedManifest())
    assert result.kind == "plan" and not result.approved and result.fallback
    assert "no available service" in result.message
    assert _value("spinbot_planner_fallbacks_total") == fallbacks + 1


async def test_plan_command_writes_the_graph(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "graph.json"
    settings = SpinbotSettings(ollama_url="http://127.0.0.1:9", data_dir=tmp_path)
    code = await plan_command(settings, "a 20 second video about otters, male voice", out)
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert "not reachable" in printed
    graph = json.loads(out.read_text())
    assert graph["metadata"]["intent"]["duration_s"] == 20
    assert graph["nodes"][0]["params"]["voice"] == "male"


async def test_plan_command_reply(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert await plan_command(SpinbotSettings(data_dir=tmp_path), "hi!", None) == 0
    assert "Spinbot" in capsys.readouterr().out


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=12)
    | st.sampled_from(["plan", "reply", "speech", "image", "talking_video", "female", "hello", "\x00", "\ud800"]),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
        st.sampled_from(["kind", "deliverables", "say", "topic", "voice", "duration_s", "language", "answer"]),
        inner, max_size=8),
    max_leaves=25,
)


@settings(max_examples=150, deadline=None)
@given(answer=_json, goal=st.sampled_from(["say hello", "a video about bees", "hmm", "draw a cat", "what?"]))
def test_any_model_answer_merges_into_a_valid_intent_never_crashes(answer: Any, goal: str) -> None:
    ruled = read_rules(goal, [FACE])
    merged, _ = reading.merge(ruled, answer, goal, [FACE])
    if merged.say is not None:
        assert reading.in_goal(merged.say, goal)  # never words the user did not write
    if ruled.kind == "plan":
        assert merged.kind == "plan" and set(ruled.deliverables) <= set(merged.deliverables)
    if merged.kind == "plan":
        try:
            doc, _ = build(merged, MANIFEST, goal=goal, attachments=[FACE], constraints={}, llm=True)
        except Unbuildable:
            return
        assert evaluate(doc, MANIFEST).ok


async def test_a_direct_plan_is_used_only_when_approved(fake_ollama: FakeOllama, tmp_path: Path) -> None:
    settings = SpinbotSettings(ollama_url=fake_ollama.url, data_dir=tmp_path, planner_trust="rules",
                               planner_direct_plans=True)
    echo = {"steps": [{"id": "say", "service": "tts.synthesize", "params": {"text": "good night"}, "inputs": {}}]}
    flood = {"steps": [{"id": f"s{i}", "service": "tts.synthesize", "params": {"text": "x"}, "inputs": {}}
                       for i in range(3000)]}
    unknown = {"steps": [{"id": "x", "service": "shell.run", "params": {"cmd": "rm -rf /"}, "inputs": {}}]}
    fake_ollama.replies += [echo, flood, unknown]
    direct = await plan(settings, PlanRequest(goal="please say good night"), MANIFEST)
    assert direct.approved and direct.graph is not None
    assert direct.graph.metadata["planner"]["trace"] == {"plan": "model"}
    assert "anyOf" in fake_ollama.chat_requests[0].format  # the intent or a per-service plan
    for _ in range(2):  # thousands of steps, a service nobody has: refused, the intent path plans instead
        result = await plan(settings, PlanRequest(goal="please say good night"), MANIFEST)
        assert result.approved and result.graph is not None
        assert [n.service for n in result.graph.nodes] == ["tts.synthesize", "artifact.publish"]
        assert result.attempts[0]["plan_refused"] is True


def test_capability_lines_are_not_cut_at_an_abbreviation() -> None:
    from planner.replies import first_sentence

    assert first_sentence("Renders an image, e.g. a portrait or a title card. More.") == (
        "Renders an image, e.g. a portrait or a title card")
    assert first_sentence("Speaks text, i.e. TTS") == "Speaks text, i.e. TTS"


@pytest.mark.parametrize("follow_up", ["Same video, but with a male voice.", "make the voice male instead"])
async def test_a_voice_change_keeps_the_drawn_presenter(tmp_path: Path, follow_up: str) -> None:
    """Only the speech (and what depends on it) changes, so the node cache can reuse the portrait (issue 15)."""
    conf = SpinbotSettings(ollama_url="http://127.0.0.1:9", data_dir=tmp_path)
    goal = 'Make a talking-head video of a presenter saying: "Tides follow the moon." Female voice.'
    first = await plan(conf, PlanRequest(goal=goal), declared_manifest())
    again = await plan(conf, PlanRequest(goal=follow_up, previous_graph=first.graph.to_json()),
                       declared_manifest())
    before = {n["service"]: n["params"] for n in first.graph.to_json()["nodes"]}
    after = {n["service"]: n["params"] for n in again.graph.to_json()["nodes"]}
    assert before["tts.synthesize"]["voice"] == "female" and after["tts.synthesize"]["voice"] == "male"
    assert after["image.render"] == before["image.render"]
    assert "woman" in before["image.render"]["prompt"]


def test_the_builder_prefers_the_cheaper_of_two_services_by_their_estimates() -> None:
    """Two services make speech from text: the one with the lower (learned) estimate is chosen (issue 15)."""
    base = declared_manifest()
    tts = base.services["tts.synthesize"]
    fast = tts.model_copy(update={"id": "tts.fast", "estimate": tts.estimate.model_copy(update={"duration_s": 0.1})})
    slow = tts.model_copy(update={"estimate": tts.estimate.model_copy(update={"duration_s": 500.0})})
    manifest = base.model_copy(update={"services": {**base.services, "tts.synthesize": slow, "tts.fast": fast}})
    doc, _ = build(read_rules("read this aloud: good morning", []), manifest, goal="read this aloud: good morning",
                   attachments=[], constraints={}, llm=False)
    assert [n.service for n in doc.nodes][0] == "tts.fast"
    cheap = manifest.model_copy(update={"services": {**manifest.services, "tts.synthesize": tts,
                                                     "tts.fast": fast.model_copy(update={"estimate": slow.estimate})}})
    doc, _ = build(read_rules("read this aloud: good morning", []), cheap, goal="read this aloud: good morning",
                   attachments=[], constraints={}, llm=False)
    assert [n.service for n in doc.nodes][0] == "tts.synthesize"
