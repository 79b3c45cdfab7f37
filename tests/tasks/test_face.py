"""The portrait's own mouth: found on a real photograph (scikit-image's astronaut, Eileen Collins) wherever the
face sits in the picture, read from the built-in drawer's note, and absent (said so) where there is no face."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import orjson
import pytest
from PIL import Image
from PIL.PngImagePlugin import PngInfo
from skimage import data

from executors.gpu import video
from executors.gpu.common import Reporter
from executors.gpu.face import MOUTH_KEY, detect_mouth, drawn_mouth, find_mouth, square_around
from executors.gpu.image import ImageParams, render_builtin
from executors.gpu.media import envelope, load_audio, read_frames
from tests.tasks.conftest import Harness

#: The astronaut's lips, marked by hand on the 512 x 512 photograph (centre x, y in pixels).
LIPS = (223.0, 141.0)


def placed(ox: int, oy: int, side: int = 256, size: tuple[int, int] = (640, 480)) -> np.ndarray:
    """The astronaut photo scaled to side x side, pasted at (ox, oy) on a plain grey picture of `size`."""
    canvas = np.full((size[1], size[0], 3), 96, np.uint8)
    canvas[oy : oy + side, ox : ox + side] = np.asarray(Image.fromarray(data.astronaut()).resize((side, side)))
    return canvas


def test_the_mouth_is_found_on_a_photograph() -> None:
    m = detect_mouth(data.astronaut())
    assert m is not None
    assert abs(m.x - LIPS[0]) < 8 and abs(m.y - LIPS[1]) < 8, (m.x, m.y)
    assert 30 < m.width < 60  # the lips are ~45 px wide
    fx, fy, fw, fh = m.face
    assert fx < m.x < fx + fw and fy + fh / 2 < m.y < fy + fh


@pytest.mark.parametrize("ox,oy", [(0, 0), (20, 10), (384, 0), (370, 210), (100, 224)])
def test_the_mouth_follows_the_face_wherever_it_is(ox: int, oy: int) -> None:
    m = detect_mouth(placed(ox, oy))
    assert m is not None, f"no face found at ({ox}, {oy})"
    k = 256 / 512
    assert abs(m.x - (ox + LIPS[0] * k)) < 6 and abs(m.y - (oy + LIPS[1] * k)) < 6, (m.x - ox, m.y - oy)


@pytest.mark.parametrize("name", ["coffee", "chelsea", "rocket"])
def test_no_face_is_no_mouth(name: str) -> None:
    assert detect_mouth(getattr(data, name)()) is None


async def test_the_drawn_portrait_notes_its_mouth_for_its_size_only(harness: Harness, tmp_path: Path) -> None:
    params = ImageParams(prompt="a bearded man smiling", width=320, height=240)
    out = render_builtin(params, tmp_path / "p.png", Reporter(harness.ctx("draw")))
    m = drawn_mouth(out)
    assert m is not None and m.found_by == "drawn"
    assert (m.x, m.y, m.width) == pytest.approx((160, 120 + 0.1 * 240, 24), abs=0.01)
    with Image.open(out) as im:
        im.resize((160, 120)).save(tmp_path / "small.png", pnginfo=_same_note(im))
    assert drawn_mouth(tmp_path / "small.png") is None  # the note holds for the size it was drawn at only
    Image.fromarray(data.coffee()).save(tmp_path / "coffee.png")
    with Image.open(tmp_path / "coffee.png") as im:
        assert drawn_mouth(tmp_path / "coffee.png") is None and find_mouth(tmp_path / "coffee.png", im) is None


def _same_note(im: Image.Image) -> PngInfo:
    info = PngInfo()
    info.add_text(MOUTH_KEY, im.text[MOUTH_KEY])  # type: ignore[attr-defined]
    return info


def test_the_square_frame_keeps_the_face() -> None:
    m = detect_mouth(placed(0, 60, 240, (480, 360)))
    assert m is not None
    assert square_around((480, 360), m) == (0, 0, 360, 360)  # not the centre crop (60..420), which cuts the face
    assert square_around((480, 360), None) == (60, 0, 420, 360)


async def test_a_photo_speaks_with_its_own_mouth(harness: Harness, media: dict[str, Path], tmp_path: Path) -> None:
    Image.fromarray(placed(0, 60, 240, (480, 360))).save(tmp_path / "photo.png")
    img, wav = await harness.put(tmp_path / "photo.png"), await harness.put(media["speech"])
    out = await video.animate_portrait.handler(harness.ctx("talk"), video.AnimateParams(image=img, audio=wav, fps=12,
                                                                                        size=256))
    mouth = out["mouth"]
    assert orjson.loads(orjson.dumps(mouth)) == mouth  # plain JSON: numpy floats crashed the hand-off
    # the lips' place in the square frame (0, 0, 360, 360): the hand-marked spot, scaled
    assert mouth["x"] == pytest.approx(LIPS[0] * 240 / 512 / 360, abs=0.03)
    assert mouth["y"] == pytest.approx((60 + LIPS[1] * 240 / 512) / 360, abs=0.03)
    frames = np.concatenate(list(read_frames(harness.path(out["video"]), 64))).astype(np.float32)
    env = envelope(load_audio(media["speech"], 16_000), 16_000, 12, len(frames))

    def darkness_follows_voice(x: float, y: float) -> float:
        mx, my = int(x * 256), int(y * 256)
        region = frames[:, my - 3 : my + 7, mx - 6 : mx + 6].mean(axis=(1, 2, 3))
        return float(np.corrcoef(region[12:], env[12:])[0, 1])

    assert darkness_follows_voice(mouth["x"], mouth["y"]) < -0.3, "the real mouth does not open with the voice"
    assert abs(darkness_follows_voice(0.5, 0.6)) < 0.3, "a mouth still opens at the old fixed spot"
    logs = [d["message"] for _, k, d in harness.events if k == "log"]
    assert any(m.startswith("mouth at 29% across, 3") and ": OpenCV's face detector" in m for m in logs), logs
    # the check looks where the animator found the mouth, not at the drawn portrait's fixed spot
    p = video.AnimateParams(image=img, audio=wav, fps=12, size=256)
    checks = {c.name: c for c in await video.animate_portrait.checks(harness.ctx("talk"), p, out)}  # type: ignore[misc]
    assert checks["mouth_sync"].ok is True, checks["mouth_sync"]


async def test_no_face_animates_no_mouth_and_says_why(harness: Harness, media: dict[str, Path],
                                                      tmp_path: Path) -> None:
    Image.fromarray(data.coffee()).save(tmp_path / "coffee.png")
    img, wav = await harness.put(tmp_path / "coffee.png"), await harness.put(media["speech"])
    out = await video.animate_portrait.handler(harness.ctx("talk"), video.AnimateParams(image=img, audio=wav, fps=8,
                                                                                        size=96))
    assert out["mouth"] is None and out["frames"] > 0
    logs = [d["message"] for _, k, d in harness.events if k == "log"]
    assert video.NO_FACE in logs
