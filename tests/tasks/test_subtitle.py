"""video.subtitle: captions burnt onto a video, its size, rate and sound kept (decoded with PyAV)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from executors.gpu import subtitle
from executors.gpu.media import load_audio, probe, read_frames
from spinbot.errors import PermanentError
from tests.tasks.conftest import Harness, make_video, rms


def frames_of(path: Path) -> np.ndarray:
    return np.concatenate(list(read_frames(path, 64))).astype(np.float32)


async def test_plain_words_are_burnt_in_and_the_sound_is_kept(harness: Harness, media: dict[str, Path]) -> None:
    src = make_video(harness.workroot / "talk.mp4", 160, 96, 20, 10, audio=media["speech"])
    out = await subtitle.subtitle.handler(harness.ctx("sub"), subtitle.SubtitleParams(
        video=await harness.put(src), text="Hello world. A second caption here."))
    path = harness.path(out["video"])
    before, after = probe(src), probe(path)
    assert (after.width, after.height, after.frames, after.fps) == (before.width, before.height, before.frames, 10)
    plain, titled = frames_of(src), frames_of(path)
    assert np.abs(titled[:, 60:] - plain[:, 60:]).mean(axis=(1, 2, 3)).min() > 10, "a frame has no caption"
    assert np.abs(titled[:, :30] - plain[:, :30]).mean() < 10, "the caption is not at the bottom"
    assert after.has_audio and rms(load_audio(path, 16_000)) > 0.02


async def test_subrip_cues_keep_their_own_times(harness: Harness) -> None:
    src = make_video(harness.workroot / "clip.mp4", 128, 96, 30, 10)  # 3 s, no sound
    srt = "1\n00:00:01,000 --> 00:00:02,000\nOnly in the middle second\n"
    out = await subtitle.subtitle.handler(harness.ctx("srt"), subtitle.SubtitleParams(
        video=await harness.put(src), text=srt))
    diff = np.abs(frames_of(harness.path(out["video"]))[:, 60:] - frames_of(src)[:, 60:]).mean(axis=(1, 2, 3))
    assert diff[12:18].min() > 10 and diff[:8].max() < 5 and diff[22:].max() < 5
    assert not probe(harness.path(out["video"])).has_audio


def test_timeline_reads_subrip_and_refuses_cues_without_words() -> None:
    cues = subtitle.timeline("1\n00:00:00,500 --> 00:00:01,250\nHi\n\n2\n00:00:02,000 --> 00:00:03,000\nThere", 9)
    assert cues == [(0.5, 1.25, "Hi"), (2.0, 3.0, "There")]
    assert subtitle.timeline("plain words", 4.0)[-1][1] == pytest.approx(4.0)
    with pytest.raises(PermanentError, match="no cue"):
        subtitle.timeline("1\n00:00:02,000 --> 00:00:01,000\n", 3)
