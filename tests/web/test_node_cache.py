"""The node cache in real runs: a follow-up re-runs only what changed and what depends on it (issue 15).

Real API, real executors (in process), real Redis and Postgres: a talking head is run, then run again
with only the voice changed, then run again unchanged, then by another key.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from conversation.answers import reused_nodes
from conversation.views import artifacts_in_graph
from tests.web.conftest import LiveAPI, read_sse


def talking_head(voice: str, *, metadata: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "schema": "langgraph.v1", "workflowId": "talk", "metadata": metadata or {},
        "nodes": [
            {"id": "face", "service": "image.render", "plane": "gpu",
             "params": {"prompt": "a smiling presenter, green background", "width": 128, "height": 128}},
            {"id": "say", "service": "tts.synthesize", "plane": "gpu",
             "params": {"text": "Tides follow the moon.", "voice": voice}},
            {"id": "talk", "service": "video.animate_portrait", "plane": "gpu",
             "params": {"image": {"$node": "face", "output": "image"}, "audio": {"$node": "say", "output": "audio"},
                        "size": 128, "fps": 10}},
        ],
        "edges": [{"from": "face", "to": "talk"}, {"from": "say", "to": "talk"}],
    }


async def run(c: httpx.AsyncClient, graph: dict[str, Any]) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """Submit, wait, and return the job and each node's completed event."""
    r = await c.post("/api/jobs", json={"graph": graph})
    assert r.status_code == 202, r.text
    job_id = r.json()["id"]
    for _ in range(1200):
        job = (await c.get(f"/api/jobs/{job_id}")).json()
        if job["status"] in ("completed", "failed", "cancelled"):
            break
        await asyncio.sleep(0.1)
    assert job["status"] == "completed", job.get("error")
    async with c.stream("GET", f"/api/jobs/{job_id}/events") as r:  # replayed from the start, ends with the job
        events = await read_sse(r)
    done = {e["data"]["node"]: e["data"] for e in events
            if e["event"] == "node" and e["data"].get("status") == "completed"}
    return job, done


def reused(done: dict[str, dict[str, Any]]) -> set[str]:
    return {n for n, d in done.items() if d.get("reused")}


async def test_a_voice_change_reruns_only_the_speech_and_what_depends_on_it(api: LiveAPI, executors: Any) -> None:
    async with api.client() as c:
        first, done1 = await run(c, talking_head("female"))
        assert reused(done1) == set() and set(done1) == {"face", "say", "talk"}
        assert done1["say"]["device"] == "test"  # what the learned estimates are kept per (spinbot/history.py)

        second, done2 = await run(c, talking_head("male"))
        assert reused(done2) == {"face"}  # the portrait is reused; the speech and the video are made again
        assert done2["face"]["reused"]["job"] == first["id"]
        face1 = {n["id"]: n for n in first["graph"]["nodes"]}["face"]["output"]["image"]
        face2 = {n["id"]: n for n in second["graph"]["nodes"]}["face"]["output"]["image"]
        assert face2["key"] == face1["key"] and face2["sha256"] == face1["sha256"]
        say1 = {n["id"]: n for n in first["graph"]["nodes"]}["say"]["output"]["audio"]
        say2 = {n["id"]: n for n in second["graph"]["nodes"]}["say"]["output"]["audio"]
        assert say2["sha256"] != say1["sha256"]

        third, done3 = await run(c, talking_head("female"))
        assert reused(done3) == {"face", "say", "talk"}
        # what the answers say is reused (conversation.answers.reused_nodes, from where the artifacts live) is what the
        # node cache reused
        for job, done in ((first, done1), (second, done2), (third, done3)):
            assert reused_nodes(artifacts_in_graph(job["graph"]), job["id"]) == reused(done)

        opted_out, done4 = await run(c, talking_head("female", metadata={"cache": False}))
        assert reused(done4) == set()


async def test_a_deleted_artifact_is_recomputed(api: LiveAPI, executors: Any) -> None:
    async with api.client() as c:
        first, _ = await run(c, talking_head("female"))
        image = {n["id"]: n for n in first["graph"]["nodes"]}["face"]["output"]["image"]
        (api.services.artifacts.root / image["key"]).unlink()  # the local store keeps objects as files
        _, done = await run(c, talking_head("male"))
        assert "face" not in reused(done)  # its artifact is gone: made again, not a broken reference
