"""What a person reads for sizes, lengths, kinds of file and shortened text (spinbot.units; the web UI's
dom.js says them alike, tests/ui/test_pages.py reads them in the browser)."""

from __future__ import annotations

import pytest

from spinbot.units import MB, duration_text, estimate_text, kind_text, shorten, size_text


@pytest.mark.parametrize(("seconds", "said"), [
    (0.43, "0.4 s"), (8.24, "8.2 s"), (45.4, "45 s"), (59.7, "1 min"), (50.7, "51 s"),
    (1350.0, "22 min 30 s"), (3600, "1 h"), (3900.2, "1 h 5 min"), (float("nan"), "unknown")])
def test_durations_in_minutes_and_hours_not_thousands_of_seconds(seconds: float, said: str) -> None:
    assert duration_text(seconds) == said


@pytest.mark.parametrize(("size", "said"), [
    (512, "512 bytes"), (1_499, "1 KB"), (46_080, "45 KB"), (1_048_000, "1023 KB"), (MB, "1.0 MB"),
    (int(30.7 * MB), "30.7 MB"), (2.5 * 1024 * MB, "2.5 GB")])
def test_sizes_count_1024_bytes_a_kilobyte_as_the_settings_do(size: float, said: str) -> None:
    assert size_text(size) == said


@pytest.mark.parametrize(("content_type", "said"), [
    ("image/png", "a PNG image"), ("audio/wav", "a WAV audio file"), ("audio/x-wav", "a WAV audio file"),
    ("audio/mpeg", "an MP3 audio file"), ("video/mp4", "an MP4 video"), ("text/plain", "a plain text file"),
    ("text/plain; charset=utf-8", "a plain text file"), ("application/pdf", "a PDF file"),
    ("application/octet-stream", "a file")])
def test_kinds_of_file_in_words_not_mime_types(content_type: str, said: str) -> None:
    assert kind_text(content_type) == said
    assert kind_text(content_type, article=False) == said.split(" ", 1)[1]


def test_text_is_shortened_between_words() -> None:
    topic = "how solar panels turn sunlight into electricity in a home"
    assert shorten(topic, 40) == "how solar panels turn sunlight into…"  # not "...into electr"
    assert shorten("  a short\n topic ", 40) == "a short topic"
    assert shorten("x" * 50, 10) == "x" * 9 + "…"  # one word longer than the room is cut within it
    assert all(len(shorten(topic, n)) <= n for n in range(2, 60))


def test_an_estimate_is_said_by_its_summary() -> None:
    assert estimate_text({"duration_s": 43.8, "summary": "about 44 s (18 s-2 min)"}) == "about 44 s (18 s-2 min)"
    assert estimate_text({"duration_s": 1350.0}) == "about 22 min 30 s"
