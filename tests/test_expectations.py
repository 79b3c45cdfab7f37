"""The request's expectations (from the planner's intent) and how checked results compare with them."""

from __future__ import annotations

from typing import Any

from planner.builder import build
from planner.intent import Intent
from spinbot.expectations import compare, expectations, from_intent, image_kind, misses
from tests.evaluator.declared import declared_manifest


def check(name: str, value: Any, ok: bool | None = None, unit: str = "", detail: str = "") -> dict[str, Any]:
    return {"name": name, "value": value, "unit": unit, "ok": ok, "detail": detail}


def talking_head(video_s: float, *, text: Any = "Here is a short introduction to solar panels.",
                 expect: dict[str, Any] | None = None, pitch: int = 219, script_words: int | None = None,
                 ) -> dict[str, Any]:
    """A completed talking-head job's graph as the executors leave it (outputs with their checks)."""
    nodes: list[dict[str, Any]] = [
        {"id": "voice", "name": "Speak the text", "service": "tts.synthesize", "status": "completed",
         "params": {"text": text, "voice": "female"},
         "output": {"audio": {"key": "j/voice/speech.wav", "contentType": "audio/wav"},
                    "checks": [check("duration_s", video_s, unit="s"), check("pitch_hz", pitch, unit="Hz"),
                               check("words", "aligned", True)]}},
        {"id": "talk", "name": "Animate the portrait", "service": "video.animate_portrait", "status": "completed",
         "params": {"audio": {"$node": "voice", "output": "audio"}},
         "output": {"video": {"key": "j/talk/talking.mp4", "contentType": "video/mp4"},
                    "checks": [check("duration_s", video_s, unit="s"), check("audio_stream", True, True),
                               check("still_s", 0.4, True, "s"), check("mouth_sync", 0.9, True)]}},
    ]
    if script_words is not None:
        nodes.insert(0, {"id": "script", "name": "Write the script", "service": "llm.generate_script",
                         "status": "completed", "params": {"topic": "solar panels", "duration_s": 20},
                         "output": {"narration": "...", "script": {},
                                    "checks": [check("word_count", script_words, True, "words")]}})
    return {"schema": "langgraph.v1", "workflowId": "w", "context": {"goal": "a 20-second talking head"},
            "metadata": {"intent": {"kind": "plan", "deliverables": ["talking_video"], "duration_s": 20},
                         "expect": expect if expect is not None else
                         {"deliverables": ["talking_video"], "duration_s": 20, "voice": "female"}},
            "nodes": nodes}


def messages(graph: dict[str, Any]) -> list[str]:
    return [f.message for f in misses(compare(graph))]


def test_expectations_come_from_the_intent() -> None:
    talk = Intent(kind="plan", deliverables=["talking_video"], topic="solar panels", duration_s=20, voice="female")
    assert from_intent(talk.model_dump(mode="json")) == {"deliverables": ["talking_video"], "duration_s": 20.0,
                                                         "voice": "female"}
    # the words to speak decide the length; a profile speaks in its own voice
    read = Intent(kind="plan", deliverables=["speech"], say="The man spoke for 30 seconds.", duration_s=30,
                  voice="male", profile="me")
    assert from_intent(read.model_dump(mode="json")) == {"deliverables": ["speech"],
                                                         "say": "The man spoke for 30 seconds."}
    assert from_intent({"kind": "reply"}) == {} and from_intent(None) == {}
    card = from_intent({"kind": "plan", "deliverables": ["image"], "say": "Welcome"}, "a title card that says")
    assert "say" not in card and card["image"] == "title_card"  # an image's words are its title, not speech
    assert from_intent({"kind": "plan", "deliverables": ["image"], "future_field": 1},
                       "draw a red fox in a snowy forest")["image"] == "scene"
    assert image_kind("a title card saying Welcome") == "title_card"
    assert image_kind("a portrait of a smiling woman") == "portrait"


def test_a_plan_carries_its_expectations_and_old_plans_get_them_from_their_intent() -> None:
    manifest = declared_manifest()
    intent = Intent(kind="plan", deliverables=["talking_video"], topic="solar panels", duration_s=20, voice="female")
    graph, _ = build(intent, manifest, goal="a 20-second talking-head video about solar panels, female voice",
                     attachments=[], constraints={}, llm=False)
    doc = graph.to_json()
    assert doc["metadata"]["expect"] == {"deliverables": ["talking_video"], "duration_s": 20.0, "voice": "female"}
    del doc["metadata"]["expect"]
    assert expectations(doc)["duration_s"] == 20.0


def test_a_short_video_names_the_lengths_and_the_cause() -> None:
    assert messages(talking_head(2.7)) == [
        "the video is 2.7 s, not 20 s: without an LLM the narration is one template sentence (8 words); "
        "start Ollama for a written script"]
    scripted = talking_head(5.1, text={"$node": "script", "output": "narration"}, script_words=12)
    assert messages(scripted) == ["the video is 5.1 s, not 20 s: the script has 12 words, about 5 s at 150 words "
                                  "a minute"]


def test_results_that_match_raise_no_alarm() -> None:
    for seconds in (16.0, 20.0, 24.5):  # within a quarter of the length asked
        assert compare(talking_head(seconds, text={"$node": "script", "output": "narration"}, script_words=50)) == []
    assert compare(talking_head(3.0, expect={"deliverables": ["talking_video"]})) == []  # no length asked


def test_a_voice_that_measures_in_the_other_range_is_named() -> None:
    assert messages(talking_head(20, pitch=95)) == [
        "the voice's median pitch is 95 Hz, in the male range, not the female voice asked for (female from 160 Hz)"]


def test_an_image_drawn_as_a_title_card_for_a_scene_is_named() -> None:
    def image(expect: dict[str, Any]) -> dict[str, Any]:
        made = "a title card: the prompt's words over a gradient"
        return {"metadata": {"expect": expect}, "nodes": [
            {"id": "image", "name": "Draw the image", "service": "image.render", "status": "completed",
             "output": {"image": {"key": "k", "contentType": "image/png"}, "made": made,
                        "checks": [check("size", "512x512", True, "px"), check("blank", False, True),
                                   check("content", "title_card", None, detail=made)]}}]}

    scene = {"deliverables": ["image"], "image": "scene", "image_prompt": "a red fox in a snowy forest"}
    assert messages(image(scene)) == [
        "the built-in renderer drew a title card, not 'a red fox in a snowy forest' (a title card: the prompt's "
        "words over a gradient)"]
    assert compare(image({"deliverables": ["image"], "image": "title_card"})) == []


def test_deliverables_and_words_nothing_made_are_named() -> None:
    only_image = {"metadata": {"expect": {"deliverables": ["speech"], "say": "The man spoke for 30 seconds."}},
                  "nodes": [{"id": "image", "service": "image.render", "status": "completed",
                             "output": {"image": {"key": "k", "contentType": "image/png"}}}]}
    assert messages(only_image) == ["you asked for speech; the job made no audio (it made: image/png)",
                                    "the words you gave were not spoken: no step spoke them"]


def test_checks_not_made_and_reruns_are_said_and_only_selects_one_node() -> None:
    g = talking_head(20)
    g["nodes"][0]["output"]["checks"][2] = {"name": "words", "value": None, "ok": None,
                                            "not_checked": "no recogniser for German"}
    g["nodes"][0]["output"]["refined"] = {"why": "the recogniser did not hear the text; speaking it again slower"}
    g["nodes"][1]["output"]["checks"][3] = check("mouth_sync", 0.02, False,
                                                 detail="the mouth region does not move with the voice (r = 0.02)")
    found = [(f.kind, f.node, f.message) for f in compare(g)]
    assert found == [
        ("not_checked", "voice", "Speak the text: words not checked: no recogniser for German"),
        ("refined", "voice", "Speak the text ran once more: the recogniser did not hear the text; speaking it "
                             "again slower"),
        ("miss", "talk", "Animate the portrait: the mouth region does not move with the voice (r = 0.02)"),
    ]
    assert [f.node for f in compare(g, only="talk")] == ["talk"]
