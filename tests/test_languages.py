"""Language names in goals: ISO 639-1's names and the common aliases, and no everyday word taken for one."""

from __future__ import annotations

import pytest

from executors.gpu import espeak
from spinbot.errors import PermanentError
from spinbot.languages import display_name, named_language, names, without_trailing_language


@pytest.mark.parametrize(("text", "code"), [
    ("read it in Yoruba", "yo"), ("in the Swahili language, please", "sw"), ("in modern greek", "el"),
    ("in Greek", "el"), ("in Farsi", "fa"), ("in Mandarin", "zh"), ("in Cantonese", "yue"), ("in Klingon", "tlh"),
    ("make it in Spanish; Castilian", "es"),
])  # fmt: skip
def test_a_language_asked_for_by_name(text: str, code: str) -> None:
    assert named_language(text) is not None and named_language(text)[0] == code  # type: ignore[index]


@pytest.mark.parametrize("text", [
    "in a male voice", "in Paris", "in time for dinner", "in spring", "in Georgia", "in school", "in 20 seconds",
    "in the style of a newsreader", "in English-style spelling",
])  # fmt: skip
def test_everyday_words_after_in_are_no_language(text: str) -> None:
    assert named_language(text) is None


def test_the_names_cover_iso_639_1() -> None:
    assert len(set(names().values())) >= 184 and names()["english"] == "en"


def test_a_final_language_is_not_words_to_speak() -> None:
    assert without_trailing_language("good morning in German.") == "good morning"
    assert without_trailing_language("I speak in German every day") == "I speak in German every day"
    assert without_trailing_language("in German") == "in German"  # nothing left to speak: leave it


def test_espeak_names_the_language_it_has_no_voice_for() -> None:
    with pytest.raises(PermanentError, match=r"eSpeak NG has no voice for Yoruba") as e:
        espeak.synthesize("E kaaaro", voice="yo+f2", wpm=160, pitch=50)
    assert e.value.hint and "SPINBOT_TTS_URL" in e.value.hint
    assert display_name("yo") == "Yoruba" and display_name("tlh") == "Klingon" and display_name("xx") == "xx"
