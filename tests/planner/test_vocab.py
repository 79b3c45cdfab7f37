"""Issue 20: the planner's vocabulary is the services' declared offers; attachments are typed inputs; what
cannot be done is said; the words to speak are data; lengths are honest; unspaced scripts are read."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from planner import PlanRequest, plan, reading
from planner.builder import build
from planner.intent import read_rules
from planner.slots import duration_s, topic
from planner.vocab import Vocabulary, declared
from spinbot.graph import Attachment
from spinbot.manifest import Attachable, MergedManifest, Offer
from spinbot.settings import Settings
from tests.evaluator.declared import declared_manifest

CLIP = Attachment(id="clip", kind="video", key="u/clip.mp4", name="clip.mp4")
CLIP2 = Attachment(id="clip2", kind="video", key="u/clip2.mp4", name="clip2.mp4")
SONG = Attachment(id="song", kind="audio", key="u/song.mp3", name="song.mp3")
FACE = Attachment(id="face", kind="image", key="u/face.png", name="face.png")
FACE2 = Attachment(id="face2", kind="image", key="u/face2.png", name="face2.png")
NOTES = Attachment(id="notes", kind="text", key="u/notes.txt", name="notes.txt")
ARCHIVE = Attachment(id="archive", kind="json", key="u/data.json", name="data.json")


async def planned(goal: str, attachments: list[Attachment] = (), manifest: MergedManifest | None = None,  # type: ignore[assignment]
                  tmp: Path = Path("/tmp/spinbot-test-vocab")) -> Any:
    settings = Settings(ollama_url="http://127.0.0.1:9", data_dir=tmp)
    return await plan(settings, PlanRequest(goal=goal, attachments=list(attachments)), manifest or declared_manifest())


def steps(result: Any) -> dict[str, dict[str, Any]]:
    assert result.graph is not None, result.message
    return {n.service: n.params for n in result.graph.nodes}


# ---- 1. one vocabulary, from the declarations ------------------------------------------------------


def test_schema_prompt_and_rules_come_from_the_offers() -> None:
    manifest = declared_manifest()
    offers = {o.deliverable: o for s in manifest.services.values() for o in s.offers}
    assert {"speech", "image", "talking_video", "script", "upscale", "voiceover", "join", "subtitles"} <= set(offers)
    assert set(reading.schema(Vocabulary(manifest))["properties"]["deliverables"]["items"]["enum"]) == set(offers)
    prompt = reading.system_prompt(manifest)
    assert all(f"- {name}: {o.does}" in prompt for name, o in offers.items())
    assert set(declared().deliverables) == set(offers)


def sepia_manifest() -> MergedManifest:
    """The declared services plus one more that makes something new, declared like any other."""
    manifest = declared_manifest()
    upscale = manifest.services["video.upscale"]
    sepia = upscale.model_copy(update={
        "id": "video.sepia", "description": "Gives a video an old-film sepia look.",
        "offers": [Offer(deliverable="sepia", does="give a video an old-film look", output="video", base="video",
                         cues=[r"sepia|old[- ]film look"])],
        "attachable": {"video": Attachable(role="the video to age")}})
    return manifest.model_copy(update={"services": {**manifest.services, "video.sepia": sepia}})


async def test_a_service_that_makes_something_new_needs_no_planner_edit() -> None:
    manifest = sepia_manifest()
    read = read_rules("give this clip a sepia look", [CLIP], vocab=Vocabulary(manifest))
    assert read.deliverables == ["sepia"] and read.source_video == "clip"
    assert "sepia" in reading.schema(Vocabulary(manifest))["properties"]["deliverables"]["items"]["enum"]
    assert "- sepia: give a video an old-film look" in reading.system_prompt(manifest)
    result = await planned("give this clip a sepia look", [CLIP], manifest)
    assert result.approved and steps(result)["video.sepia"]["video"] == {"$attachment": "clip"}
    # the step's id and name come from the offer too: what it delivers, what it does
    assert ("sepia", "Give a video an old-film look") in [(n.id, n.name) for n in result.graph.nodes]
    assert "give a video an old-film look" in (await planned("what can you do?", [], manifest)).message


def test_two_services_offering_one_deliverable_the_cheaper_is_built() -> None:
    manifest = declared_manifest()
    compose = manifest.services["video.compose"]
    cheap = compose.model_copy(update={"id": "video.concat", "estimate": compose.estimate.model_copy(
        update={"duration_s": 1.0}), "offers": [o for o in compose.offers if o.deliverable == "join"]})
    manifest = manifest.model_copy(update={"services": {**manifest.services, "video.concat": cheap}})
    intent = read_rules("join these clips", [CLIP, CLIP2], vocab=Vocabulary(manifest))
    doc, _ = build(intent, manifest, goal="join these clips", attachments=[CLIP, CLIP2], constraints={}, llm=False)
    assert [n.service for n in doc.nodes] == ["video.concat", "artifact.publish"]


# ---- 2. attachments are typed inputs ---------------------------------------------------------------


async def test_an_attached_video_is_the_base_of_a_voice_over() -> None:
    s = steps(await planned('add a voice-over to this video saying "welcome to the lake"', [CLIP]))
    assert s["tts.synthesize"]["text"] == "welcome to the lake"
    assert s["video.compose"] == {"clips": [{"$attachment": "clip"}], "audio": {"$node": "speech", "output": "audio"}}
    assert "video.animate_portrait" not in s


@pytest.mark.parametrize("goal", ["put this song on my video", "use the attached audio as the soundtrack"])
async def test_an_attached_recording_is_the_soundtrack_and_no_speech_is_made(goal: str) -> None:
    s = steps(await planned(goal, [CLIP, SONG]))
    assert s["video.compose"]["audio"] == {"$attachment": "song"} and "tts.synthesize" not in s


async def test_clips_are_joined_in_order_and_an_upscale_takes_the_attached_video() -> None:
    assert steps(await planned("join these clips", [CLIP, CLIP2]))["video.compose"]["clips"] == [
        {"$attachment": "clip"}, {"$attachment": "clip2"}]
    s = steps(await planned("upscale this video 4x", [CLIP]))
    assert s["video.upscale"] == {"video": {"$attachment": "clip"}, "factor": 4}


async def test_a_face_and_a_recording_animate_without_speech() -> None:
    s = steps(await planned("animate this photo with the recording", [FACE, SONG]))
    assert s["video.animate_portrait"] == {"image": {"$attachment": "face"}, "audio": {"$attachment": "song"}}
    assert "tts.synthesize" not in s and "image.render" not in s


async def test_a_voice_sample_in_this_voice_is_the_reference_voice() -> None:
    s = steps(await planned("say 'good evening' in this voice, the recording says 'I am Bob'", [SONG]))
    assert s["tts.synthesize"]["reference_audio"] == {"$attachment": "song"}
    assert s["tts.synthesize"]["reference_text"] == "I am Bob" and s["tts.synthesize"]["text"] == "good evening"
    asks = await planned("say 'good evening' in this voice", [SONG])
    assert asks.kind == "reply" and "exact words" in asks.message


async def test_an_unused_attachment_is_named_with_why() -> None:
    result = await planned("draw a poster of a lighthouse", [SONG])
    assert result.approved and "'song.mp3' (audio) was not used" in result.message
    s = steps(await planned("read this aloud: good morning", [CLIP]))  # whatever the words: a voice-over
    assert s["video.compose"]["clips"] == [{"$attachment": "clip"}]


async def test_a_voice_over_without_a_video_is_speech() -> None:
    assert list(steps(await planned("a 20 s voice-over about bees"))) == ["tts.synthesize", "artifact.publish"]
    s = steps(await planned("narrate this video: the tide comes in", [CLIP]))
    assert s["tts.synthesize"]["text"] == "the tide comes in" and "video.animate_portrait" not in s


# ---- 3. what cannot be done is said, with what can ------------------------------------------------


@pytest.mark.parametrize(("goal", "attachments", "named"), [
    ("transcribe this recording", [SONG], "transcribe"),
    ("translate this into German", [], "translate"),
    ("compose a relaxing piano melody", [], "music"),
    ("sing happy birthday to my sister", [], "sing"),
    ("remove the background noise from my recording", [SONG], "noise"),
    ("stabilize this shaky footage", [CLIP], "stabilise"),
    ("turn this clip into slow motion", [CLIP], "slow motion"),
    ("extract the audio from this video", [CLIP], "extract audio"),
    ("colorize this old photo", [FACE], "colourise"),
    ("describe this image", [FACE], "describe"),
    ("give me the latest news headlines", [], "news"),
    ("book me a flight to Lisbon next Friday", [], "book"),
    # every clause asking for something unoffered is left out, a video in the last one too
    ("find me a flat, then set an alarm for 7 and install a video player", [], "errands"),
    # given words an unoffered operation works on are its input, not words to speak
    ("classify the sentiment of this sentence: 'the soup was cold'", [], "sentiment"),
    ("summarise this and read the summary aloud: 'Rivers carry water to the sea. They also carry mud.'", [],
     "summarise"),
    # nouns and phrasings of operations people ask for: a summary, a rewrite, a grammar check, a playback speed
    ("read me a short summary of this in a calm voice: 'Rivers carry water to the sea. They carry mud too.'", [],
     "summarise"),
    ("paraphrase this for me and say it: 'the meeting moved to noon'", [], "rewrite"),
    ("please proofread my paragraph: 'their going too the market'", [], "grammar"),
    ("turn 'bees make honey' into a longer, more detailed description", [], "expand"),
    ("play this clip at 2x speed", [CLIP], "speed"),
    ("search for a photo of the Eiffel Tower", [], "fetch"),
    # a video from a picture with no one speaking sets a picture in motion
    ("make a short promo video from this picture", [FACE], "image-to-video"),
    ("une vidéo de nuages sur une montagne", [], "text-to-video"),
    ("a video based on this description: 'a red kite over a field'", [], "text-to-video"),
    # a video asked for by what it shows goes with its voice-over: no speech alone is planned instead
    ("a short film that depicts a storm at sea, with a narration", [], "text-to-video"),
    ("make one video out of these two photos, song.mp3 as its soundtrack", [FACE, FACE2, SONG], "slideshow"),
    ("give me a still frame from this video", [CLIP], "still frame"),
])  # fmt: skip
async def test_an_operation_no_service_offers_gets_a_reply_that_names_it(
        goal: str, attachments: list[Attachment], named: str) -> None:
    result = await planned(goal, attachments)
    assert result.kind == "reply" and result.graph is None, result.message
    assert named in result.message and "read text aloud" in result.message  # what it can do instead


async def test_speech_asked_for_in_a_voice_is_made_beside_an_operation_left_out() -> None:
    result = await planned("look up how tides work, simplify the text and turn it into speech with a male voice")
    assert result.approved and set(steps(result)) == {"tts.synthesize", "artifact.publish"}, result.message
    assert steps(result)["tts.synthesize"]["voice"] == "male" and "Left out" in result.message


async def test_a_partly_possible_request_runs_the_possible_part_and_says_what_was_left_out() -> None:
    result = await planned("make a video about honey bees and translate it to Spanish")
    assert result.approved and "video.animate_portrait" in steps(result)
    assert "Left out: translate" in result.message
    assert steps(result)["tts.synthesize"]["text"] == "Here is a short introduction to honey bees."


@pytest.mark.parametrize("goal", [
    "is it possible to use my own cartoon character as the face?",
    "does it support Spanish speech?",
    "可以生成日语的语音吗？是否支持？",
])  # fmt: skip
async def test_a_question_whether_something_can_be_done_gets_what_can(goal: str) -> None:
    result = await planned(goal)
    assert result.kind == "reply" and result.graph is None and "read text aloud" in result.message, result.message


async def test_greetings_capability_questions_and_impossible_requests_get_different_answers() -> None:
    answers = {(await planned(goal)).message for goal in ("hello", "what can you do?", "translate this to Dutch")}
    assert len(answers) == 3


# ---- bad input: a reply, no job -------------------------------------------------------------------


@pytest.mark.parametrize(("goal", "attachments", "says"), [
    ("animate the attached photo", [], "no attached file"),
    ("read notes.txt aloud", [], "no attached file named 'notes.txt'"),
    ("read this aloud", [ARCHIVE], "no service reads data files"),
    ("upscale this audio", [SONG], "'song.mp3' is audio"),
    ("add subtitles to this video", [CLIP], "I need the words"),
])  # fmt: skip
async def test_bad_input_gets_a_reply_and_no_job(goal: str, attachments: list[Attachment], says: str) -> None:
    result = await planned(goal, attachments)
    assert result.kind == "reply" and result.graph is None and says in result.message, result.message


@pytest.mark.parametrize(("goal", "service"), [
    ("read this aloud", "tts.synthesize"),
    ("read notes.txt aloud in a male voice", "tts.synthesize"),
    ("make my portrait say what is in the file", "tts.synthesize"),
    ("add these subtitles to the video", "video.subtitle"),
])  # fmt: skip
async def test_a_text_file_is_the_words(goal: str, service: str) -> None:
    """Issue 20, item 2: an attached text file's contents are what is said, or the subtitles (read at run time)."""
    attachments = [NOTES, *([CLIP] if "video" in goal else []), *([FACE] if "portrait" in goal else [])]
    result = await planned(goal, attachments)
    assert result.approved, result.message
    assert steps(result)[service]["text"] == {"$attachment": "notes"}
    assert "was not used" not in result.message


# ---- 4. the words to speak are data ---------------------------------------------------------------


@pytest.mark.parametrize(("goal", "say"), [
    ("read aloud: this image shows a 30 second video in French of the boy", None),
    ("say 'Don't worry, it's the world's best day'", "Don't worry, it's the world's best day"),
    ("say ‘Let’s go’", "Let’s go"),
    ("make a video with the following text: 'We open at nine.'", "We open at nine."),
    ("make a talking video using the text \"Welcome, friends\"", "Welcome, friends"),
])  # fmt: skip
def test_the_words_to_speak_change_nothing_but_what_is_said(goal: str, say: str | None) -> None:
    read = read_rules(goal, [])
    if say is None:  # the words after the marker mention an image, a length, a language and a boy: all data
        assert read.deliverables == ["speech"] and read.say == "this image shows a 30 second video in French of the boy"
        assert (read.duration_s, read.language, read.voice) == (None, None, None)
    else:
        assert read.say == say


def test_a_quoted_file_name_is_not_words_to_speak() -> None:
    read = read_rules("read 'notes.txt' aloud", [NOTES])
    assert read.say is None


# ---- 5. lengths -----------------------------------------------------------------------------------


@pytest.mark.parametrize("goal", ["I am making a video about tea", "the meeting is at 10:00 AM, make a video", "as a "
                                  "friend, make a video about trust"])
def test_words_that_are_not_durations(goal: str) -> None:
    assert duration_s(goal) is None and read_rules(goal, []).duration_s is None


async def test_without_an_llm_a_requested_length_is_refused_honestly() -> None:
    result = await planned("a 20-second video of a man explaining why the sky is blue")
    assert topic("a man explaining why the sky is blue") == "why the sky is blue"
    assert steps(result)["tts.synthesize"]["text"] == "Here is a short introduction to why the sky is blue."
    assert "asked for 20 s" in result.message and "about 4 s" in result.message
    assert [f.code for f in result.verdict.findings] == ["request_length"]


# ---- 7. unspaced scripts -------------------------------------------------------------------------


@pytest.mark.parametrize(("goal", "deliverables"), [
    ("请给我做一个关于熊猫的视频", ["talking_video"]),
    ("猫についての動画を作ってください", ["talking_video"]),
    ("请帮我画一张海报", ["image"]),
    ("请朗读这句话：你好世界", ["speech"]),
])  # fmt: skip
def test_cues_inside_an_unspaced_sentence_match(goal: str, deliverables: list[str]) -> None:
    assert read_rules(goal, []).deliverables == deliverables


def test_trust_probes_are_those_the_manifest_can_hold() -> None:
    from planner import trust

    manifest = declared_manifest()
    assert trust.probes(manifest) == trust.PROBES
    services = {k: v for k, v in manifest.services.items() if k != "image.render"}
    fewer = trust.probes(manifest.model_copy(update={"services": services}))
    assert fewer and all("image" not in e.get("deliverables", []) for _, e in fewer) and len(fewer) < len(trust.PROBES)


async def test_words_a_poster_shows_are_the_posters_and_words_listed_after_and_are_spoken() -> None:
    poster = await planned('draw a poster that says "Grand Opening"')
    assert list(steps(poster)) == ["image.render", "artifact.publish"] and poster.verdict.findings == []
    assert "Grand Opening" in steps(poster)["image.render"]["prompt"]
    both = steps(await planned('make a picture of a cat and say "meow"'))
    assert both["tts.synthesize"]["text"] == "meow" and "image.render" in both


@pytest.mark.parametrize(("goal", "attachments", "deliverables"), [
    ("make the video sharper", [CLIP], ["upscale"]),
    ("lip sync this photo to this audio", [FACE, SONG], ["talking_video"]),
    ("merge the two videos into one", [CLIP, CLIP2], ["join"]),
    ("draw a poster like this photo", [FACE], ["image"]),
])  # fmt: skip
def test_a_noun_that_points_at_an_attachment_makes_nothing_new(
        goal: str, attachments: list[Attachment], deliverables: list[str]) -> None:
    assert read_rules(goal, attachments).deliverables == deliverables


@pytest.mark.parametrize(("goal", "attachments", "say", "soundtrack"), [
    ("I have a video called clip.mp4 and a narration recording song.mp3; synchronize the narration with the video",
     [CLIP, SONG], None, "song"),
    ("Here is my film clip.mp4 and a script I want read as a voice-over on it: 'Hello there, and welcome'", [CLIP],
     "Hello there, and welcome", None),
])  # fmt: skip
def test_a_plain_noun_of_an_attached_kind_names_the_attachment(
        goal: str, attachments: list[Attachment], say: str | None, soundtrack: str | None) -> None:
    # "a video", "my film": the attached one, which the voice-over goes on; "a script" given in quotes is the words
    read = read_rules(goal, attachments)
    assert (read.deliverables, read.source_video, read.say, read.soundtrack) == (["voiceover"], "clip", say, soundtrack)


def test_a_file_the_request_names_as_what_to_make_need_not_be_attached() -> None:
    read = read_rules("create an audio file called greeting.wav that says good morning everyone", [])
    assert (read.kind, read.deliverables, read.say) == ("plan", ["speech"], "good morning everyone")


@pytest.mark.parametrize("goal", ["make a gif from this video", "remove the watermark from this video",
                                  "please dub this video in French"])
def test_an_attached_video_with_an_operation_nobody_offers_is_a_reply(goal: str) -> None:
    assert read_rules(goal, [CLIP]).kind == "reply"


def test_the_speaking_services_own_cues_mark_words_too() -> None:
    read = read_rules("record an announcement: the store closes at nine", [])
    assert read.deliverables == ["speech"] and read.say == "the store closes at nine"
    # the one list of speaking cues is the service's: without its offer, "say" marks no words
    tts = declared_manifest().services["tts.synthesize"]
    mute = declared_manifest().model_copy(update={"services": declared_manifest().services | {
        "tts.synthesize": tts.model_copy(update={"offers": [o.model_copy(update={"cues": []}) for o in tts.offers]})}})
    assert read_rules("bitte vorlesen: gute Nacht", [], vocab=Vocabulary(mute)).say is None
    assert read_rules("bitte vorlesen: gute Nacht", []).say == "gute Nacht"


def test_the_verbs_the_words_follow_are_the_speaking_offers_own() -> None:
    assert read_rules("please say hello to everyone in the room", []).say == "hello to everyone in the room"
    tts = declared_manifest().services["tts.synthesize"]
    herald = declared_manifest().model_copy(update={"services": declared_manifest().services | {
        "tts.synthesize": tts.model_copy(update={"offers": [o.model_copy(update={"says": ["proclaim"]})
                                                             for o in tts.offers]})}})
    read = read_rules("please proclaim hello to everyone in the room", [], vocab=Vocabulary(herald))
    assert read.deliverables == ["speech"] and read.say == "hello to everyone in the room"
    assert read_rules("please say hello to everyone in the room", [], vocab=Vocabulary(herald)).say is None


@pytest.mark.parametrize(("goal", "unoffered"), [
    ("a video of ocean waves crashing on rocks at sunset", True),
    ("a video of my grandmother telling her favourite story", False),  # someone speaks: a talking video
])  # fmt: skip
def test_a_video_of_a_scene_is_text_to_video_which_no_service_offers(goal: str, unoffered: bool) -> None:
    read = read_rules(goal, [])
    assert (read.kind == "reply" and bool(read.unoffered)) is unoffered, read


@pytest.mark.parametrize(("goal", "attachments", "deliverables"), [
    ("I would like an audio file from the following text: 'Hi there'. Save the output as 'out.wav'.", [], ["speech"]),
    ("Turn this image into a talking image", [FACE], ["talking_video"]),
    ("add my holiday clips together into one overview", [CLIP, CLIP2], ["join"]),
    ("can the resolution of this clip be increased?", [CLIP], ["upscale"]),
    ("帮我把这段文字转成语音：你好", [], ["speech"]),
    ("Dibújame un robot leyendo el periódico", [], ["image"]),
    ("create a colorized image of a beach at sunset", [], ["image"]),
])  # fmt: skip
def test_other_peoples_phrasings_of_what_the_services_offer(
        goal: str, attachments: list[Attachment], deliverables: list[str]) -> None:
    read = read_rules(goal, attachments)
    assert read.kind == "plan" and read.deliverables == deliverables, read


async def test_a_transformer_of_this_video_with_none_attached_is_a_reply() -> None:
    result = await planned("upscale this video to 4k")
    assert result.kind == "reply" and result.graph is None and "no attached video" in result.message


def test_what_a_deliverable_is_for_is_not_one_more_deliverable() -> None:
    assert read_rules("Write a script for a 1-minute video introduction", []).deliverables == ["script"]
