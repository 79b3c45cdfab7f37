"""Task tests: a real TaskContext on a LocalStore in tmp_path; outputs are checked by decoding them."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from executors.gpu import espeak
from executors.gpu.image import draw_portrait, save_png
from executors.gpu.media import write_wav
from executors.manifests import registry
from spinbot.artifacts import LocalStore
from spinbot.graph import Plane
from spinbot.settings import Settings
from spinbot.task import TaskContext

SPEECH = "Solar panels turn sunlight into electricity. Each cell releases electrons when light hits it."


@dataclass
class Harness:
    """Builds TaskContexts that share one artifact store and record every emitted event."""

    settings: Settings
    store: LocalStore
    workroot: Path
    events: list[tuple[float, str, dict[str, Any]]] = field(default_factory=list)
    cancel: asyncio.Event = field(default_factory=asyncio.Event)

    def ctx(self, node: str = "n1", job: str = "job1", attempt: int = 1, plane: Plane | None = None) -> TaskContext:
        """With `plane`, the context an executor of that plane gives (its registry's manifest, as executors.jobrun)."""
        async def emit(kind: str, data: dict[str, Any]) -> None:
            self.events.append((time.monotonic(), kind, data))

        return TaskContext(
            job_id=job, node_id=node, attempt=attempt, settings=self.settings, store=self.store, emit=emit,
            workdir=self.workroot / node, cancel=self.cancel,
            plane_manifest=partial(registry(plane).manifest, self.settings) if plane else None,
        )  # fmt: skip

    async def put(self, path: Path, key: str | None = None) -> dict[str, Any]:
        """Store an input file as an upstream node would; returns its descriptor."""
        info = await self.store.put_file(key or f"inputs/{path.name}", path)
        return info.descriptor()

    def path(self, descriptor: dict[str, Any]) -> Path:
        return self.store.root / descriptor["key"]

    def progress(self, node: str | None = None) -> list[tuple[float, float, str]]:
        return [
            (t, d["progress"], d["message"]) for t, k, d in self.events if k == "progress" and node in (None, d["node"])
        ]

    async def settle(self) -> None:
        """Let progress reports posted from worker threads land."""
        for _ in range(5):
            await asyncio.sleep(0.01)


@pytest.fixture
def harness(tmp_path: Path) -> Harness:
    settings = Settings(data_dir=tmp_path / "data", ollama_url="http://127.0.0.1:9", comfyui_url=None, tts_url=None)
    return Harness(settings, LocalStore(tmp_path / "artifacts"), tmp_path / "work")


@pytest.fixture(scope="session")
def media(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Small inputs made once: speech with a silent second, a portrait, a short test video."""
    d = tmp_path_factory.mktemp("media")
    rate = espeak.load().sample_rate
    speech = espeak.synthesize(SPEECH, voice="en+f3", wpm=180)
    silence = np.zeros(rate, dtype=np.int16)
    write_wav(d / "speech.wav", np.concatenate([silence, speech]), rate)
    save_png(draw_portrait("a friendly woman presenter", None, 160, 160, "cpu"), d / "portrait.png")
    return {"speech": d / "speech.wav", "portrait": d / "portrait.png"}


def make_video(path: Path, width: int, height: int, frames: int, fps: int, audio: Path | None = None) -> Path:
    """A moving test pattern (H.264), with an audio track if given."""
    from executors.gpu.media import VideoWriter

    path.parent.mkdir(parents=True, exist_ok=True)
    ys, xs = np.mgrid[0:height, 0:width]
    with VideoWriter(path, width, height, fps, audio=audio) as w:
        for i in range(frames):
            frame = np.stack([(xs * 4 + i * 8) % 256, (ys * 4) % 256, np.full_like(xs, 128)], axis=-1)
            w.write(frame[None].astype(np.uint8))
    return path


def rms(samples: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(samples, dtype=np.float64)))) if samples.size else 0.0


#: Forced-choice intelligibility: the recogniser must pick the sentence that was spoken among these.
SENTENCES = [
    "solar panels turn sunlight into electricity",
    "the cat sat on the mat by the door",
    "bees dance to show where the flowers are",
    "please call me back before noon tomorrow",
    "a river flows slowly to the open sea",
    "my brother plays the guitar in a band",
    "turn left at the second traffic light",
]


def recognise(samples: np.ndarray, candidates: list[str], workdir: Path) -> str | None:
    """Which candidate PocketSphinx (its bundled en-us model, a JSGF grammar of the candidates) hears
    in 16 kHz mono float samples; None when no candidate fits. An intelligibility proxy: a recogniser
    trained on human speech must tell the spoken sentence from the others."""
    import pocketsphinx  # a test dependency (pyproject's test extra): never skipped

    grammar = workdir / "candidates.gram"
    grammar.parent.mkdir(parents=True, exist_ok=True)
    grammar.write_text("#JSGF V1.0;\ngrammar s;\npublic <s> = " + " | ".join(candidates) + ";\n")
    pad = np.zeros(4000, dtype=np.float32)  # the grammar search needs silence at both ends
    pcm = (np.clip(np.concatenate([pad, samples, pad]), -1, 1) * 32767).astype(np.int16).tobytes()
    decoder = pocketsphinx.Decoder(samprate=16000, jsgf=str(grammar), loglevel="FATAL")
    decoder.start_utt()
    decoder.process_raw(pcm, full_utt=True)
    decoder.end_utt()
    hyp = decoder.hyp()
    return hyp.hypstr if hyp else None
