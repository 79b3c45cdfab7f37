"""The fixed pipelines end to end on the built-in engines: real Redis, Postgres and executors; a fake Ollama."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator

import av
import numpy as np
import pytest
import redis.asyncio as aioredis

from evaluator.core import evaluate
from executors.gpu.media import load_audio
from executors.manifests import registry
from planner.pipelines import build_graph
from spinbot.artifacts import LocalStore
from spinbot.graph import Graph
from spinbot.manifest import merge
from spinbot.queue import JobQueue
from spinbot.settings import Settings
from spinbot.store import Store
from tests.fake_ollama import FakeOllama
from tests.runtime.conftest import InProcess, all_events, wait_terminal
from tests.tasks.conftest import SENTENCES, recognise, rms

NARRATION = "Bees dance to show where the flowers are."


@pytest.fixture
async def stack(
    settings: Settings, store: Store, redis: aioredis.Redis, fake_ollama: FakeOllama
) -> AsyncIterator[tuple[JobQueue, Settings]]:
    settings = settings.model_copy(update={"ollama_url": fake_ollama.url, "ollama_timeout_s": 20})
    runner = InProcess(settings, store)
    await runner.both()
    await runner.ready()
    q = JobQueue(redis, store)
    yield q, settings
    await runner.close()


def checked(graph: Graph, settings: Settings) -> Graph:
    manifest = merge([registry("control").manifest(settings), registry("gpu").manifest(settings)])
    verdict = evaluate(graph, manifest)
    assert verdict.ok, [f.model_dump() for f in verdict.findings]
    assert verdict.graph is not None
    return verdict.graph


def decode(path: str) -> tuple[int, int, int, bool]:
    with av.open(path) as c:
        v = c.streams.video[0]
        return v.codec_context.width, v.codec_context.height, sum(1 for _ in c.decode(v)), bool(c.streams.audio)


async def run(q: JobQueue, graph: Graph, name: str, wait_s: float = 100) -> dict:
    job_id = await q.submit(graph, owner="test", pipeline=name)
    st = await wait_terminal(q, job_id, timeout=wait_s)
    assert st.status == "completed", st.error
    events = await all_events(q, job_id)
    assert events[-1].type == "job" and events[-1].data["status"] == "completed"
    return st.graph


@pytest.mark.slow
async def test_sadtalker_speaks_the_text(stack: tuple[JobQueue, Settings]) -> None:
    q, settings = stack
    graph = checked(build_graph("sadtalker", {"text": NARRATION, "voice": "male"}), settings)
    done = await run(q, graph, "sadtalker")
    nodes = {n["id"]: n for n in done["nodes"]}
    summary = nodes["publish"]["output"]["summary"]
    video = summary["primary"]
    assert video["contentType"] == "video/mp4" and video["url"].startswith("/api/artifacts/jobs/")
    path = str(settings.artifacts_dir / video["key"])
    w, h, frames, has_audio = decode(path)
    seconds = nodes["voice"]["output"]["duration_s"]
    assert (w, h, has_audio) == (512, 512, True) and frames == math.ceil(seconds * 25)
    speech = load_audio(settings.artifacts_dir / video["key"], 16_000)
    assert rms(speech) > 0.03
    assert recognise(speech, SENTENCES, settings.data_dir) == NARRATION.lower().rstrip("."), (
        "the MP4's speech is not understood"
    )


async def test_sadtalker_animates_an_attached_photo(stack: tuple[JobQueue, Settings], media: dict) -> None:
    q, settings = stack
    await LocalStore(settings.artifacts_dir).put_file("uploads/test/a1/me.png", media["portrait"], "image/png")
    attachment = {"id": "photo", "kind": "image", "key": "uploads/test/a1/me.png", "contentType": "image/png"}
    graph = build_graph("sadtalker", {"text": "Hello.", "portrait": "photo"}, attachments=[attachment])
    done = await run(q, checked(graph, settings), "sadtalker")
    nodes = {n["id"]: n for n in done["nodes"]}
    assert "portrait" not in nodes, "the photo replaces the drawn portrait"
    w, h, frames, has_audio = decode(str(settings.artifacts_dir / nodes["talk"]["output"]["video"]["key"]))
    assert (w, h, has_audio) == (512, 512, True) and frames == nodes["talk"]["output"]["frames"]


@pytest.mark.slow
async def test_f5tts_infinitetalk_writes_speaks_animates_upscales(
    stack: tuple[JobQueue, Settings], fake_ollama: FakeOllama
) -> None:
    q, settings = stack
    fake_ollama.replies.append({"title": "Bee talk", "narration": NARRATION, "stage": "A woman beekeeper in a garden."})
    graph = checked(build_graph("f5tts_infinitetalk", {"topic": "how bees talk", "duration_s": 5}), settings)
    done = await run(q, graph, "f5tts_infinitetalk")
    nodes = {n["id"]: n for n in done["nodes"]}
    assert nodes["script"]["output"]["narration"] == NARRATION
    video = nodes["publish"]["output"]["summary"]["primary"]
    w, h, frames, has_audio = decode(str(settings.artifacts_dir / video["key"]))
    assert (w, h, has_audio) == (1024, 1024, True)
    assert frames == nodes["talk"]["output"]["frames"]
    speech = load_audio(settings.artifacts_dir / video["key"], 16_000)
    assert rms(speech) > 0.03 and len(speech) / 16_000 == pytest.approx(nodes["voice"]["output"]["duration_s"], abs=0.1)
    assert np.isfinite(speech).all()


@pytest.mark.slow
async def test_svd_wav2lip_burns_the_narration_in(stack: tuple[JobQueue, Settings], fake_ollama: FakeOllama) -> None:
    q, settings = stack
    fake_ollama.replies.append({"title": "Bees", "narration": NARRATION, "stage": "A man in a flower meadow."})
    graph = checked(build_graph("svd_wav2lip", {"topic": "bees", "duration_s": 5, "voice": "male"}), settings)
    done = await run(q, graph, "svd_wav2lip")
    nodes = {n["id"]: n for n in done["nodes"]}
    composed = settings.artifacts_dir / nodes["compose"]["output"]["video"]["key"]
    lipsync = settings.artifacts_dir / nodes["lipsync"]["output"]["video"]["key"]
    assert decode(str(composed))[:2] == (512, 512) and decode(str(composed))[3]
    with av.open(str(composed)) as a, av.open(str(lipsync)) as b:
        fa = next(a.decode(video=0)).to_ndarray(format="rgb24").astype(np.float32)
        fb = next(b.decode(video=0)).to_ndarray(format="rgb24").astype(np.float32)
    assert np.abs(fa[420:] - fb[420:]).mean() > 10 > np.abs(fa[:200] - fb[:200]).mean(), "no subtitles"


async def test_capabilities_pipeline(stack: tuple[JobQueue, Settings]) -> None:
    q, settings = stack
    done = await run(q, checked(build_graph("capabilities", {}), settings), "capabilities", wait_s=30)
    nodes = {n["id"]: n for n in done["nodes"]}
    manifest = nodes["manifest"]["output"]["manifest"]
    assert {"tts.synthesize", "video.animate_portrait", "llm.generate_script"} <= set(manifest["services"])
    assert manifest["planes"]["gpu"]["devices"][0]["kind"] in ("cpu", "cuda")
