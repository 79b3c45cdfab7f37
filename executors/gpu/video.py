"""Video services: a talking portrait driven by the audio; clips composed with subtitles (upscaling: upscale.py)."""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from pydantic import BaseModel, Field

from executors.gpu import comfyui, device, measure
from executors.gpu.common import ArtifactInput, Batcher, Reporter, fetch, in_thread, scratch
from executors.gpu.draw import LIPS_WIDTH, caption_overlay
from executors.gpu.face import FOUND_BY, Mouth, find_mouth, square_around
from executors.gpu.media import (
    VideoInfo,
    VideoWriter,
    envelope,
    even,
    from_tensor,
    load_audio,
    probe,
    probe_ffmpeg,
    read_frames,
    run_ffmpeg,
    to_tensor,
    write_wav,
)
from spinbot.errors import PermanentError
from spinbot.images import ImageRefused, load_image
from spinbot.manifest import Attachable, CostFeature, Offer, OutputSize, RetryPolicy
from spinbot.registry import service
from spinbot.task import TaskContext
from spinbot.units import duration_text

log = logging.getLogger(__name__)

AUDIO_RATE = 16_000
#: Most output pixels in one batch: bounds memory; Batcher sizes batches by time below that.
PIXELS_PER_BATCH = 8_000_000


def batcher(width: int, height: int, most: int = 32) -> Batcher:
    return Batcher(max(1, min(most, PIXELS_PER_BATCH // (width * height))))


# ---- video.animate_portrait ----------------------------------------------------------------------


class AnimateParams(BaseModel):
    image: ArtifactInput
    audio: ArtifactInput
    fps: int = Field(default=25, ge=1, le=60)
    size: int = Field(default=512, ge=64, le=2048, description="output width and height in pixels (square)")


def square(img: Image.Image, size: int, mouth: Mouth | None) -> tuple[Image.Image, Mouth | None]:
    """The largest square crop, centred on the face when there is one, resized to size x size; the mouth in it."""
    box = square_around(img.size, mouth)
    scale = size / (box[2] - box[0])
    out = img.convert("RGB").crop(box).resize((size, size), Image.Resampling.LANCZOS)
    return out, (mouth.cropped(box, scale) if mouth is not None else None)


NO_FACE = ("no face found in the picture (OpenCV's frontal-face detectors found none): the picture moves with the "
           "voice but no mouth is animated; for a talking head, use a photo or drawing of one face looking at the "
           "camera")


class PortraitAnimator:
    """Frames of a talking portrait: the loudness envelope opens the jaw around the mouth (when one was found),
    breathes the scale and nods the camera; everything is one grid_sample per batch on the torch device."""

    def __init__(self, image: Image.Image, mouth: Mouth | None, env: np.ndarray, fps: float, dev: str) -> None:
        import torch

        self.torch = torch
        self.dev = dev
        self.fps = fps
        self.size = image.size[0]
        self.img = to_tensor(np.asarray(image)[None], dev)  # (1, 3, S, S)
        self.env = torch.from_numpy(env).to(dev)
        # a slow envelope (~0.6 s) drives the breathing zoom and the nod
        k = max(1, int(fps * 0.6))
        kernel = torch.ones(1, 1, k, device=dev) / k
        self.slow = torch.nn.functional.conv1d(self.env.view(1, 1, -1), kernel, padding=k // 2).view(-1)[: len(env)]
        lin = (torch.arange(self.size, device=dev, dtype=torch.float32) + 0.5) / self.size * 2 - 1
        self.gy, self.gx = torch.meshgrid(lin, lin, indexing="ij")
        self.mouth = mouth
        if mouth is not None:  # in grid units (-1..1 across the frame); k scales the jaw to the lips' width
            self.mx, self.my = mouth.x / self.size * 2 - 1, mouth.y / self.size * 2 - 1
            self.k = mouth.width / self.size / LIPS_WIDTH

    def frames(self, start: int, stop: int) -> Any:
        """Frames start..stop-1 as a float tensor (n, 3, S, S)."""
        torch = self.torch
        f = torch.nn.functional
        idx = torch.arange(start, stop, device=self.dev)
        t = idx.float() / self.fps
        a = self.env[idx].view(-1, 1, 1)
        slow = self.slow[idx].view(-1, 1, 1)
        # camera: a base zoom hides the borders; slow drift, a breath with the voice, a small nod
        zoom = (1.05 + 0.025 * slow).view(-1, 1, 1)
        rot = (0.012 * torch.sin(2 * math.pi * t / 6.3)).view(-1, 1, 1)
        tx = (0.012 * torch.sin(2 * math.pi * t / 7.1)).view(-1, 1, 1)
        ty = (0.010 * torch.sin(2 * math.pi * t / 4.3) - 0.012 * slow.view(-1)).view(-1, 1, 1)
        x, y = self.gx / zoom, self.gy / zoom
        qx = x * torch.cos(rot) - y * torch.sin(rot) + tx
        qy = x * torch.sin(rot) + y * torch.cos(rot) + ty
        out_grid = torch.stack((qx, qy), dim=-1)
        if self.mouth is None:  # no face found: the camera moves, no mouth is drawn anywhere
            return f.grid_sample(self.img.expand(len(idx), -1, -1, -1), out_grid, mode="bilinear",
                                 padding_mode="border", align_corners=False)
        # jaw: the chin below the mouth slides down, the upper lip lifts a little (sizes scale with the lips)
        k, mx, my = self.k, self.mx, self.my
        amp = 0.06 * k * a
        w_low = torch.exp(-(((qx - mx) / (0.17 * k)) ** 2) - (((qy - my - 0.07 * k) / (0.085 * k)) ** 2))
        w_up = torch.exp(-(((qx - mx) / (0.12 * k)) ** 2) - (((qy - my + 0.03 * k) / (0.04 * k)) ** 2))
        sy = qy - amp * w_low + 0.25 * amp * w_up
        grid = torch.stack((qx, sy), dim=-1)
        out = f.grid_sample(
            self.img.expand(len(idx), -1, -1, -1), grid, mode="bilinear", padding_mode="border", align_corners=False
        )
        # the open mouth: a dark soft ellipse between the lips whose height follows the envelope
        open_h = (0.55 * amp).clamp(min=1e-4)
        d = ((qx - mx) / (0.085 * k)) ** 2 + ((qy - my - 0.45 * amp) / open_h) ** 2
        mask = ((1 - d) * 3).clamp(0, 1) * (a * 4).clamp(0, 1)
        inner = torch.tensor((0.22, 0.04, 0.06), device=self.dev).view(1, 3, 1, 1)
        return out * (1 - mask.unsqueeze(1)) + inner * mask.unsqueeze(1)


def animate_builtin(
    image_path: Path, audio_path: Path, out: Path, fps: int, size: int, report: Reporter
) -> dict[str, Any] | None:
    """Write the talking portrait to `out`; returns where the mouth was (fractions of the frame), None if no face."""
    samples = load_audio(audio_path, AUDIO_RATE)
    duration = len(samples) / AUDIO_RATE
    if duration <= 0.05:
        raise PermanentError("the audio is empty", hint="pass speech, e.g. tts.synthesize's audio")
    n = max(1, math.ceil(duration * fps))
    env = envelope(samples, AUDIO_RATE, fps, n)
    size = even(size)
    try:
        im, _ = load_image(image_path)  # upright, 16-bit tones scaled, fully decoded
    except ImageRefused as e:
        raise PermanentError(f"the portrait is not an image ({e.why})",
                             hint="attach a PNG, JPEG or WebP picture of a face") from None
    framed, mouth = square(im, size, find_mouth(image_path, im))
    anim = PortraitAnimator(framed, mouth, env, fps, device.torch_device())
    sizes = batcher(size, size)
    start = 0
    with VideoWriter(out, size, size, fps, audio=audio_path) as writer:
        while start < n:
            report.check()
            stop = min(n, start + sizes())
            writer.write(from_tensor(anim.frames(start, stop)))
            sizes.done(stop - start)
            report(stop / n * 0.98, f"frame {stop}/{n}")
            start = stop
    return mouth.describe((size, size)) if mouth is not None else None


async def playable_mp4(video: Path, audio: Path, tmp: Path) -> Path:
    """An engine's video as an MP4 with the speech: re-encoded when it is not MP4 (webm, gif),
    the audio muxed back when the engine dropped it."""
    info = await in_thread(probe, video)
    if video.suffix == ".mp4" and info.has_audio:
        return video
    out = tmp / "playable.mp4"
    vcodec = ["-c:v", "copy"] if video.suffix == ".mp4" else ["-c:v", "libx264", "-pix_fmt", "yuv420p"]
    args = ["-i", str(video)]
    if info.has_audio:
        args += ["-map", "0:v:0", "-map", "0:a:0"]
    else:
        args += ["-i", str(audio), "-map", "0:v:0", "-map", "1:a:0"]
    args += [*vcodec, "-c:a", "aac", "-shortest", str(out)]
    await in_thread(run_ffmpeg, args)
    return out


@service(
    "video.animate_portrait",
    planes=["gpu"],
    description=(
        "Talking head: animates a portrait `image` (e.g. image.render's portrait) so it speaks the `audio` "
        "(e.g. tts.synthesize's audio); the mouth, zoom and head motion follow the voice. The face and its "
        "mouth are found in the picture (OpenCV's face detectors); with no face found nothing is made to speak. "
        "Outputs an MP4 (H.264 + AAC) of size x size at fps, its frame count, duration and where the mouth "
        "was. With ComfyUI configured and an InfiniteTalk or SadTalker workflow installed, that model "
        "animates it instead."
    ),
    params=AnimateParams,
    inputs={"image": "image", "audio": "audio"},
    outputs={"video": "video", "frames": "number", "duration_s": "number", "mouth": "json"},
    gpu=True,
    duration_s=20.0,
    memory_mb=1500,
    features=(CostFeature(name="frames", of=["outputs.frames"], typical=750),),
    predicts={"frames": OutputSize(of=["params.audio.duration_s", "params.fps"], scale=1.0),
              "duration_s": OutputSize(of=["params.audio.duration_s"], scale=1.0)},
    engine=("comfyui_url",),  # the engine these choose is part of the node cache key
    retry=RetryPolicy(max_attempts=2, backoff_s=2.0),
    timeout_s=3600,
    probe=probe_ffmpeg,
    offers=(Offer(
        deliverable="talking_video", does="animate a face speaking an audio (a talking-head video)", output="video",
        default=True,
        cues=[r"video|videos|clip|movie|film|talking[- ]head|avatar|presenter|explainer|animate|animated|animation|"
              r"lip[- ]?sync|make (?:it|her|him|them|(?:this|my|the) (?:photo|picture|image|portrait|selfie|face)) "
              r"(?:talk|speak|say)|talking (?:image|photo|picture|portrait|face)",
              r"vidéo|vídeo|видео|فيديو|视频|動画"]),),
    attachable={"image": Attachable(role="the face to animate"), "audio": Attachable(role="what the face says")},
    version="2",  # 2: outputs carry their checks
    checks=measure.video_checker("video", mouth=True),
    measures=("duration_s", "audio_stream", "still_s", "mouth_sync"),
)
async def animate_portrait(ctx: TaskContext, p: AnimateParams) -> dict[str, Any]:
    async with scratch(ctx) as tmp:
        image = await fetch(ctx, p.image, tmp, "portrait")
        audio = await fetch(ctx, p.audio, tmp, "speech")
        out: Path | None = None
        mouth: dict[str, Any] | None = {"found_by": "ComfyUI workflow"}
        if ctx.settings.comfyui_url:
            values = {"fps": p.fps, "size": even(p.size), "width": even(p.size), "height": even(p.size)}
            out = await comfyui.animate(ctx, image, audio, values, tmp)
            if out is not None:
                out = await playable_mp4(out, audio, tmp)
        if out is None:
            await ctx.progress(0.01, "animating the portrait")
            out = tmp / "talking.mp4"
            mouth = await in_thread(animate_builtin, image, audio, out, p.fps, p.size, Reporter(ctx))
            await ctx.log(NO_FACE if mouth is None else
                          f"mouth at {mouth['x']:.0%} across, {mouth['y']:.0%} down: "
                          f"{FOUND_BY.get(mouth['found_by'], mouth['found_by'])}")
        info = await in_thread(probe, out)
        video = await ctx.put_artifact("talking.mp4", out, "video/mp4")
    await ctx.progress(1.0, f"{info.frames} frames, {duration_text(info.duration_s)}")
    return {"video": video, "frames": info.frames, "duration_s": round(info.duration_s, 3), "mouth": mouth}


# ---- video.compose -----------------------------------------------------------------------------


class ComposeParams(BaseModel):
    clips: list[ArtifactInput] = Field(min_length=1, max_length=50, description="videos, played in order")
    audio: ArtifactInput | None = Field(default=None, description="replaces the clips' own audio")
    subtitles: str | None = Field(default=None, max_length=20_000, description="text burnt in as timed captions")


def cues(text: str, duration: float, max_words: int = 10) -> list[tuple[float, float, str]]:
    """Split text into caption cues, timed in proportion to their length over `duration`."""
    pieces: list[str] = []
    for sentence in re.split(r"(?<=[.!?;:])\s+", " ".join(text.split())):
        words = sentence.split()
        for i in range(0, len(words), max_words):
            pieces.append(" ".join(words[i : i + max_words]))
    pieces = [p for p in pieces if p]
    total = sum(len(p) + 8 for p in pieces)  # +8: short cues still get a readable moment
    out, t = [], 0.0
    for piece in pieces:
        span = duration * (len(piece) + 8) / total
        out.append((t, t + span, piece))
        t += span
    return out


def fit_into(x: Any, w: int, h: int) -> Any:
    """Resize (n, 3, H, W) to fit w x h keeping the aspect ratio, padded with black."""
    import torch

    n, _, sh, sw = x.shape
    if (sw, sh) == (w, h):
        return x
    s = min(w / sw, h / sh)
    nw, nh = max(2, round(sw * s)), max(2, round(sh * s))
    y = torch.nn.functional.interpolate(x, size=(nh, nw), mode="bilinear", antialias=True, align_corners=False)
    out = torch.zeros(n, 3, h, w, device=x.device)
    top, left = (h - nh) // 2, (w - nw) // 2
    out[:, :, top : top + nh, left : left + nw] = y
    return out


def clip_frames(path: Path, fps_in: float, fps_out: float, sizes: Batcher) -> Iterator[np.ndarray]:
    """The clip's frames at fps_out (repeating or dropping frames as needed), in batches."""
    out: list[np.ndarray] = []
    j = 0  # next output frame index
    i = 0  # index of the source frame being considered
    batch = sizes()
    for frames in read_frames(path, 1):
        for frame in frames:
            # source frame i covers [i/fps_in, (i+1)/fps_in); emit every output frame whose time falls in it
            while j / fps_out < (i + 1) / fps_in:
                out.append(frame)
                j += 1
                if len(out) >= batch:
                    yield np.stack(out)
                    out = []
                    batch = sizes()
            i += 1
    if out:
        yield np.stack(out)


class Captions:
    """Caption overlays along the timeline, drawn when first shown: one cue's overlay in memory at a time."""

    def __init__(self, timeline: list[tuple[float, float, str]], width: int, height: int, dev: str) -> None:
        self.timeline, self.width, self.height, self.dev = timeline, width, height, dev
        self._index = -1
        self._overlay: Any = None

    def at(self, t: float) -> Any:
        """The RGBA overlay (4, H, W) float on the device for time t, or None between or after cues."""
        import torch

        for i, (t0, t1, text) in enumerate(self.timeline):
            if t0 <= t < t1:
                if i != self._index:
                    rgba = caption_overlay(text, self.width, self.height).copy()
                    self._overlay = torch.from_numpy(rgba).to(self.dev).permute(2, 0, 1).float().div_(255)
                    self._index = i
                return self._overlay
        return None


def compose_track(clips: list[Path], infos: list[VideoInfo], audio: Path | None, wav: Path) -> float:
    """Write the composed audio to wav: the given track, else each clip's own (silence where a clip has
    none), aligned to its video. Returns its duration in seconds."""
    rate = 44_100
    if audio is not None:
        track = load_audio(audio, rate)
    else:
        parts = []
        for c, info in zip(clips, infos, strict=True):
            length = round(info.frames / info.fps * rate)
            a = load_audio(c, rate) if info.has_audio else np.zeros(0, np.float32)
            parts.append(np.pad(a[:length], (0, max(0, length - len(a)))))
        track = np.concatenate(parts)
    write_wav(wav, np.clip(track * 32767, -32768, 32767).astype(np.int16), rate)
    return len(track) / rate


def compose_builtin(
    clips: list[Path], audio: Path | None, subtitles: str | None, tmp: Path, out: Path, report: Reporter
) -> float:
    infos = [probe(c) for c in clips]
    w, h, fps = even(infos[0].width), even(infos[0].height), infos[0].fps
    video_s = sum(i.frames / i.fps for i in infos)
    total_frames = sum(max(1, round(i.frames / i.fps * fps)) for i in infos)
    wav = tmp / "track.wav"
    audio_s = compose_track(clips, infos, audio, wav)
    hold = max(0, math.ceil((audio_s - video_s) * fps))  # hold the last frame while the audio goes on
    n_out = total_frames + hold
    dev = device.torch_device()
    captions = Captions(cues(subtitles, n_out / fps) if subtitles else [], w, h, dev)
    sizes = batcher(w, h)
    written = 0
    last = None

    def burn(x: Any, first: int) -> Any:
        for k in range(len(x)):
            overlay = captions.at((first + k) / fps)
            if overlay is not None:
                x[k] = x[k] * (1 - overlay[3:4]) + overlay[:3] * overlay[3:4]
        return x

    with VideoWriter(out, w, h, fps, audio=wav) as writer:
        for c, info in zip(clips, infos, strict=True):
            for frames in clip_frames(c, info.fps, fps, sizes):
                report.check()
                x = burn(fit_into(to_tensor(frames, dev), w, h), written)
                writer.write(from_tensor(x))
                sizes.done(len(x))
                last = x[-1:]
                written += len(x)
                report(min(0.98, written / n_out), f"frame {written}/{n_out}")
        while written < n_out and last is not None:
            report.check()
            k = min(sizes(), n_out - written)
            x = burn(last.repeat(k, 1, 1, 1), written)
            writer.write(from_tensor(x))
            sizes.done(k)
            written += k
            report(min(0.98, written / n_out), f"frame {written}/{n_out}")
    return written / fps


@service(
    "video.compose",
    planes=["gpu"],
    description=(
        "Joins video `clips` in order into one MP4 (the first clip sets size and frame rate); `audio` "
        "replaces their sound; `subtitles` (e.g. a script's narration) are burnt in as timed captions."
    ),
    params=ComposeParams,
    inputs={"clips": "video", "audio": "audio", "subtitles": "text"},
    outputs={"video": "video"},
    gpu=True,
    duration_s=20.0,
    memory_mb=1500,
    features=(CostFeature(name="bytes", of=["params.clips"], typical=3e6),),
    retry=RetryPolicy(max_attempts=2, backoff_s=2.0),
    timeout_s=3600,
    probe=probe_ffmpeg,
    offers=(
        Offer(deliverable="voiceover", does="put a voice-over or a soundtrack on a video", output="video",
              base="clips", needs=["audio"],
              cues=[r"(?:add|put|record|lay|do) (?:an? |the |my )?(?:\w+ )?voice[- ]?over|voice[- ]?over "
                    r"(?:on|for|to|over) (?:the|this|my|that|these|an?) (?:video|clip|footage|film)|narrat\w* "
                    r"(?:over|on) (?:the|this|my|that) (?:video|clip|footage)|dub|dubbed|dubbing|soundtrack|"
                    r"sound ?track|"
                    r"background (?:music|audio|sound|song)|(?:add|put|use|replace|swap|lay) (?:the |this |my |an? )?"
                    r"(?:new )?(?:audio|sound|music|song|recording|narration|voice)|as (?:the |its )?(?:audio|sound|"
                    r"soundtrack|background)"]),
        Offer(deliverable="join", does="join clips into one video", output="video", base="clips",
              cues=[r"join|joins|merge|combine|concatenate|stitch|splice|(?:add|put|stick|glue|cut|edit) [^.]{0,40}"
                    r"together|"
                    r"one after (?:the )?other|back[- ]to[- ]back"]),
    ),
    attachable={"clips": Attachable(role="the videos to join or to put sound on"),
                "audio": Attachable(role="the soundtrack")},
    version="2",  # 2: outputs carry their checks
    checks=measure.video_checker("video", mouth=False),
    measures=("duration_s", "audio_stream", "still_s"),
)
async def compose(ctx: TaskContext, p: ComposeParams) -> dict[str, Any]:
    async with scratch(ctx) as tmp:
        clips = [await fetch(ctx, c, tmp, f"clip{i}") for i, c in enumerate(p.clips)]
        audio = await fetch(ctx, p.audio, tmp, "audio") if p.audio is not None else None
        out = tmp / "composed.mp4"
        await ctx.progress(0.01, f"composing {len(clips)} clip(s)")
        duration = await in_thread(compose_builtin, clips, audio, p.subtitles, tmp, out, Reporter(ctx))
        video = await ctx.put_artifact("composed.mp4", out, "video/mp4")
    await ctx.progress(1.0, duration_text(duration))
    return {"video": video}
