"""Issue 20, item 3, on the kinds of request the public bench's dev split got wrong: what no service can do is
declined by name (or left out by name beside what can be done), and what can be done still plans. Each kind is
tried with several phrasings written here, none of them a bench request."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from planner import PlanRequest, plan
from planner.intent import read_rules
from spinbot.graph import Attachment
from spinbot.languages import mentioned_languages
from spinbot.settings import Settings
from tests.evaluator.declared import declared_manifest

CLIP = Attachment(id="clip", kind="video", key="u/clip.mp4", name="clip.mp4")
TAKE = Attachment(id="take", kind="audio", key="u/take.wav", name="take.wav")
PHOTO = Attachment(id="photo", kind="image", key="u/photo.jpg", name="photo.jpg")
NOTES = Attachment(id="notes", kind="text", key="u/notes.txt", name="notes.txt")
SCAN = Attachment(id="scan.jpg", kind="image", key="u/scan.jpg", name="scan.jpg")
PHOTO2 = Attachment(id="photo2", kind="image", key="u/photo2.jpg", name="photo2.jpg")
CLIP2 = Attachment(id="clip2", kind="video", key="u/clip2.mp4", name="clip2.mp4")


async def planned(goal: str, attachments: list[Attachment] = ()) -> Any:  # type: ignore[assignment]
    settings = Settings(ollama_url="http://127.0.0.1:9", data_dir=Path("/tmp/spinbot-test-declines"))
    return await plan(settings, PlanRequest(goal=goal, attachments=list(attachments)), declared_manifest())


def declined(goal: str, attachments: list[Attachment] = ()) -> list[str]:  # type: ignore[assignment]
    """The operations a reply declines; fails when the goal was planned."""
    read = read_rules(goal, list(attachments))
    assert read.kind == "reply" and read.deliverables == [], read
    return read.unoffered


# ---- a new video with a voice-over and no one on screen: its pictures would be scenes -------------------------


@pytest.mark.parametrize("goal", [
    "turn my story into a short video with a voice-over: 'Long ago a fox lived by the river.'",
    "I need a narrated video about the water cycle",
    "make a clip with voiceover explaining our new app",
    "produce a narrated clip: 'Welcome to the lake house'",
])  # fmt: skip
def test_a_new_video_with_a_voice_over_and_nobody_on_screen_is_text_to_video(goal: str) -> None:
    assert any("text-to-video" in op for op in declined(goal)), goal


@pytest.mark.parametrize(("goal", "attachments", "deliverables"), [
    ("add a voice-over to this clip: 'Welcome to the tour'", [CLIP], ["voiceover"]),
    ("a talking-head video with a voice-over about volcanoes", [], ["talking_video"]),
    ("a video of a presenter narrating the history of tea", [], ["talking_video"]),
    ("make a video about volcanoes", [], ["talking_video"]),
    ("Generate a voice-over for my product video: 'Meet the new X1'", [], ["speech"]),  # the voice-over is asked
])  # fmt: skip
def test_a_voice_over_on_a_given_video_or_by_a_presenter_still_plans(
        goal: str, attachments: list[Attachment], deliverables: list[str]) -> None:
    read = read_rules(goal, attachments)
    assert read.kind == "plan" and deliverables[0] in read.deliverables, read


def test_a_voice_over_on_my_video_with_none_attached_asks_for_the_video() -> None:
    read = read_rules("put a voice-over on my video: 'Hello and welcome'", [])
    assert read.kind == "reply" and read.problem and "attach" in read.problem and not read.unoffered, read


# ---- the words given, wanted in another language: a translation is the words ---------------------------------


@pytest.mark.parametrize(("goal", "attachments"), [
    ("here is my German speech: 'Guten Morgen, liebe Freunde' - read it aloud as an English voice-over", []),
    ("I have a French paragraph, 'Le ciel est bleu aujourd'hui', and need it spoken in English", []),
    ("read '早上好' aloud in English", []),
    ("my Italian notes are attached; record them as Spanish audio", [NOTES]),
])  # fmt: skip
def test_given_words_wanted_in_another_language_are_declined_as_translation(
        goal: str, attachments: list[Attachment]) -> None:
    assert "translate" in declined(goal, attachments)


@pytest.mark.parametrize(("goal", "say", "language"), [
    ("say 'hola amigos' in Spanish", "hola amigos", "es"),
    ("read '早上好' aloud", "早上好", "zh"),
    ("read '東京タワー' aloud in Japanese", "東京タワー", "ja"),
    ("read '東京' aloud in Japanese", "東京", "ja"),  # Han characters alone may be Japanese words
])  # fmt: skip
def test_words_in_the_language_asked_are_spoken(goal: str, say: str, language: str) -> None:
    read = read_rules(goal, [])
    assert (read.kind, read.say, read.language) == ("plan", say, language), read


def test_mentioned_languages_are_words_not_letters_inside_words() -> None:
    assert mentioned_languages("a Spanish article as an English script, in English") == ["es", "en"]
    assert mentioned_languages("the italics of a swedish poster") == ["sv"]
    assert mentioned_languages("a lovely ewe in Laos") == []  # Ewe and Lao are other words too


# ---- a quoted link is where something is, not words to speak --------------------------------------------------


@pytest.mark.parametrize("goal", [
    "download the voice-over from 'https://example.com/vo.wav' and put it on this video",
    "read aloud the article at \"https://news.example.org/today\"",
    "make speech from the story at 'http://example.com/story.txt'",
])  # fmt: skip
async def test_a_quoted_link_is_never_spoken(goal: str) -> None:
    result = await planned(goal, [CLIP] if "video" in goal else [])
    spoken = [n.params.get("text") for n in (result.graph.nodes if result.graph else [])
              if n.service == "tts.synthesize"]
    assert not any("://" in str(t) for t in spoken), spoken
    assert result.graph is None, result.message


# ---- what the words would be made by: a rewrite, so the words given are not what is spoken ---------------------


@pytest.mark.parametrize("goal", [
    "simplify it and then read it aloud: 'Photosynthesis converts photonic energy into chemical potential.'",
    "make a unique version of this and turn it into audio: 'Our shop opens at nine.'",
    "I want the text to be simplified, then spoken: 'The committee deliberated extensively.'",
])  # fmt: skip
def test_words_to_be_rewritten_first_are_not_spoken_as_given(goal: str) -> None:
    assert any("rewrite" in op for op in declined(goal))


# ---- operations no service offers, in other people's words ----------------------------------------------------


@pytest.mark.parametrize(("goal", "attachments", "operation"), [
    ("Generate the text of this recording", [TAKE], "transcribe"),
    ("what are the words of this interview?", [TAKE], "transcribe"),
    ("tell me what is said in the audio", [TAKE], "transcribe"),
    ("please enhance the audio quality of my recording", [TAKE], "noise reduction"),
    ("improve the sound of this recording", [TAKE], "noise reduction"),
    ("this old photo should be colorized", [PHOTO], "colourise"),
    ("caption this photo for me", [PHOTO], "describe an image"),
    ("the picture contains printed text; please extract it", [PHOTO], "describe an image"),
    ("pull the text out of this image", [PHOTO], "describe an image"),
    ("the image scan.jpg contains some printed text that I need extracted", [SCAN], "describe an image"),
    ("please describe this recording", [TAKE], "describe a recording"),
    ("I need a text description of the audio", [TAKE], "describe a recording"),
    ("search for similar pictures online", [], "search the web"),
    ("brainstorm some topics for my podcast", [], "brainstorming"),
    ("give me ideas for a birthday speech", [], "brainstorming"),
    ("mix the two recordings into one track", [TAKE], "audio editing"),
    ("combine these audio files into one", [TAKE], "audio editing"),
    ("draw the waveform of this recording", [TAKE], "waveform"),
    ("make a spectrogram image from the audio", [TAKE], "waveform"),
    ("make the sound of this picture", [PHOTO], "sound from a picture"),
    ("generate audio from the image", [PHOTO], "sound from a picture"),
])  # fmt: skip
def test_operations_no_service_offers_are_named(goal: str, attachments: list[Attachment], operation: str) -> None:
    ops = " ".join(declined(goal, attachments))
    assert operation in ops, ops


@pytest.mark.parametrize(("goal", "deliverables"), [
    ("create a colorized picture of a parrot", ["image"]),
    ("draw a poster with the text 'Grand Opening'", ["image"]),
    ("make an image of a picture frame with the text 'Home' and read it aloud", ["image", "speech"]),
])  # fmt: skip
def test_words_near_those_operations_still_plan(goal: str, deliverables: list[str]) -> None:
    read = read_rules(goal, [])
    assert read.kind == "plan" and read.deliverables == deliverables and not read.unoffered, read


# ---- a voice sample named as "the voice of this audio" ---------------------------------------------------------


@pytest.mark.parametrize("goal", [
    "Speak using the voice of this recording. The text is \"good evening\".",
    "say 'see you soon' with the voice from the attached sample",
    "read 'welcome home' in the voice of this clip",
])  # fmt: skip
def test_the_voice_of_this_audio_is_a_voice_sample_whose_words_are_needed(goal: str) -> None:
    read = read_rules(goal, [TAKE])
    assert read.kind == "reply" and read.problem and "exact words" in read.problem, read


def test_the_voice_of_this_audio_with_its_words_clones_it() -> None:
    read = read_rules("say 'see you soon' in the voice of this recording; the recording says \"hello there\"", [TAKE])
    assert (read.kind, read.say, read.voice_sample, read.voice_words) == ("plan", "see you soon", "take",
                                                                           "hello there")


# ---- replies name what was asked ------------------------------------------------------------------------------


async def test_a_reply_to_bad_input_names_the_operations_left_out_too() -> None:
    result = await planned("join these two recordings and transcribe them", [TAKE])
    assert result.graph is None
    assert "transcribe" in result.reply and "attach" in result.reply, result.reply


async def test_a_question_without_a_model_says_it_is_not_answered() -> None:
    for goal in ("When was the Eiffel Tower built?", "what is the capital of Peru?"):
        result = await planned(goal)
        assert result.kind == "reply" and "not a question I can answer" in result.reply, result.reply
        assert "read text aloud" in result.reply


async def test_subtitles_without_words_say_they_are_not_transcribed() -> None:
    result = await planned("add subtitles to this clip", [CLIP])
    assert result.graph is None and "cannot transcribe" in result.reply, result.reply


# ---- pictures made into a video: a slideshow when there are several ------------------------------------------


@pytest.mark.parametrize("goal", [
    "make a video from these two photos with my voice-over",
    "create a smooth video using both pictures, synchronised with the recording",
    "I want a video combining these images, set to this audio",
])  # fmt: skip
def test_a_video_of_several_pictures_is_declined_as_a_slideshow(goal: str) -> None:
    assert any("slideshow" in op for op in declined(goal, [PHOTO, PHOTO2, TAKE]))


# ---- partly possible: what the attachments make together, beside what no service does -------------------------


@pytest.mark.parametrize("goal", [
    "my clip is shaky and I have a narration track: stabilise the clip, then sync the narration with it",
    "stabilize the video, then synchronise the recording with it, then extract the audio again",
    "remove the camera shake and sync them",
])  # fmt: skip
async def test_what_the_attachments_make_together_is_planned_beside_what_is_left_out(goal: str) -> None:
    read = read_rules(goal, [CLIP, TAKE])
    assert read.kind == "plan" and read.deliverables == ["voiceover"] and read.unoffered, read
    result = await planned(goal, [CLIP, TAKE])
    compose = [n.params for n in result.graph.nodes if n.service == "video.compose"] if result.graph else []
    assert compose == [{"clips": [{"$attachment": "clip"}], "audio": {"$attachment": "take"}}], result.message
    assert "Left out: stabilise" in result.message


@pytest.mark.parametrize("goal", [
    "stabilise the video and transcribe the recording",
    "I have a video and a recording: stabilize the first, denoise the second",
])  # fmt: skip
def test_attachments_each_given_an_operation_nobody_offers_make_nothing(goal: str) -> None:
    assert declined(goal, [CLIP, TAKE])


# ---- clips and a recording: the recording is the joined video's sound, each clip joined once --------------------


@pytest.mark.parametrize(("goal", "attachments", "clips"), [
    ("put them together", [CLIP, TAKE], [["clip"]]),
    ("combine the clip with the recording", [CLIP, TAKE], [["clip"]]),
    ("join these clips and use the recording as the soundtrack", [CLIP, CLIP2, TAKE], [["clip", "clip2"], []]),
])  # fmt: skip
async def test_a_recording_given_with_clips_is_their_sound(
        goal: str, attachments: list[Attachment], clips: list[list[str]]) -> None:
    result = await planned(goal, attachments)
    assert result.graph is not None, result.message
    composed = [n.params for n in result.graph.nodes if n.service == "video.compose"]
    assert [[c["$attachment"] for c in p["clips"] if "$attachment" in c] for p in composed] == clips
    assert composed[-1]["audio"] == {"$attachment": "take"}
