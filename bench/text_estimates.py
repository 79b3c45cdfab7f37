"""Plan estimates against a text's length: `python bench/text_estimates.py` prints a markdown table.

For texts of growing length (a prose paragraph cut to N characters), the talking-head steps the planner
builds (tts.synthesize, then video.animate_portrait at --size and --fps) run as an executor runs them (the
handlers on a TaskContext over a LocalStore, built-in engines: eSpeak, the OpenCV-mouth animator). Each row:
the speech the text made and the speech predicted from its characters (ServiceSpec.predicts), then each
step's plan estimate without history as it was (the declared typical size whatever the text: "typical")
and as it is (the size predicted from the text: "from text") next to the measured wall seconds. Estimates
are priors (no learned runs): their scale is the declaration's, which history corrects; what the text
changes is how they grow, so the table also gives measured / estimate per row (flat is right).
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

from bench.gpu_tasks import Bench  # noqa: E402  (handlers' contexts on a LocalStore, as there)
from evaluator import evaluate  # noqa: E402
from executors.gpu import device, tts, video  # noqa: E402
from executors.gpu.image import draw_portrait  # noqa: E402
from spinbot.capabilities import committed_manifest  # noqa: E402
from spinbot.manifest import MergedManifest  # noqa: E402

PROSE = (
    "Solar panels are made of many small cells of silicon. When sunlight strikes a cell, the light knocks "
    "electrons loose from their atoms, and the electric field built into the cell pushes those electrons in one "
    "direction, which is an electric current. Metal contacts on the top and bottom of the cell collect the "
    "current and send it through wires. An inverter then changes the direct current from the panels into the "
    "alternating current that homes and the grid use. Panels work best when they face the sun directly and stay "
    "cool and clean, and they still produce some power on cloudy days. A typical home system can cover a large "
    "share of a household's yearly use, and any extra power can be sent back to the grid."
)


def text_of(chars: int) -> str:
    """PROSE repeated and cut at a word boundary to about `chars` characters."""
    text = " ".join([PROSE] * (chars // len(PROSE) + 1))
    return text[:chars].rsplit(" ", 1)[0] + "."


def graph(text: str, size: int, fps: int) -> dict[str, Any]:
    return {"schema": "langgraph.v1", "workflowId": "bench", "nodes": [
        {"id": "voice", "service": "tts.synthesize", "plane": "gpu", "params": {"text": text}},
        {"id": "face", "service": "image.render", "plane": "gpu", "params": {"prompt": "a presenter",
                                                                           "width": size, "height": size}},
        {"id": "talk", "service": "video.animate_portrait", "plane": "gpu", "params": {
            "image": {"$node": "face", "output": "image"}, "audio": {"$node": "voice", "output": "audio"},
            "size": size, "fps": fps}}], "edges": []}


def without_predictions(manifest: MergedManifest) -> MergedManifest:
    """The manifest as it was before services declared their outputs' sizes: every estimate at typical size."""
    services = {k: s.model_copy(update={"predicts": {}}) for k, s in manifest.services.items()}
    return manifest.model_copy(update={"services": services})



    async def timed(self, fn: Any, params: Any) -> tuple[dict[str, Any], float]:
        started = time.perf_counter()
        out = await fn.handler(self.ctx(), params)
        return out, time.perf_counter() - started


async def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    manifest = committed_manifest()
    before = without_predictions(manifest)
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="spinbot-bench-") as tmp:
        b = Bench(Path(tmp))
        png = Path(tmp) / "portrait.png"
        draw_portrait("a friendly woman presenter", None, args.size, args.size, device.torch_device()).save(png)
        image = (await b.store.put_file("inputs/portrait.png", png)).descriptor()
        for chars in args.chars:
            text = text_of(chars)
            g = graph(text, args.size, args.fps)
            now, was = evaluate(g, manifest).estimate, evaluate(g, before).estimate
            assert now is not None and was is not None
            spoken, tts_s = await b.timed(tts.synthesize, tts.TTSParams(text=text))
            params = video.AnimateParams(image=image, audio=spoken["audio"], size=args.size, fps=args.fps)
            _, talk_s = await b.timed(video.animate_portrait, params)
            predicted = len(text) * manifest.services["tts.synthesize"].predicts["duration_s"].scale / 160
            rows.append(dict(chars=len(text), speech=spoken["duration_s"], predicted=predicted,
                             tts=(was.by_node["voice"], now.by_node["voice"], tts_s),
                             talk=(was.by_node["talk"], now.by_node["talk"], talk_s)))
            print(f"{len(text)} chars: speech {spoken['duration_s']:.1f} s, tts {tts_s:.1f} s, "
                  f"animate {talk_s:.1f} s", file=sys.stderr)
    return rows


def table(rows: list[dict[str, Any]], args: argparse.Namespace) -> str:
    dev = device.detect()
    lines = [f"device: {dev['name']} ({dev['kind']}); video {args.size}x{args.size} at {args.fps} fps; "
             "estimates are priors (no history)", "",
             "| characters | speech s | predicted speech s | tts est. typical / from text | tts measured s | "
             "measured / est. (typical, from text) | animate est. typical / from text | animate measured s | "
             "measured / est. (typical, from text) |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        cells = [f"{r['chars']}", f"{r['speech']:.1f}", f"{r['predicted']:.1f}"]
        for was, now, got in (r["tts"], r["talk"]):
            cells += [f"{was:.1f} / {now:.1f}", f"{got:.1f}", f"{got / was:.2f}, {got / now:.2f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--chars", type=int, nargs="+", default=[60, 300, 900])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--fps", type=int, default=12)
    args = parser.parse_args()
    rows = asyncio.run(run(args))
    print(table(rows, args))


if __name__ == "__main__":
    main()
