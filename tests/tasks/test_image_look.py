"""The built-in portrait follows what it can of the prompt and says what it drew."""

from __future__ import annotations

import numpy as np

from executors.gpu.draw import seed_of
from executors.gpu.image import draw_portrait, read_look


def test_the_look_is_read_from_the_prompt() -> None:
    prompt = "a smiling old barista with grey hair, glasses and a beard, blue background, male voice"
    look = read_look(prompt, seed_of(prompt))
    assert not look.feminine and look.old and look.smile and look.beard and look.glasses
    assert look.drawn == ("man", "older", "smiling", "beard", "glasses", "grey hair", "blue background")
    assert "draws no clothes, objects or places" in look.note()
    woman = read_look("a young woman with red hair in front of a green wall", 1)
    assert woman.feminine and not woman.beard and "red hair" in woman.drawn and "green background" in woman.drawn
    assert read_look("someone", 3).drawn == ("a presenter",)


def test_the_drawing_follows_the_look() -> None:
    blue = np.asarray(draw_portrait("a smiling man, blue background", None, 128, 128, "cpu"), dtype=float)
    green = np.asarray(draw_portrait("a smiling man, green background", None, 128, 128, "cpu"), dtype=float)
    corner_b, corner_g = blue[:16, :16].mean(axis=(0, 1)), green[:16, :16].mean(axis=(0, 1))
    assert corner_b[2] > corner_b[1] and corner_g[1] > corner_g[2]  # the background colour asked for
    plain = np.asarray(draw_portrait("a man", None, 384, 384, "cpu"), dtype=float)
    specs = np.asarray(draw_portrait("a man with glasses", None, 384, 384, "cpu"), dtype=float)
    eyes = (slice(150, 190), slice(130, 254))  # around y 0.44 of the frame

    def dark(img: np.ndarray) -> int:
        return int((img[eyes].max(axis=2) < 60).sum())

    assert dark(specs) > dark(plain) + 30, (dark(specs), dark(plain))  # dark frames around the eyes
