"""spinbot.nodecache and its middleware (executors.nodecache) against real Postgres and a real artifact directory."""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from executors.nodecache import CacheStep, node_cache
from spinbot.artifacts import LocalStore
from spinbot.capabilities import committed_manifest
from spinbot.graph import Graph
from spinbot.nodecache import NodeCache, node_key, opted_out, plan_reuse
from spinbot.store import Store

SPECS = committed_manifest().services
TTS, PUBLISH = SPECS["tts.synthesize"], SPECS["artifact.publish"]


async def artifact(files: LocalStore, tmp_path: Path, key: str, data: bytes) -> dict[str, Any]:
    src = tmp_path / key.replace("/", "_")
    src.write_bytes(data)
    return (await files.put_file(key, src, "audio/wav")).descriptor()


def test_the_key_is_content_addressed() -> None:
    a = {"key": "jobs/j1/tts/a.wav", "sha256": "ab" * 32, "size": 3, "contentType": "audio/wav"}
    moved = {**a, "key": "jobs/j2/tts/a.wav"}
    assert node_key(TTS, {"text": "hi", "voice": "male"}) == node_key(TTS, {"voice": "male", "text": "hi"})
    assert node_key(TTS, {"text": "hi", "voice": "male"}) != node_key(TTS, {"text": "hi", "voice": "female"})
    assert node_key(PUBLISH, {"items": [a]}) == node_key(PUBLISH, {"items": [moved]})  # where it lies: no matter
    assert node_key(PUBLISH, {"items": [a]}) != node_key(PUBLISH, {"items": [{**a, "sha256": "cd" * 32}]})
    bumped = TTS.model_copy(update={"version": TTS.version + "+1"})
    assert node_key(TTS, {"text": "hi"}) != node_key(bumped, {"text": "hi"})
    assert opted_out({"cache": False}, "a") and opted_out({"cache": {"skip": ["a"]}}, "a")
    assert not opted_out({"cache": {"skip": ["b"]}}, "a") and not opted_out({}, "a")


def test_the_engine_a_service_names_is_part_of_the_key() -> None:
    """A voice approximated by eSpeak is not reused once an F5-TTS server is configured (tts names tts_url)."""
    espeak = SimpleNamespace(tts_url=None, tts_model="f5-tts")
    f5 = SimpleNamespace(tts_url="http://f5:7860", tts_model="f5-tts")
    assert TTS.engine == ["tts_url", "tts_model"]
    assert node_key(TTS, {"text": "hi"}, espeak) != node_key(TTS, {"text": "hi"}, f5)
    assert node_key(TTS, {"text": "hi"}, espeak) == node_key(TTS, {"text": "hi"}, SimpleNamespace(**vars(espeak)))
    assert node_key(PUBLISH, {"items": []}, espeak) == node_key(PUBLISH, {"items": []}, f5)  # names no engine


async def test_the_local_store_stats_without_hashing_again(tmp_path: Path) -> None:
    files = LocalStore(tmp_path / "artifacts")
    src = tmp_path / "a.wav"
    src.write_bytes(b"RIFF" * 1000)
    put = await files.put_file("jobs/j/n/a.wav", src, "audio/wav")
    stored = tmp_path / "artifacts" / "jobs/j/n/a.wav"
    assert stored.with_name("a.wav.sha256").read_text() == put.sha256  # kept beside the object at put
    stored.with_name("a.wav.sha256").write_text("recorded")
    assert (await files.stat("jobs/j/n/a.wav")).sha256 == "recorded"  # read, not recomputed


async def test_lookup_record_per_owner_and_a_deleted_artifact_is_recomputed(store: Store, tmp_path: Path) -> None:
    files = LocalStore(tmp_path / "artifacts")
    cache = NodeCache(store.pool, files)
    audio = await artifact(files, tmp_path, "jobs/j1/tts/a.wav", b"RIFF....")
    key = node_key(TTS, {"text": "hello"})
    assert await cache.lookup("alice", key) is None
    assert await cache.record("alice", key, TTS, {"audio": audio, "duration_s": 1.0}, job_id="j1", node_id="tts")
    hit = await cache.lookup("alice", key)
    assert hit is not None and hit.outputs["audio"] == audio and (hit.job_id, hit.node_id) == ("j1", "tts")
    assert await cache.lookup("bob", key) is None  # never across owners
    (tmp_path / "artifacts" / "jobs/j1/tts/a.wav").unlink()
    assert await cache.lookup("alice", key) is None  # gone: a miss, and the entry with it
    assert await store.pool.fetchval("SELECT count(*) FROM node_cache") == 0


async def test_two_jobs_filling_one_key_never_corrupt_it(store: Store) -> None:
    cache = NodeCache(store.pool)
    key = node_key(TTS, {"text": "race"})
    wins = await asyncio.gather(*(
        cache.record("alice", key, TTS, {"n": i}, job_id=f"j{i}", node_id="tts") for i in range(8)
    ))
    assert sum(wins) == 1
    hit = await cache.lookup("alice", key)
    assert hit is not None and hit.outputs == {"n": int(hit.job_id[1:])}  # one writer's whole entry


async def test_the_step_reuses_runs_and_respects_opt_outs(store: Store) -> None:
    step = CacheStep(NodeCache(store.pool))
    calls: list[str] = []

    def runner(tag: str) -> Any:
        async def run() -> dict[str, Any]:
            calls.append(tag)
            return {"text": tag}
        return run

    args = {"owner": "alice", "job_id": "j1", "node_id": "n"}
    first = await step(spec=TTS, params={"text": "x"}, metadata={}, run=runner("first"), **args)
    second = await step(spec=TTS, params={"text": "x"}, metadata={}, run=runner("second"), **args)
    assert first.reused is None and second.reused is not None and second.outputs == {"text": "first"}
    await step(spec=TTS, params={"text": "x"}, metadata={"cache": False}, run=runner("job opt-out"), **args)
    await step(spec=TTS, params={"text": "x"}, metadata={"cache": {"skip": ["n"]}}, run=runner("node opt-out"), **args)
    await step(spec=PUBLISH, params={"items": ["x"]}, metadata={}, run=runner("publish 1"), **args)
    await step(spec=PUBLISH, params={"items": ["x"]}, metadata={}, run=runner("publish 2"), **args)
    assert calls == ["first", "job opt-out", "node opt-out", "publish 1", "publish 2"]


def talking_head(voice: str) -> Graph:
    def ref(node: str, output: str) -> dict[str, str]:
        return {"$node": node, "output": output}

    return Graph.model_validate({
        "schema": "langgraph.v1", "workflowId": "w",
        "nodes": [
            {"id": "script", "service": "llm.generate_script", "plane": "control", "params": {"topic": "solar"}},
            {"id": "tts", "service": "tts.synthesize", "plane": "gpu",
             "params": {"text": ref("script", "narration"), "voice": voice}},
            {"id": "img", "service": "image.render", "plane": "gpu", "params": {"prompt": ref("script", "stage")}},
            {"id": "anim", "service": "video.animate_portrait", "plane": "gpu",
             "params": {"image": ref("img", "image"), "audio": ref("tts", "audio")}},
            {"id": "pub", "service": "artifact.publish", "plane": "control",
             "params": {"items": [ref("anim", "video")]}},
        ],
    })


async def test_a_follow_up_that_changes_the_voice_reuses_the_script_and_portrait(store: Store) -> None:
    cache = NodeCache(store.pool)
    script = {"title": "Solar", "narration": "The sun.", "stage": "a roof", "script": {}}
    image = {"image": {"key": "jobs/j1/img/p.png", "sha256": "11" * 32, "size": 9, "contentType": "image/png"}}
    audio = {"audio": {"key": "jobs/j1/tts/a.wav", "sha256": "22" * 32, "size": 9}, "duration_s": 1.0}
    first = talking_head("female")
    llm = SPECS["llm.generate_script"]
    await cache.record("alice", node_key(llm, {"topic": "solar"}), llm, script, job_id="j1", node_id="script")
    await cache.record("alice", node_key(SPECS["image.render"], {"prompt": "a roof"}), SPECS["image.render"], image,
                       job_id="j1", node_id="img")
    await cache.record("alice", node_key(TTS, {"text": "The sun.", "voice": "female"}), TTS, audio,
                       job_id="j1", node_id="tts")
    assert set(await cache.reusable("alice", first, SPECS)) == {"script", "img", "tts"}
    assert set(await cache.reusable("alice", talking_head("male"), SPECS)) == {"script", "img"}
    assert await cache.reusable("bob", first, SPECS) == {}
    reused, wanted = plan_reuse(talking_head("male"), SPECS, {})
    assert reused == {} and len(wanted) == 1  # only the script's key is known before anything is fetched


async def test_the_middleware_adapter_answers_a_second_node_from_the_cache(store: Store) -> None:
    from executors.gpu.registry import build

    service = build().get("tts.synthesize")
    logs: list[dict[str, Any]] = []

    async def emit(kind: str, data: dict[str, Any]) -> None:
        logs.append(data)

    def step(job: str) -> Any:
        node = SimpleNamespace(id="say", params={"text": "hello"})
        run = SimpleNamespace(parsed=SimpleNamespace(owner="alice"), graph=SimpleNamespace(metadata={}), job_id=job,
                              emit=emit, ex=SimpleNamespace(settings=SimpleNamespace(tts_url=None, tts_model="f5-tts")))
        return SimpleNamespace(run=run, node=node, service=service, resolved=dict(node.params))

    async def handler(s: Any) -> dict[str, Any]:
        return {"ran_in": s.run.job_id}

    mw = node_cache(CacheStep(NodeCache(store.pool)))
    assert await mw(step("j1"), handler) == {"ran_in": "j1"}
    assert await mw(step("j2"), handler) == {"ran_in": "j1"}
    assert logs == [{"node": "say", "reused": {"job": "j1", "node": "say"},
                     "message": "reused the outputs of say (job j1): same service, params and inputs"}]
