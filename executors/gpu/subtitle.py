"""video.subtitle: burns subtitles onto a video, keeping its size, frame rate and sound."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from executors.gpu import device
from executors.gpu.common import ArtifactInput, Reporter, fetch, in_thread, scratch
from executors.gpu.media import VideoWriter, even, from_tensor, probe, probe_ffmpeg, read_frames, to_tensor
from executors.gpu.video import Captions, batcher, cues, fit_into
from spinbot.errors import PermanentError
from spinbot.manifest import Attachable, CostFeature, Offer, RetryPolicy
from spinbot.registry import service
from spinbot.task import TaskContext
from spinbot.units import duration_text


class SubtitleParams(BaseModel):
    video: ArtifactInput
    text: str = Field(min_length=1, max_length=20_000, description="the subtitles: plain text (timed over the "
                      "video in proportion to each cue's length) or SubRip cues (00:00:01,000 --> 00:00:03,500)")


SRT_TIME = re.compile(r"(\d{1,2}):(\d\d):(\d\d)[,.](\d{1,3})\s*-->\s*(\d{1,2}):(\d\d):(\d\d)[,.](\d{1,3})")


def timeline(text: str, duration: float) -> list[tuple[float, float, str]]:
    """(start s, end s, words) cues: SubRip's own times when `text` has them, else `cues` over `duration`."""
    if not SRT_TIME.search(text):
        return cues(text, duration)
    out = []
    for block in re.split(r"\n\s*\n", text.replace("\r\n", "\n").strip()):
        m = SRT_TIME.search(block)
        if m is None:
            continue
        h0, m0, s0, f0, h1, m1, s1, f1 = m.groups()
        start = int(h0) * 3600 + int(m0) * 60 + int(s0) + int(f0.ljust(3, "0")) / 1000
        end = int(h1) * 3600 + int(m1) * 60 + int(s1) + int(f1.ljust(3, "0")) / 1000
        words = " ".join(block[m.end():].split())
        if words and end > start:
            out.append((start, end, words))
    if not out:
        raise PermanentError("the subtitles have SubRip times but no cue with words and an end after its start")
    return sorted(out)


def subtitle_builtin(src: Path, text: str, out: Path, report: Reporter) -> float:
    """Write `src` with `text` burnt in to `out` (its audio copied as is); returns the duration in seconds."""
    info = probe(src)
    w, h, fps = even(info.width), even(info.height), info.fps
    dev = device.torch_device()
    captions = Captions(timeline(text, info.frames / fps), w, h, dev)
    sizes = batcher(w, h)
    written = 0
    with VideoWriter(out, w, h, fps, audio=src if info.has_audio else None, audio_copy=True) as writer:
        for frames in read_frames(src, sizes):
            report.check()
            x = fit_into(to_tensor(frames, dev), w, h)
            for k in range(len(x)):
                overlay = captions.at((written + k) / fps)
                if overlay is not None:
                    x[k] = x[k] * (1 - overlay[3:4]) + overlay[:3] * overlay[3:4]
            writer.write(from_tensor(x))
            sizes.done(len(x))
            written += len(x)
            report(min(0.98, written / max(1, info.frames)), f"frame {written}/{info.frames}")
    return written / fps


@service(
    "video.subtitle",
    planes=["gpu"],
    description=(
        "Burns subtitles onto a `video`: `text` is plain words (timed over the video by their length) or SubRip "
        "cues with their own times. Size, frame rate and sound are kept. Outputs an MP4 (H.264)."
    ),
    params=SubtitleParams,
    inputs={"video": "video", "text": "text"},
    outputs={"video": "video"},
    gpu=True,
    duration_s=15.0,
    memory_mb=800,
    features=(CostFeature(name="bytes", of=["params.video"], typical=3e6),),
    retry=RetryPolicy(max_attempts=2, backoff_s=2.0),
    timeout_s=3600,
    probe=probe_ffmpeg,
    offers=(Offer(deliverable="subtitles", does="add subtitles to a video", output="video", base="video",
                  cues=[r"subtitles?|subtitled|captions?|captioned|sous-titres?|untertitel|subtítulos|sottotitoli|"
                        r"legendas|субтитры|字幕"]),),
    attachable={"video": Attachable(role="the video to subtitle"), "text": Attachable(role="the subtitles")},
)
async def subtitle(ctx: TaskContext, p: SubtitleParams) -> dict[str, Any]:
    async with scratch(ctx) as tmp:
        src = await fetch(ctx, p.video, tmp, "source")
        out = tmp / "subtitled.mp4"
        await ctx.progress(0.01, "burning subtitles in")
        duration = await in_thread(subtitle_builtin, src, p.text, out, Reporter(ctx))
        video = await ctx.put_artifact("subtitled.mp4", out, "video/mp4")
    await ctx.progress(1.0, duration_text(duration))
    return {"video": video}
