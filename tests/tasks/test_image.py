"""image.render: designed portraits and title cards, checked by decoding the PNG."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from executors.gpu import image
from executors.gpu.draw import MOUTH
from tests.tasks.conftest import Harness


async def render(h: Harness, node: str = "img", **params: object) -> tuple[dict, np.ndarray]:
    out = await image.render.handler(h.ctx(node), image.ImageParams(**params))  # type: ignore[arg-type]
    with Image.open(h.path(out["image"])) as im:
        assert im.format == "PNG"
        return out, np.asarray(im.convert("RGB")).astype(np.float32)


async def test_portrait_has_the_requested_size_a_face_and_a_mouth_where_animate_expects_it(harness: Harness) -> None:
    out, px = await render(harness, prompt="a cheerful man explaining volcanoes", width=256, height=256)
    assert px.shape == (256, 256, 3)
    assert px.std() > 20, "the image is (nearly) flat"
    mx, my = int(MOUTH[0] * 256), int(MOUTH[1] * 256)
    lips = px[my - 3 : my + 4, mx - 8 : mx + 9]
    cheek = px[my - 30 : my - 24, mx + 20 : mx + 26]
    assert lips[..., 0].mean() - lips[..., 1].mean() > cheek[..., 0].mean() - cheek[..., 1].mean() + 15, "no red lips"
    await harness.settle()
    fractions = [p for _, p, _ in harness.progress("img")]
    assert fractions[-1] == 1.0 and len(fractions) >= 2
    assert out["image"]["contentType"] == "image/png"


async def test_same_prompt_same_picture_different_prompt_different_picture(harness: Harness) -> None:
    a, _ = await render(harness, "a", prompt="a teacher", width=96, height=96)
    b, _ = await render(harness, "b", prompt="a teacher", width=96, height=96)
    c, _ = await render(harness, "c", prompt="a sailor", width=96, height=96)
    assert a["image"]["sha256"] == b["image"]["sha256"] != c["image"]["sha256"]


async def test_title_card_draws_the_title(harness: Harness) -> None:
    _, with_title = await render(
        harness, "t1", prompt="how bees talk", kind="title_card", title="Bee Dance", width=320, height=180
    )
    assert with_title.shape == (180, 320, 3)
    # white headline pixels exist in the middle band
    band = with_title[50:130]
    assert (band.min(axis=-1) > 235).sum() > 200
    _, portrait_caption = await render(harness, "t2", prompt="a woman", title="Dr. Ada", width=200, height=200)
    assert (portrait_caption[150:].min(axis=-1) > 235).sum() > 50, "no name plate"


@pytest.mark.parametrize("w,h", [(64, 200), (300, 64)])
async def test_extreme_aspect_ratios_render(harness: Harness, w: int, h: int) -> None:
    _, px = await render(
        harness, f"r{w}", prompt="a presenter", title="A very long title that must wrap", width=w, height=h
    )
    assert px.shape == (h, w, 3)
