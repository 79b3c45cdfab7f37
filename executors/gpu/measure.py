"""Measurements of what the GPU services make, for the checks they declare (spinbot/checks.py).

Cheap and real: numpy over decoded samples and small greyscale frames, PocketSphinx (installed for
voice.prepare) for the words. Each function returns checks; the services' checkers fetch the artifact
and call these in a worker thread.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from executors.gpu import speechcheck, voice
from executors.gpu.common import fetch, off_loop, scratch
from executors.gpu.draw import MOUTH
from executors.gpu.media import envelope, even, load_audio, probe
from spinbot.checks import Check, measured, not_checked
from spinbot.errors import PermanentError
from spinbot.languages import display_name
from spinbot.registry import Checker
from spinbot.task import TaskContext
from spinbot.units import duration_text

RATE = speechcheck.RATE
#: Speech quieter than this (active level, dBFS) is hard to hear on a phone's speaker.
QUIET_DBFS = -40.0
#: Clipped samples (|x| >= 0.999) above this share are audible distortion.
CLIP_SHARE = 0.01
#: Frames are measured at this size (greyscale), enough to see a jaw move by a few percent of the face.
FRAME_PX = 128
#: Mean absolute change (grey levels of 255) below which consecutive frames count as the same picture.
STILL_LEVEL = 0.05
#: A still stretch longer than this (s) and this share of the video is a frozen picture.
STILL_S, STILL_SHARE = 2.0, 0.2
#: The mouth box (fractions of width and height) around draw.MOUTH, where a portrait's mouth is drawn or cropped.
MOUTH_BOX = (MOUTH[0] - 0.12, MOUTH[1] - 0.07, MOUTH[0] + 0.12, MOUTH[1] + 0.09)
#: Least correlation of mouth motion with the voice's loudness changes for a mouth that speaks.
MOUTH_SYNC = 0.2
#: Mouth-box motion beyond the whole picture's (grey levels, 95th percentile over frames) below which the
#: mouth does not move: the built-in animator's jaw measures 2-3, a still picture's codec noise 0.01.
MOUTH_MOVES = 0.5
#: An image whose greyscale spread (standard deviation, grey levels) is under this is blank.
BLANK_STD = 3.0
ENGLISH = ("en",)
#: Speech whose rate over the text's words is outside this share of the rate asked does not say that text:
#: a forced alignment stretches a 20-word text over 30 s of other speech (41 words a minute at 160 asked).
#: eSpeak speaks 1.2-1.4x its nominal rate; digits and abbreviations speak more words than they write.
RATE_SHARE = (0.5, 3.0)
#: The median pitch is measured on at most this much speech (s): on 29 s of eSpeak speech 8 s gave 210.1 Hz,
#: 20 s 210.8 Hz (in 0.12 s instead of 0.25 s); expectations.FEMALE_FROM_HZ parts the voices.
PITCH_S = 8.0


# ---- speech ------------------------------------------------------------------------------------


def active_level_dbfs(x: np.ndarray, rate: int) -> float:
    """The level of the speech itself: the mean power of the frames within 30 dB of the loudest, in dBFS."""
    db = voice.frame_db(x, rate)
    if db.size == 0:
        return -120.0
    active = db[db >= db.max() - 30.0]
    return float(10 * np.log10(np.mean(10 ** (active / 10))))


def loudness(x: np.ndarray, rate: int) -> Check:
    level = active_level_dbfs(x, rate)
    clipped = float(np.mean(np.abs(x) >= 0.999)) if x.size else 0.0
    ok = level >= QUIET_DBFS and clipped <= CLIP_SHARE
    detail = f"speech level {level:.1f} dBFS, {clipped * 100:.1f} % of samples clipped"
    if level < QUIET_DBFS:
        detail = f"the speech is too quiet: {level:.1f} dBFS (at least {QUIET_DBFS:.0f} dBFS is audible)"
    elif clipped > CLIP_SHARE:
        detail = f"the speech is distorted: {clipped * 100:.1f} % of its samples are clipped"
    return Check("loudness_dbfs", round(level, 1), "dBFS", ok, detail)


def words_check(x: np.ndarray, text: str, language: str, should_stop: Callable[[], bool],
                wpm: int | None = None) -> Check:
    """Whether the speech says `text` (asked at `wpm` words a minute, when known): its length fits the text,
    and PocketSphinx aligns the text with it (speechcheck.listen). Speech in a `language` other than English
    is not checked (no recogniser for it): neither a pass nor a miss."""
    if language.split("-")[0] not in ENGLISH:
        return not_checked("words", f"no recogniser for {display_name(language)} (PocketSphinx's model here is "
                                    "US English)")
    seconds, count = len(x) / RATE, len(speechcheck.words(text))
    if wpm and seconds > 0 and not RATE_SHARE[0] <= count / seconds * 60 / wpm <= RATE_SHARE[1]:
        return Check("words", 0.0, "", False, f"the speech does not fit the text: {duration_text(seconds)} for "
                     f"{count} words "
                     f"is {count / seconds * 60:.0f} words a minute, {wpm} were asked")
    m = speechcheck.listen(x, RATE, text, should_stop)
    if speechcheck.heard(m):
        value: float | str = "aligned" if m.aligned and m.score == 1.0 else round(m.score, 2)
        how = "aligned the text with the speech" if m.aligned else f"heard the text's words (match {m.score:.2f})"
        return Check("words", value, "", True, f"the recogniser {how}")
    heard = " ".join(m.transcript.split()[:12]) + ("…" if len(m.transcript.split()) > 12 else "")
    how = ("it aligns, but the words heard match only " if m.aligned else "it does not align; the words heard match ")
    return Check("words", round(m.score, 2), "", False,
                 f"the recogniser did not hear the text: {how}{m.score:.2f} (it heard {heard!r})")


def speech_checks(path: Path, text: str, language: str, should_stop: Callable[[], bool] = lambda: False,
                  wpm: int | None = None) -> list[Check]:
    """duration_s, loudness_dbfs, pitch_hz and words of a speech file that should say `text` (at `wpm`)."""
    x = load_audio(path, RATE)
    duration = len(x) / RATE
    out = [Check("duration_s", round(duration, 2), "s", None, f"{duration_text(duration)} of speech")]
    out += measured("loudness_dbfs", lambda: loudness(x, RATE))
    sample = x[: int(PITCH_S * RATE)]
    out += measured("pitch_hz", lambda: Check("pitch_hz", round(voice.median_pitch_hz(sample, RATE)), "Hz", None,
                                              f"median pitch of the voiced frames (first {PITCH_S:g} s)"))
    out += measured("words", lambda: words_check(x, text, language, should_stop, wpm))
    return out


# ---- video -------------------------------------------------------------------------------------


#: Options of ffmpeg's video decoder for the checks (its `-skip_loop_filter all`): H.264's deblocking filter is
#: skipped, a quarter of the decoding time of a 512x512 talking head (0.49 s instead of 0.66 s for 737 frames,
#: 2 cores at load 6). It smooths block edges, which the FRAME_PX greyscale frames barely show (0.35 grey
#: levels apart on average); a frozen picture still decodes to identical frames.
DECODE_OPTIONS = {"skip_loop_filter": "all"}


@dataclass(frozen=True, slots=True)
class Decoded:
    """A video decoded once for all its checks: every frame as FRAME_PX x FRAME_PX greyscale uint8
    (n, FRAME_PX, FRAME_PX), the frame rate (frames/s) and, when asked for and present, its audio as float32
    mono samples in [-1, 1] at RATE (else None)."""

    grey: np.ndarray
    fps: float
    audio: np.ndarray | None


def decode(path: Path, *, audio: bool = False) -> Decoded:
    """The video's frames (and its audio when `audio`) in one pass over the file: the packets are read once
    and each stream's decoder gets its own (the audio is not demuxed a second time for the mouth check).
    PermanentError when the file cannot be decoded."""
    import av

    frames: list[np.ndarray] = []
    sound: list[np.ndarray] = []
    try:
        with av.open(str(path)) as c:
            video = c.streams.video[0]
            video.thread_type = "AUTO"
            video.codec_context.options = DECODE_OPTIONS
            fps = float(video.average_rate or video.guessed_rate or 25)
            track = c.streams.audio[0] if audio and c.streams.audio else None
            resampler = av.AudioResampler(format="s16", layout="mono", rate=RATE)
            for packet in c.demux(*([video] if track is None else [video, track])):
                for frame in packet.decode():
                    if isinstance(frame, av.VideoFrame):
                        frames.append(frame.reformat(width=FRAME_PX, height=FRAME_PX, format="gray").to_ndarray())
                    elif isinstance(frame, av.AudioFrame):
                        sound += [f.to_ndarray().reshape(-1) for f in resampler.resample(frame)]
            if track is not None:
                sound += [f.to_ndarray().reshape(-1) for f in resampler.resample(None)]
    except av.error.FFmpegError as e:
        raise PermanentError(f"cannot decode video {path.name}: {e.strerror or type(e).__name__}") from e
    grey = np.stack(frames) if frames else np.zeros((0, FRAME_PX, FRAME_PX), np.uint8)
    samples = None
    if track is not None:
        samples = np.concatenate(sound).astype(np.float32) / 32768.0 if sound else np.zeros(0, np.float32)
    return Decoded(grey, fps, samples)


def frame_changes(frames: np.ndarray) -> np.ndarray:
    """Each frame's absolute change from the one before, in grey levels: (n - 1, FRAME_PX, FRAME_PX) int16."""
    f = frames.astype(np.int16)
    return np.abs(f[1:] - f[:-1])


def longest_still(change: np.ndarray, fps: float) -> float:
    """The longest run of frames that do not change (s), from each frame's change from the one before."""
    run = best = 0
    for moved in change >= STILL_LEVEL:
        run = 0 if moved else run + 1
        best = max(best, run)
    return (best + 1) / fps if best else 0.0


def still_check(diff: np.ndarray, fps: float, duration: float) -> Check:
    """Whether the picture freezes, from frame_changes()."""
    change = diff.mean(axis=(1, 2)) if len(diff) else np.zeros(0)
    still = longest_still(change, fps) if len(diff) else duration
    limit = max(STILL_S, STILL_SHARE * duration)
    ok = still <= limit
    detail = (f"the picture changes throughout (longest still stretch {duration_text(still)})" if ok else
              f"the picture is frozen for {duration_text(still)} of {duration_text(duration)}")
    return Check("still_s", round(still, 2), "s", ok, detail)


def mouth_box(at: tuple[float, float] | None) -> tuple[float, float, float, float]:
    """MOUTH_BOX, moved to centre on the mouth `at` (x, y as fractions of the frame) when the animator found it
    elsewhere (a photograph's mouth is where the face is), kept inside the frame."""
    if at is None:
        return MOUTH_BOX
    dx = min(max(at[0] - MOUTH[0], -MOUTH_BOX[0]), 1 - MOUTH_BOX[2])
    dy = min(max(at[1] - MOUTH[1], -MOUTH_BOX[1]), 1 - MOUTH_BOX[3])
    return (MOUTH_BOX[0] + dx, MOUTH_BOX[1] + dy, MOUTH_BOX[2] + dx, MOUTH_BOX[3] + dy)


def mouth_check(diff: np.ndarray, samples: np.ndarray, fps: float, at: tuple[float, float] | None = None) -> Check:
    """How closely motion in the mouth box (beyond the whole picture's) follows the voice's loudness changes;
    `diff` from frame_changes(), `at` the mouth the animator found (mouth_box)."""
    n = len(diff) + 1
    if n < 3:
        return not_checked("mouth_sync", f"the video has {n} frame(s)")
    x0, y0, x1, y1 = (round(v * FRAME_PX) for v in mouth_box(at))
    local = diff[:, y0:y1, x0:x1].mean(axis=(1, 2)) - diff.mean(axis=(1, 2))
    env = envelope(samples, RATE, fps, n)
    voice_change = np.abs(np.diff(env))
    if float(np.std(voice_change)) < 1e-6:
        return not_checked("mouth_sync", "the audio has no speech to follow")
    moves = float(np.percentile(local, 95))
    if moves < MOUTH_MOVES:
        return Check("mouth_sync", 0.0, "", False, f"the mouth region does not move (motion {moves:.2f} grey "
                                                   f"levels, at least {MOUTH_MOVES} for a speaking mouth)")
    r = float(np.corrcoef(local, voice_change)[0, 1])
    ok = r >= MOUTH_SYNC
    detail = (f"the mouth moves with the voice (r = {r:.2f})" if ok else
              f"the mouth region does not move with the voice (r = {r:.2f}, at least {MOUTH_SYNC} expected)")
    return Check("mouth_sync", round(r, 2), "", ok, detail)


def video_checks(path: Path, *, mouth: bool, at: tuple[float, float] | None = None) -> list[Check]:
    """duration_s, audio_stream, still_s and (for a talking portrait) mouth_sync of a video file, the mouth
    looked for `at` (x, y fractions) when the animator said where it is."""
    info = probe(path)
    out = [Check("duration_s", round(info.duration_s, 2), "s", None,
                 f"{duration_text(info.duration_s)}, {info.frames} frames at {info.fps:g} fps, "
                 f"{info.width}x{info.height}")]
    out.append(Check("audio_stream", info.has_audio, "", info.has_audio,
                     "an audio stream is present" if info.has_audio else "the video has no audio stream"))
    got: dict[str, tuple[np.ndarray, Decoded]] = {}

    def decoded() -> tuple[np.ndarray, Decoded]:  # once for both checks: the frames' changes, and the audio
        if not got:
            d = decode(path, audio=mouth and info.has_audio)
            got["video"] = frame_changes(d.grey), d
        return got["video"]

    def mouth_sync() -> Check:
        diff, d = decoded()
        assert d.audio is not None  # decoded with its audio
        return mouth_check(diff, d.audio, d.fps, at)

    out += measured("still_s", lambda: still_check(decoded()[0], decoded()[1].fps, info.duration_s))
    if mouth:
        if not info.has_audio:
            out.append(not_checked("mouth_sync", "the video has no audio to follow"))
        else:
            out += measured("mouth_sync", mouth_sync)
    return out


def video_checker(output: str, *, mouth: bool) -> Checker:
    """A service's checker for its video output `output`: video_checks of the file."""

    async def check_video(ctx: TaskContext, p: Any, out: dict[str, Any]) -> list[Check]:
        if mouth and "mouth" in out and out["mouth"] is None:  # the animator found no face: say that, not "still"
            async with scratch(ctx) as tmp:
                path = await fetch(ctx, out[output], tmp, "video")
                found = await off_loop(video_checks, path, mouth=False)
            return [*found, Check("mouth_sync", None, "", False,
                                  "no face was found in the picture, so no mouth was animated (use a photo or "
                                  "drawing of one face looking at the camera)")]
        where = out.get("mouth") if mouth else None
        at = (float(where["x"]), float(where["y"])) if isinstance(where, dict) and "x" in where else None
        async with scratch(ctx) as tmp:
            path = await fetch(ctx, out[output], tmp, "video")
            return await off_loop(video_checks, path, mouth=mouth, at=at)

    return check_video


def upscale_checks(source: Path, made: Path, factor: int) -> list[Check]:
    """size (the source's times `factor`, rounded to even as the encoder needs), duration_s (the source's,
    within a frame), audio_stream (kept when the source had one) and still_s of an upscaled video."""
    src, out = probe(source), probe(made)
    want = (even(src.width * factor), even(src.height * factor))
    sized = (out.width, out.height) == want
    checks = [Check("size", f"{out.width}x{out.height}", "px", sized,
                    f"{out.width}x{out.height} pixels, {factor}x the source's {src.width}x{src.height}" if sized else
                    f"{out.width}x{out.height} pixels, not {want[0]}x{want[1]} ({factor}x the source's "
                    f"{src.width}x{src.height})")]
    frame = 1 / max(src.fps, 1.0)
    kept = abs(out.duration_s - src.duration_s) <= frame + 1e-6
    checks.append(Check("duration_s", round(out.duration_s, 2), "s", kept,
                        f"{out.duration_s:.1f} s, as long as the source" if kept else
                        f"{out.duration_s:.1f} s, but the source is {src.duration_s:.1f} s"))
    audio_ok = out.has_audio or not src.has_audio
    checks.append(Check("audio_stream", out.has_audio, "", audio_ok,
                        "the source's audio is kept" if src.has_audio and out.has_audio else
                        "the source has no audio" if not src.has_audio else "the source's audio was lost"))
    checks += measured("still_s", lambda: still_check(frame_changes(decode(made).grey), out.fps, out.duration_s))
    return checks


# ---- images ------------------------------------------------------------------------------------


def image_checks(path: Path, width: int | None, height: int | None) -> list[Check]:
    """size (against the width and height asked, when given) and blank of an image file."""
    with Image.open(path) as im:
        im.load()
        w, h = im.size
        grey = np.asarray(im.convert("L"), dtype=np.float32)
    sized = width is None or height is None or (w, h) == (width, height)
    out = [Check("size", f"{w}x{h}", "px", sized,
                 f"{w}x{h} pixels" + ("" if sized else f", not the {width}x{height} asked for"))]
    spread = float(grey.std())
    blank = spread < BLANK_STD
    out.append(Check("blank", blank, "", not blank,
                     f"the image is blank (grey-level spread {spread:.1f})" if blank
                     else f"the image has content (grey-level spread {spread:.1f})"))
    return out
