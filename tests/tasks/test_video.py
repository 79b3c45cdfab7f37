"""video.animate_portrait / upscale / compose: MP4s checked by decoding them with PyAV."""

from __future__ import annotations

import asyncio
import math
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from PIL import Image

from executors.gpu import measure, upscale, video
from executors.gpu.draw import MOUTH
from executors.gpu.media import envelope, load_audio, probe, read_frames
from spinbot.errors import Cancelled
from tests.tasks.conftest import Harness, make_video, rms


def streams(path: Path) -> tuple[int, int, int, float, bool]:
    """(width, height, decoded frames, duration s, has audio) by decoding every frame."""
    with av.open(str(path)) as c:
        v = c.streams.video[0]
        n = sum(1 for _ in c.decode(v))
        return v.codec_context.width, v.codec_context.height, n, n / float(v.average_rate), bool(c.streams.audio)


async def test_animate_follows_the_audio(harness: Harness, media: dict[str, Path]) -> None:
    img, wav = await harness.put(media["portrait"]), await harness.put(media["speech"])
    params = video.AnimateParams(image=img, audio=wav, fps=12, size=96)
    out = await video.animate_portrait.handler(harness.ctx("talk"), params)
    path = harness.path(out["video"])
    samples = load_audio(media["speech"], 16_000)
    seconds = len(samples) / 16_000
    w, h, n, duration, has_audio = streams(path)
    assert (w, h) == (96, 96) and has_audio
    assert n == out["frames"] == math.ceil(seconds * 12)
    assert duration == pytest.approx(seconds, abs=0.1) and out["duration_s"] == pytest.approx(duration, abs=0.01)
    assert rms(load_audio(path, 16_000)) > 0.02, "the muxed audio is silent"
    # the mouth moves with the voice: still during the leading second of silence, moving while speaking
    frames = np.concatenate(list(read_frames(path, 64))).astype(np.float32)
    mx, my = int(MOUTH[0] * 96), int(MOUTH[1] * 96)
    mouth = frames[:, my - 6 : my + 10, mx - 10 : mx + 10].mean(axis=(1, 2, 3))
    env = envelope(samples, 16_000, 12, n)
    assert env[:10].max() < 0.05 < env[12:].max()
    assert np.abs(np.diff(mouth[2:10])).max() < 1.0 < np.abs(mouth[12:] - mouth[5]).max()
    assert np.corrcoef(mouth[12:], env[12:])[0, 1] < -0.3, "mouth darkness does not follow loudness"
    assert out["mouth"] == {"x": MOUTH[0], "y": MOUTH[1], "width": 0.1, "found_by": "drawn"}  # image.render's note
    assert out["video"]["key"] == "jobs/job1/talk/talking.mp4"
    assert not list((harness.workroot / "talk").iterdir())


async def test_animate_reports_progress_and_can_be_cancelled(harness: Harness, media: dict[str, Path]) -> None:
    img, wav = await harness.put(media["portrait"]), await harness.put(media["speech"])
    ctx = harness.ctx("talk")
    original = ctx.progress

    async def cancel_on_first_frames(fraction: float, message: str = "") -> None:
        await original(fraction, message)
        if message.startswith("frame"):
            harness.cancel.set()

    ctx.progress = cancel_on_first_frames  # type: ignore[method-assign]
    with pytest.raises(Cancelled):
        await video.animate_portrait.handler(ctx, video.AnimateParams(image=img, audio=wav, fps=25, size=256))
    assert not list((harness.workroot / "talk").iterdir()), "temporary files were left behind"
    assert not any(k == "artifact" for _, k, _ in harness.events)


def test_lanczos_is_normalised_and_keeps_flat_images_flat() -> None:
    taps = upscale.lanczos_taps(4)
    assert np.allclose(taps.sum(axis=1), 1.0)
    flat = torch.full((1, 3, 8, 8), 0.4)
    for method in ("lanczos", "bicubic"):
        up = upscale.upscale_frames(flat.clone(), 2, method)
        assert up.shape == (1, 3, 16, 16) and torch.allclose(up, torch.full_like(up, 0.4), atol=1e-5)


@pytest.mark.parametrize("factor,method", [(2, "lanczos"), (4, "bicubic")])
async def test_upscale_keeps_frames_and_audio(
    harness: Harness, media: dict[str, Path], factor: int, method: str
) -> None:
    src = make_video(harness.workroot / f"src{factor}.mp4", 48, 32, 10, 10, audio=media["speech"])
    out = await upscale.upscale.handler(
        harness.ctx(f"up{factor}"), upscale.UpscaleParams(video=await harness.put(src), factor=factor, method=method)
    )  # type: ignore[arg-type]
    w, h, n, _, has_audio = streams(harness.path(out["video"]))
    assert (w, h, n, has_audio) == (48 * factor, 32 * factor, 10, True)
    # the picture is the source picture, larger
    small = next(read_frames(src, 1))[0].astype(np.float32)
    big = next(read_frames(harness.path(out["video"]), 1))[0].astype(np.float32)
    down = big.reshape(32, factor, 48, factor, 3).mean(axis=(1, 3))
    assert np.abs(down - small).mean() < 12
    p = upscale.UpscaleParams(video=await harness.put(src), factor=factor, method=method)
    found = {c.name: c for c in await upscale.upscale.checks(harness.ctx(f"up{factor}"), p, out)}  # type: ignore[misc]
    assert found["size"].ok and found["size"].value == f"{48 * factor}x{32 * factor}"
    assert found["duration_s"].ok and found["audio_stream"].ok and found["audio_stream"].value is True


def test_an_upscale_of_the_wrong_size_or_without_its_audio_is_caught(harness: Harness, media: dict[str, Path]) -> None:
    src = make_video(harness.workroot / "src.mp4", 48, 32, 10, 10, audio=media["speech"])
    silent_small = make_video(harness.workroot / "small.mp4", 48, 32, 10, 10)
    found = {c.name: c for c in measure.upscale_checks(src, silent_small, 2)}
    assert found["size"].ok is False and "not 96x64 (2x the source's 48x32)" in found["size"].detail
    assert found["audio_stream"].ok is False and found["audio_stream"].detail == "the source's audio was lost"


async def test_compose_concatenates_burns_subtitles_and_replaces_audio(
    harness: Harness, media: dict[str, Path]
) -> None:
    a = make_video(harness.workroot / "a.mp4", 160, 96, 10, 10)
    b = make_video(harness.workroot / "b.mp4", 80, 80, 6, 5)  # other size and rate: fitted and resampled
    clips = [await harness.put(a), await harness.put(b)]
    plain = await video.compose.handler(harness.ctx("plain"), video.ComposeParams(clips=clips))
    w, h, n, duration, has_audio = streams(harness.path(plain["video"]))
    assert (w, h, n) == (160, 96, 10 + 12) and has_audio  # silent track where the clips have none
    speech = await harness.put(media["speech"])
    titled = await video.compose.handler(
        harness.ctx("titled"),
        video.ComposeParams(clips=clips, audio=speech, subtitles="Hello world. Second caption here."),
    )
    path = harness.path(titled["video"])
    seconds = len(load_audio(media["speech"], 16_000)) / 16_000
    w, h, n, duration, has_audio = streams(path)
    assert (w, h) == (160, 96) and has_audio
    assert duration == pytest.approx(max(seconds, 2.2), abs=0.15)  # the last frame is held while the audio goes on
    first_plain = next(read_frames(harness.path(plain["video"]), 1))[0].astype(np.float32)
    first_titled = next(read_frames(path, 1))[0].astype(np.float32)
    bottom = np.abs(first_titled[60:] - first_plain[60:]).mean()
    top = np.abs(first_titled[:30] - first_plain[:30]).mean()
    assert bottom > 10 > top, "no caption burnt in at the bottom"
    assert rms(load_audio(path, 16_000)) > 0.02


def test_cues_cover_the_duration_in_order() -> None:
    cues = video.cues("One two three. " + "word " * 25 + "end.", 12.0, max_words=10)
    assert cues[0][0] == 0 and cues[-1][1] == pytest.approx(12.0)
    assert all(a[1] == pytest.approx(b[0]) for a, b in zip(cues, cues[1:], strict=False))
    assert all(len(c[2].split()) <= 10 for c in cues)


async def test_probe_reads_what_the_writer_wrote(tmp_path: Path) -> None:
    path = await asyncio.to_thread(make_video, tmp_path / "v.mp4", 64, 48, 7, 7)
    info = probe(path)
    assert (info.width, info.height, info.frames, info.has_audio) == (64, 48, 7, False)
    assert info.duration_s == pytest.approx(1.0)


async def test_animate_reads_portraits_as_phones_and_editors_write_them(harness: Harness, media: dict[str, Path],
                                                                       tmp_path: Path) -> None:
    """A phone portrait (EXIF orientation 6) animates upright; a 16-bit greyscale PNG in its own tones,
    not white (issue 22, items 9 and 10)."""
    from tests.test_images import BOTTOM, TOP, phone_jpeg

    wav = await harness.put(media["speech"])
    grey = np.tile(np.linspace(0, 65535, 96), (96, 1)).astype(np.uint16)
    Image.fromarray(grey).save(tmp_path / "grey16.png")
    looks = {}
    for name, path in (("phone", phone_jpeg(tmp_path / "phone.jpg", 6)), ("grey16", tmp_path / "grey16.png")):
        img = await harness.put(path, key=f"inputs/{path.name}")
        out = await video.animate_portrait.handler(harness.ctx(f"talk-{name}"), video.AnimateParams(
            image=img, audio=wav, fps=6, size=64))
        looks[name] = next(read_frames(harness.path(out["video"]), 1))[0].astype(int)  # the first frame (silence)
    top, bottom = looks["phone"][4:16, 16:48].mean(axis=(0, 1)), looks["phone"][48:60, 16:48].mean(axis=(0, 1))
    assert np.abs(top - TOP).max() < 50 and np.abs(bottom - BOTTOM).max() < 50, (top, bottom)
    assert 90 < looks["grey16"].mean() < 165, looks["grey16"].mean()  # a ramp from black to white, not all white
    assert looks["grey16"][:, :8].mean() < 60 < 200 < looks["grey16"][:, -8:].mean()
