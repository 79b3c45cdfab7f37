"""Seconds of media produced per second of compute: video.animate_portrait and video.upscale.

    .venv/bin/python bench/gpu_tasks.py [--sizes 512 1024] [--seconds 4] [--methods lanczos bicubic]

Runs the services' handlers as an executor would (a TaskContext on a LocalStore in a temporary
directory; inputs fetched, outputs encoded to H.264 + AAC and stored), on CUDA when torch sees one,
else on the CPU. Inputs: eSpeak speech of about --seconds, a portrait of each size; upscale takes the
talking video of that size and makes it 2x (512 -> 1024, 1024 -> 2048). Prints a markdown table:
wall seconds, frames per second and the real-time factor (media seconds / compute seconds; >1 is
faster than real time).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from executors.gpu import device, espeak, upscale, video  # noqa: E402
from executors.gpu.image import draw_portrait  # noqa: E402
from executors.gpu.media import write_wav  # noqa: E402
from spinbot.artifacts import LocalStore  # noqa: E402
from spinbot.settings import Settings  # noqa: E402
from spinbot.task import TaskContext  # noqa: E402

TEXT = (
    "Solar panels turn sunlight into electricity. Each cell is a thin layer of silicon. "
    "When light hits it, electrons start to move, and moving electrons are a current. "
    "An inverter turns that current into the power your home uses every day."
)


def speech(seconds: float, dest: Path) -> Path:
    """eSpeak speech trimmed to `seconds` (repeating the text if it is shorter)."""
    import numpy as np

    rate = espeak.load().sample_rate
    samples = espeak.synthesize(TEXT, voice="en+f3", wpm=160)
    while len(samples) < seconds * rate:
        samples = np.concatenate([samples, samples])
    return write_wav(dest, samples[: int(seconds * rate)], rate)


class Bench:
    def __init__(self, root: Path) -> None:
        self.store = LocalStore(root / "artifacts")
        self.settings = Settings(data_dir=root / "data")
        self.root = root
        self.n = 0

    def ctx(self) -> TaskContext:
        async def emit(kind: str, data: dict[str, Any]) -> None:
            pass

        self.n += 1
        return TaskContext(
            job_id="bench", node_id=f"n{self.n}", attempt=1, settings=self.settings, store=self.store, emit=emit,
            workdir=self.root / "work",
        )  # fmt: skip

    async def put(self, path: Path) -> dict[str, Any]:
        return (await self.store.put_file(f"inputs/{path.name}", path)).descriptor()

    async def timed(self, fn: Any, params: Any) -> tuple[dict[str, Any], float]:
        started = time.perf_counter()
        out = await fn.handler(self.ctx(), params)
        return out, time.perf_counter() - started


async def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="spinbot-bench-") as tmp:
        b = Bench(Path(tmp))
        wav = await b.put(speech(args.seconds, Path(tmp) / "speech.wav"))
        for size in args.sizes:
            png = Path(tmp) / f"portrait{size}.png"
            draw_portrait("a friendly woman presenter", None, size, size, device.torch_device()).save(png)
            img = await b.put(png)
            params = video.AnimateParams(image=img, audio=wav, fps=args.fps, size=size)
            out, wall = await b.timed(video.animate_portrait, params)
            media_s, frames = out["duration_s"], out["frames"]
            rows.append(dict(task="animate_portrait", input=f"{size}x{size}", output=f"{size}x{size}",
                             frames=frames, media_s=media_s, wall_s=wall))  # fmt: skip
            print(f"animate {size}: {wall:.1f} s", file=sys.stderr)
            for method in args.methods:
                up, wall = await b.timed(
                    upscale.upscale, upscale.UpscaleParams(video=out["video"], factor=2, method=method)
                )
                rows.append(dict(task=f"upscale 2x {method}", input=f"{size}x{size}", output=f"{2 * size}x{2 * size}",
                                 frames=frames, media_s=media_s, wall_s=wall))  # fmt: skip
                print(f"upscale {method} {size}: {wall:.1f} s", file=sys.stderr)
            device.free_memory()
    return rows


def table(rows: list[dict[str, Any]], dev: dict[str, Any]) -> str:
    lines = [
        f"device: {dev['name']} ({dev['kind']}), torch {dev['torch']}",
        "",
        "| task | input | output | frames | media s | wall s | frames/s | media s per compute s |",
        "|---|---|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['task']} | {r['input']} | {r['output']} | {r['frames']} | {r['media_s']:.2f} | {r['wall_s']:.2f} "
            f"| {r['frames'] / r['wall_s']:.1f} | {r['media_s'] / r['wall_s']:.3f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[512, 1024])
    parser.add_argument("--seconds", type=float, default=4.0, help="length of the speech / video")
    parser.add_argument("--fps", type=int, default=25)
    parser.add_argument("--methods", nargs="+", default=["lanczos", "bicubic"], choices=["lanczos", "bicubic"])
    args = parser.parse_args()
    dev = device.detect()
    rows = asyncio.run(run(args))
    print(table(rows, dev))


if __name__ == "__main__":
    main()
