"""video.upscale: 2x or 4x, Lanczos with sharpening folded into polyphase filters, or bicubic; the audio is kept."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, Field

from executors.gpu import device, measure
from executors.gpu.common import ArtifactInput, Reporter, fetch, in_thread, off_loop, scratch
from executors.gpu.media import VideoWriter, even, from_tensor, probe, probe_ffmpeg, read_frames, to_tensor
from executors.gpu.video import batcher
from spinbot.checks import Check
from spinbot.manifest import Attachable, CostFeature, Offer, RetryPolicy
from spinbot.registry import service
from spinbot.task import TaskContext


class UpscaleParams(BaseModel):
    video: ArtifactInput
    factor: Literal[2, 4] = 2
    method: Literal["bicubic", "lanczos"] = Field(default="lanczos", description="lanczos adds an unsharp mask")


def lanczos_taps(factor: int, a: int = 3) -> np.ndarray:
    """Polyphase Lanczos-a filters: row p weights input offsets -a..a for output sub-pixel p."""
    offsets = np.arange(-a, a + 1, dtype=np.float64)
    rows = []
    for p in range(factor):
        x = (p + 0.5) / factor - 0.5 - offsets
        w = np.sinc(x) * np.sinc(x / a) * (np.abs(x) < a)
        rows.append(w / w.sum())
    return np.stack(rows).astype(np.float32)


def sharpened_taps(taps: np.ndarray, sigma: float, amount: float) -> np.ndarray:
    """The polyphase filters followed by a 1-D unsharp mask at the output rate, folded into one filter
    per phase: one pass per axis instead of an upscale pass plus two blur passes."""
    factor, k = taps.shape
    half = k // 2
    # output-rate impulse response: output m = i*f + p reads input i + d with taps[p, d + half]
    h: dict[int, float] = {}
    for p in range(factor):
        for d in range(-half, half + 1):
            h[p - d * factor] = float(taps[p, d + half])
    r = max(1, int(2 * sigma))
    g = np.exp(-(np.arange(-r, r + 1) ** 2) / (2 * sigma * sigma))
    sharpen = -amount * g / g.sum()
    sharpen[r] += 1 + amount
    c: dict[int, float] = {}
    for t, w in h.items():
        for j, s in enumerate(sharpen):
            c[t + j - r] = c.get(t + j - r, 0.0) + w * s
    reach = half + (r + factor - 1) // factor
    out = np.zeros((factor, 2 * reach + 1), dtype=np.float64)
    for p in range(factor):
        for d in range(-reach, reach + 1):
            out[p, d + reach] = c.get(p - d * factor, 0.0)
        out[p] /= out[p].sum()
    return out.astype(np.float32)


def polyphase(x: Any, taps: Any, axis: int) -> Any:
    """Filter (N, C, H, W) along H (axis=2) or W (axis=3) with `factor` phase filters, interleaving
    the phases: an upscale by taps.shape[0]. k in-place broadcast multiply-adds; no im2col copy, no
    transposes, no temporaries: what makes it fast on a CPU."""
    import torch

    n, c, h, w = x.shape
    factor, k = taps.shape
    pad = k // 2
    if axis == 3:
        xp = torch.nn.functional.pad(x, (pad, pad, 0, 0), mode="replicate").unsqueeze(-1)  # (n, c, h, w+2p, 1)
        out = torch.zeros(n, c, h, w, factor, device=x.device, dtype=x.dtype)
        for j in range(k):
            out.addcmul_(xp[:, :, :, j : j + w], taps[:, j])
        return out.reshape(n, c, h, w * factor)
    xp = torch.nn.functional.pad(x, (0, 0, pad, pad), mode="replicate").unsqueeze(3)  # (n, c, h+2p, 1, w)
    out = torch.zeros(n, c, h, factor, w, device=x.device, dtype=x.dtype)
    col = taps.t().unsqueeze(-1)  # (k, factor, 1)
    for j in range(k):
        out.addcmul_(xp[:, :, j : j + h], col[j])
    return out.reshape(n, c, h * factor, w)


def upscale_frames(x: Any, factor: int, method: str) -> Any:
    import torch

    if method == "bicubic":
        return torch.nn.functional.interpolate(x, scale_factor=factor, mode="bicubic", align_corners=False).clamp(0, 1)
    taps = torch.from_numpy(sharpened_taps(lanczos_taps(factor), sigma=0.5 * factor, amount=0.6)).to(x.device)
    return polyphase(polyphase(x, taps, 3), taps, 2).clamp_(0, 1)


def upscale_builtin(src: Path, out: Path, factor: int, method: str, report: Reporter) -> tuple[int, int, int]:
    info = probe(src)
    w, h = even(info.width * factor), even(info.height * factor)
    dev = device.torch_device()
    sizes = batcher(w, h, most=16)
    done = 0
    with VideoWriter(out, w, h, info.fps, audio=src if info.has_audio else None, audio_copy=True) as writer:
        for frames in read_frames(src, sizes):
            report.check()
            y = upscale_frames(to_tensor(frames, dev), factor, method)[:, :, :h, :w]
            writer.write(from_tensor(y))
            sizes.done(len(frames))
            done += len(frames)
            report(min(0.98, done / max(1, info.frames)), f"frame {done}/{info.frames}")
    return w, h, done


async def check_upscale(ctx: TaskContext, p: UpscaleParams, out: dict[str, Any]) -> list[Check]:
    """The upscaled video's size against the source's times the factor, its length, audio and stillness."""
    async with scratch(ctx) as tmp:
        source = await fetch(ctx, p.video, tmp, "source")
        made = await fetch(ctx, out["video"], tmp, "upscaled")
        return await off_loop(measure.upscale_checks, source, made, p.factor)


@service(
    "video.upscale",
    planes=["gpu"],
    description="Upscales a video 2x or 4x (Lanczos with sharpening, or bicubic); the audio is kept.",
    params=UpscaleParams,
    inputs={"video": "video"},
    outputs={"video": "video"},
    gpu=True,
    duration_s=30.0,
    memory_mb=2000,
    features=(CostFeature(name="video bytes x factor^2", of=["params.video", "params.factor", "params.factor"],
                          typical=12e6),),
    retry=RetryPolicy(max_attempts=2, backoff_s=2.0),
    timeout_s=3600,
    probe=probe_ffmpeg,
    offers=(Offer(deliverable="upscale", does="upscale a video 2x or 4x", output="video", base="video",
                  cues=[r"upscale|upscaled|upscaling|enhance|sharpen|sharper|(?:higher|increase the|more) resolution|"
                        r"hi-?res|super[- ]resolution|[24] ?x|4k|hd|(?:improve|better) (?:the )?(?:video )?quality|"
                        r"(?:upgrad|increas|improv|rais|boost)\w* (?:the )?(?:video )?resolution|"
                        r"resolution (?:\w+ ){0,4}(?:upgraded|increased|improved|raised|boosted)"]),),
    attachable={"video": Attachable(role="the video to upscale")},
    version="2",  # 2: outputs carry their checks
    checks=check_upscale,
    measures=("size", "duration_s", "audio_stream", "still_s"),
)
async def upscale(ctx: TaskContext, p: UpscaleParams) -> dict[str, Any]:
    async with scratch(ctx) as tmp:
        src = await fetch(ctx, p.video, tmp, "source")
        out = tmp / "upscaled.mp4"
        await ctx.progress(0.01, f"upscaling {p.factor}x ({p.method})")
        w, h, n = await in_thread(upscale_builtin, src, out, p.factor, p.method, Reporter(ctx))
        video = await ctx.put_artifact(f"upscaled_x{p.factor}.mp4", out, "video/mp4")
    await ctx.progress(1.0, f"{n} frames at {w}x{h}")
    return {"video": video}
