"""The checks services declare, run on real outputs: speech, video, images and scripts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from conversation.answers import findings_lines
from executors.control import script
from executors.gpu import image, measure, tts, video
from executors.gpu.media import VideoWriter
from spinbot.checks import Check, find
from spinbot.errors import PermanentError
from spinbot.expectations import compare
from tests.tasks.conftest import SPEECH, Harness, make_video


def by_name(found: list[Check]) -> dict[str, Check]:
    return {c.name: c for c in found}


async def speak_and_check(h: Harness, text: str, said: str | None = None, **params: Any) -> dict[str, Check]:
    """Synthesise `said` (default: text) and check it against `text`, as the executor does."""
    p = tts.TTSParams(text=said or text, **params)
    out = await tts.synthesize.handler(h.ctx("tts"), p)
    checked = tts.TTSParams(text=text, **params)
    assert tts.synthesize.checks is not None
    return by_name(await tts.synthesize.checks(h.ctx("tts"), checked, out))


async def test_speech_is_measured_and_its_words_heard(harness: Harness) -> None:
    found = await speak_and_check(harness, SPEECH, voice="female")
    assert 4 < float(found["duration_s"].value) < 9 and found["duration_s"].unit == "s"  # type: ignore[arg-type]
    assert found["loudness_dbfs"].ok is True and -30 < float(found["loudness_dbfs"].value) < -3  # type: ignore[arg-type]
    assert found["words"].ok is True
    assert float(found["pitch_hz"].value) >= 160  # type: ignore[arg-type]
    male = await speak_and_check(harness, SPEECH, voice="male")
    assert float(male["pitch_hz"].value) < 160  # type: ignore[arg-type]


async def test_speech_of_another_text_is_caught_and_refined_once_slower(harness: Harness) -> None:
    found = await speak_and_check(harness, SPEECH, said="The cat sat on the mat by the door all morning long.")
    assert found["words"].ok is False and float(found["words"].value) < 0.55  # type: ignore[arg-type]
    assert "did not hear the text" in found["words"].detail
    fix = tts.refine_speech(tts.TTSParams(text=SPEECH, speed=160), list(found.values()))
    assert fix is not None and fix[0] == {"speed": 128}
    assert tts.refine_speech(tts.TTSParams(text=SPEECH, speed=100), list(found.values())) is None  # slow already


async def test_speech_in_a_language_the_recogniser_lacks_is_not_checked(harness: Harness) -> None:
    """German speech: its words are recorded as not checked, and the answer says so; neither a pass nor a miss
    (the English recogniser would miss German words that were spoken right)."""
    found = await speak_and_check(harness, "Die Sonne scheint heute sehr hell über dem Meer.", language="de")
    assert found["words"].ok is None and found["words"].value is None
    assert str(found["words"].not_checked).startswith("no recogniser for German")
    assert found["duration_s"].value and found["loudness_dbfs"].ok is True  # the rest is still measured
    node = {"id": "voice", "name": "Speak the text", "service": "tts.synthesize", "status": "completed",
            "output": {"audio": {"key": "k", "contentType": "audio/wav"},
                       "checks": [c.to_json() for c in found.values()]}}
    findings = compare({"metadata": {"expect": {"deliverables": ["speech"], "language": "de"}}, "nodes": [node]})
    assert [f.kind for f in findings] == ["not_checked"]
    assert findings_lines(findings) == ["- Not checked: Speak the text: words not checked: no recogniser for German "
                                        "(PocketSphinx's model here is US English)"]


async def test_a_corrupt_speech_file_raises_for_the_executor_to_record(harness: Harness, tmp_path: Path) -> None:
    bad = tmp_path / "speech.wav"
    bad.write_bytes(b"RIFF not really a wave file")
    with pytest.raises(PermanentError):
        measure.speech_checks(bad, SPEECH, "en")


async def test_the_built_in_title_card_says_it_is_one(harness: Harness) -> None:
    p = image.ImageParams(prompt="a red fox in a snowy forest", kind="title_card", width=160, height=96)
    out = await image.render.handler(harness.ctx("image"), p)
    assert "title card" in out["made"] and "draws no scenes" in out["made"]
    assert image.render.checks is not None
    found = by_name(await image.render.checks(harness.ctx("image"), p, out))
    assert found["size"].value == "160x96" and found["size"].ok is True
    assert found["blank"].ok is True
    assert found["content"].value == "title_card" and found["content"].detail == out["made"]


def test_a_blank_or_wrongly_sized_image_fails_its_checks(tmp_path: Path) -> None:
    Image.new("RGB", (64, 48), (30, 30, 30)).save(tmp_path / "blank.png")
    found = by_name(measure.image_checks(tmp_path / "blank.png", 64, 64))
    assert found["blank"].ok is False and found["size"].ok is False
    assert found["size"].detail == "64x48 pixels, not the 64x64 asked for"


async def test_a_talking_portrait_moves_its_mouth_with_the_voice(harness: Harness, media: dict[str, Path]) -> None:
    p = video.AnimateParams(image=await harness.put(media["portrait"]), audio=await harness.put(media["speech"]),
                            fps=10, size=96)
    out = await video.animate_portrait.handler(harness.ctx("talk"), p)
    assert video.animate_portrait.checks is not None
    found = by_name(await video.animate_portrait.checks(harness.ctx("talk"), p, out))
    assert found["duration_s"].value == pytest.approx(out["duration_s"], abs=0.05)
    assert found["audio_stream"].ok is True and found["still_s"].ok is True
    assert found["mouth_sync"].ok is True, found["mouth_sync"]


async def test_a_picture_with_no_face_says_so_not_that_the_mouth_is_still(harness: Harness, tmp_path: Path,
                                                                           media: dict[str, Path]) -> None:
    """A drawing the face detector does not take for a face is animated without a mouth; its check says why."""
    Image.new("RGB", (128, 128), (200, 220, 240)).save(tmp_path / "sky.png")
    p = video.AnimateParams(image=await harness.put(tmp_path / "sky.png"), audio=await harness.put(media["speech"]),
                            fps=10, size=96)
    out = await video.animate_portrait.handler(harness.ctx("talk"), p)
    assert out["mouth"] is None
    assert video.animate_portrait.checks is not None
    found = by_name(await video.animate_portrait.checks(harness.ctx("talk"), p, out))
    assert found["mouth_sync"].ok is False and "no face was found" in found["mouth_sync"].detail
    assert found["audio_stream"].ok is True


def test_a_frozen_picture_and_a_still_mouth_are_caught(tmp_path: Path, media: dict[str, Path]) -> None:
    face = np.asarray(Image.open(media["portrait"]).convert("RGB").resize((96, 96)))
    with VideoWriter(tmp_path / "still.mp4", 96, 96, 10, audio=media["speech"]) as w:
        w.write(np.repeat(face[None], 60, axis=0))
    found = by_name(measure.video_checks(tmp_path / "still.mp4", mouth=True))
    assert found["still_s"].ok is False and "frozen for" in found["still_s"].detail
    assert found["mouth_sync"].ok is False
    silent = by_name(measure.video_checks(make_video(tmp_path / "silent.mp4", 64, 64, 20, 10), mouth=True))
    assert silent["audio_stream"].ok is False and silent["still_s"].ok is True
    assert silent["mouth_sync"].not_checked == "the video has no audio to follow"


async def test_a_script_too_short_is_found_and_asked_for_longer(harness: Harness) -> None:
    p = script.ScriptParams(topic="tides", duration_s=20)  # ~50 words
    short = by_name(await script.check_script(harness.ctx("script"), p, {"narration": "Tides follow the moon."}))
    assert short["word_count"].value == 4 and short["word_count"].ok is False
    assert short["word_count"].detail == "the script has 4 words (about 2 s at 150 words a minute), not the ~50 " \
                                         "that 20 s needs"
    fix = script.refine_script(p, list(short.values()))
    assert fix is not None and fix[0] == {"duration_s": 60.0}  # at most three times as long
    fine = await script.check_script(harness.ctx("script"), p, {"narration": " ".join(["word"] * 48)})
    assert find(fine, "word_count").ok is True and script.refine_script(p, fine) is None  # type: ignore[union-attr]
