"""Planning against the caller's profiles, without an LLM: names, "my voice", the composer's pick, bad names."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from evaluator import evaluate
from planner import PlanRequest, plan
from planner.models import Profile
from planner.profiles import ProfileMatch, find
from spinbot.graph import Attachment
from spinbot.manifest import Estimate, MergedManifest, ServiceSpec
from spinbot.settings import Settings
from tests.evaluator.declared import declared_manifest

ANNA = Profile(id="p_anna", name="Anna", default=True, portrait="uploads/k/a1/anna.png",
               voice="jobs/j1/prepare/voice.wav", reference_text="The quick brown fox jumps over the lazy dog.")
MAX = Profile(id="p_max", name="Max Power", portrait="uploads/k/a2/max.png")


def profile_manifest() -> MergedManifest:
    """The catalog with tts.synthesize's reference voice params and voice.prepare (issue 16's interface)."""
    m = declared_manifest()
    tts = m.services["tts.synthesize"]
    props = tts.params.setdefault("properties", {})
    props.setdefault("reference_audio", {})
    props.setdefault("reference_text", {"type": "string", "maxLength": 2000})
    tts.inputs.setdefault("reference_audio", "audio")
    m.services.setdefault("voice.prepare", ServiceSpec(
        id="voice.prepare", planes=["gpu"], description="Prepare a voice sample.",
        params={"type": "object", "required": ["audio", "text"], "properties": {"audio": {}, "text": {}}},
        inputs={"audio": "audio", "text": "text"}, outputs={"voice": "audio", "features": "json"},
        estimate=Estimate(duration_s=1, memory_mb=100)))
    return m


MANIFEST = profile_manifest()


async def planned(tmp_path: Path, goal: str, profiles: list[Profile], **kw: Any) -> Any:
    settings = Settings(ollama_url="http://127.0.0.1:9", data_dir=tmp_path)
    return await plan(settings, PlanRequest(goal=goal, profiles=profiles, **kw), MANIFEST)


def nodes_of(result: Any) -> dict[str, dict[str, Any]]:
    assert result.graph is not None, result.message
    return {n["service"]: n for n in result.graph.to_json()["nodes"]}


async def test_a_named_profile_speaks_with_its_portrait_and_prepared_voice(tmp_path: Path) -> None:
    result = await planned(tmp_path, "make Anna say good morning", [ANNA, MAX])
    nodes = nodes_of(result)
    assert list(nodes) == ["tts.synthesize", "video.animate_portrait", "artifact.publish"]
    assert "voice.prepare" not in nodes  # generate from the profile: nothing is prepared again
    tts = nodes["tts.synthesize"]["params"]
    assert tts["text"] == "good morning"
    assert tts["reference_audio"] == {"$attachment": "profile-voice"}
    assert tts["reference_text"] == ANNA.reference_text
    assert nodes["video.animate_portrait"]["params"]["image"] == {"$attachment": "profile-portrait"}
    doc = result.graph.to_json()
    assert {a["id"]: a["key"] for a in doc["context"]["attachments"]} == {
        "profile-portrait": ANNA.portrait, "profile-voice": ANNA.voice}
    assert doc["metadata"]["profile"] == {"id": "p_anna", "name": "Anna"}
    assert doc["metadata"]["intent"]["profile"] == "Anna"
    assert "Planned with profile Anna: its portrait and prepared voice, nothing prepared again." in result.message
    assert "profile Anna" in result.message.split(".")[0]  # the summary names it
    assert evaluate(doc, MANIFEST).ok


async def test_my_voice_is_the_default_profile_and_speech_alone(tmp_path: Path) -> None:
    result = await planned(tmp_path, "say hello there in my voice", [MAX, ANNA])
    nodes = nodes_of(result)
    assert list(nodes) == ["tts.synthesize", "artifact.publish"]
    assert nodes["tts.synthesize"]["params"]["text"] == "hello there"
    assert nodes["tts.synthesize"]["params"]["reference_audio"] == {"$attachment": "profile-voice"}


async def test_a_profile_without_a_voice_lends_its_face_only(tmp_path: Path) -> None:
    result = await planned(tmp_path, "a video of Max Power saying 'welcome to the show'", [ANNA, MAX])
    nodes = nodes_of(result)
    assert "reference_audio" not in nodes["tts.synthesize"]["params"]
    assert nodes["video.animate_portrait"]["params"]["image"] == {"$attachment": "profile-portrait"}
    assert [a.key for a in result.graph.context.attachments] == [MAX.portrait]


async def test_a_profile_whose_voice_failed_says_a_built_in_voice_speaks(tmp_path: Path) -> None:
    eve = Profile(id="p_eve", name="Eve", status="failed", portrait="uploads/k/a3/eve.png")
    result = await planned(tmp_path, "make Eve say hello", [eve])
    nodes = nodes_of(result)
    assert "reference_audio" not in nodes["tts.synthesize"]["params"]
    assert nodes["video.animate_portrait"]["params"]["image"] == {"$attachment": "profile-portrait"}
    assert "preparing Eve's voice failed, so a built-in voice speaks" in result.message, result.message


async def test_the_profile_picked_in_the_composer_applies_when_the_goal_names_none(tmp_path: Path) -> None:
    result = await planned(tmp_path, "say 'see you tomorrow'", [ANNA, MAX], profile="p_max")
    assert nodes_of(result)["video.animate_portrait"]["params"]["image"] == {"$attachment": "profile-portrait"}
    assert result.graph.to_json()["metadata"]["profile"]["name"] == "Max Power"


@pytest.mark.parametrize("goal", ["make Bob say good morning", "read this aloud in Bob's voice: hi",
                                  "use profile Bob for a video about bees"])
async def test_a_name_that_is_no_profile_gets_the_list_and_no_plan(tmp_path: Path, goal: str) -> None:
    result = await planned(tmp_path, goal, [ANNA, MAX])
    assert result.kind == "reply" and result.graph is None
    assert result.reply == ("There is no profile named 'Bob'. Your profiles: Anna (default), Max Power. "
                            "Name one of them in the goal, e.g. \"make Anna say hello\".")


async def test_my_voice_without_profiles_says_how_to_make_one(tmp_path: Path) -> None:
    result = await planned(tmp_path, "say good night in my voice", [])
    assert result.kind == "reply" and result.graph is None
    assert "you have none" in (result.reply or "") and "POST /api/profiles" in (result.reply or "")


async def test_a_profile_still_preparing_its_voice_is_not_planned_yet(tmp_path: Path) -> None:
    preparing = Profile(id="p_z", name="Zoe", status="preparing")
    result = await planned(tmp_path, "make Zoe say hi", [preparing])
    assert result.kind == "reply" and "still being prepared" in (result.reply or "")


async def test_a_follow_up_keeps_the_profile(tmp_path: Path) -> None:
    first = await planned(tmp_path, "make Anna say good morning", [ANNA])
    again = await planned(tmp_path, "make it slower", [ANNA], previous_graph=first.graph.to_json())
    tts = nodes_of(again)["tts.synthesize"]["params"]
    assert tts["speed"] == 120 and tts["reference_audio"] == {"$attachment": "profile-voice"}


@pytest.mark.parametrize("goal", ["make her say hi", "make it say hello", "read this in a woman's voice: hi",
                                  "a video with the presenter's voice about bees"])
def test_pronouns_and_common_nouns_are_not_profile_names(goal: str) -> None:
    assert find(goal, [ANNA]).reply is None
    assert find(goal, [ANNA]).profile is None


def test_names_match_in_any_case_and_whole_words_only() -> None:
    assert find("make anna say hi", [ANNA]).profile == ANNA
    assert find("make Annabelle say hi", [ANNA]).profile is None
    assert find("make Annabelle say hi", [ANNA]).reply is not None  # a name, and not one of theirs


@pytest.mark.parametrize("name,goal", [("O'Brien", "make O’Brien say hi"),  # a phone's typographic apostrophe
                                       ("O'Brien", "say hi in O’Brien’s voice"),
                                       ("Zoë", "make Zoe\u0308 say hi"),  # decomposed (NFD), as some keyboards send it
                                       ("Zoe\u0308", "make Zoë say hi")])
def test_a_name_matches_however_its_apostrophe_or_accents_are_encoded(name: str, goal: str) -> None:
    """The goal is what a phone or keyboard sent; the name what was typed when the profile was made. They
    did not match: the plan was made without the profile, or a reply named 'Brien' as missing."""
    p = ANNA.model_copy(update={"name": name})
    assert find(goal, [p]).profile == p


@pytest.mark.parametrize("name,goal", [("Max", "read this aloud: the max speed is 30 km/h"),
                                       ("Will", "say: it will rain tomorrow"),
                                       ("A", "draw a cat")])
def test_a_common_word_in_a_goal_is_not_a_profile_of_that_name(name: str, goal: str) -> None:
    """A name is matched as written; in any case only where the goal uses it as a name ("make max say")."""
    assert find(goal, [ANNA.model_copy(update={"name": name})]).profile is None


@pytest.mark.parametrize("goal", ["make max say hi", "MAKE MAX SAY HI", "in max's voice: hi", "use profile max",
                                  "Max, say good morning"])
def test_a_name_used_as_a_name_matches_in_any_case(goal: str) -> None:
    found = find(goal, [ANNA.model_copy(update={"name": "Max"})]).profile
    assert found is not None and found.name == "Max"


# ---- train and generate: a goal that saves its attachments as a profile --------------------------

FACE = Attachment(id="face", kind="image", key="uploads/k/a3/face.png")
SAMPLE = Attachment(id="sample", kind="audio", key="uploads/k/a4/sample.wav")
SAID = "Solar panels turn sunlight into electricity."


async def test_save_as_prepares_the_sample_and_speaks_in_that_voice_at_once(tmp_path: Path) -> None:
    goal = f"Save this as Zoe: the recording says \"{SAID}\" Then make her say 'good morning'"
    result = await planned(tmp_path, goal, [ANNA], attachments=[FACE, SAMPLE])
    nodes = nodes_of(result)
    assert list(nodes) == ["voice.prepare", "tts.synthesize", "video.animate_portrait", "artifact.publish"]
    assert nodes["voice.prepare"]["params"] == {"audio": {"$attachment": "sample"}, "text": SAID}
    tts = nodes["tts.synthesize"]["params"]
    assert tts["text"] == "good morning" and tts["reference_text"] == SAID
    assert tts["reference_audio"] == {"$node": "prepare", "output": "voice"}
    assert nodes["video.animate_portrait"]["params"]["image"] == {"$attachment": "face"}
    doc = result.graph.to_json()
    assert doc["metadata"]["profile"] == {"save_as": "Zoe", "portrait": "face"}
    assert {"from": "prepare", "to": "speech", "kind": "normal"} in doc["edges"]
    assert "kept as profile Zoe" in result.message and evaluate(doc, MANIFEST).ok


async def test_saving_alone_plans_only_the_preparation(tmp_path: Path) -> None:
    result = await planned(tmp_path, f"save this as Zoe, the recording says “{SAID}”", [], attachments=[SAMPLE])
    assert list(nodes_of(result)) == ["voice.prepare"]
    assert result.message.startswith("Planned: save profile Zoe.")


@pytest.mark.parametrize(("goal", "attachments", "reply"), [
    (f"save this as Anna, the recording says \"{SAID}\"", [SAMPLE], "A profile named 'Anna' exists already"),
    ("save this as Zoe", [FACE], "To save Zoe's voice, attach a recording"),
    ("save this as Zoe and make her say hi", [FACE, SAMPLE], "To prepare Zoe's voice I need the exact words"),
])
async def test_saving_says_what_is_missing(tmp_path: Path, goal: str, attachments: list[Attachment],
                                           reply: str) -> None:
    result = await planned(tmp_path, goal, [ANNA], attachments=attachments)
    assert result.kind == "reply" and result.graph is None and (result.reply or "").startswith(reply)


async def test_in_their_voice_is_not_said_however_the_apostrophe_is_typed(tmp_path: Path) -> None:
    obrien = ANNA.model_copy(update={"name": "O'Brien"})
    result = await planned(tmp_path, "say hello there in O’Brien’s voice", [obrien])
    assert nodes_of(result)["tts.synthesize"]["params"]["text"] == "hello there"


@pytest.mark.parametrize("goal,kind", [("animate my portrait saying: welcome to the show", "image"),
                                       ("read this in my voice: hello", "audio")])
def test_my_portrait_with_one_attached_means_the_attachment(goal: str, kind: str) -> None:
    """The planning bench's goal 21: with the portrait attached, no profile is asked for (with one or none)."""
    for owned in ([], [ANNA]):
        assert find(goal, owned, attached=frozenset({kind})) == ProfileMatch()
    assert find(goal, []).reply is not None  # nothing attached and no profile: told how to make one
