"""No API key can make a job read another key's objects: refused at the API, and again by the executor."""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

from conversation.auth import owner_of
from spinbot.artifacts import ArtifactNotFound, LocalStore, OwnedStore
from spinbot.graph import Graph
from spinbot.settings import Settings
from tests.web.conftest import LiveAPI, diag_graph, serve

ALPHA, BETA = "alpha-key-123", "beta-key-456"


def png() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (64, 64), (200, 120, 40)).save(buf, "PNG")
    return buf.getvalue()


@pytest.fixture
async def keyed(api_settings: Settings) -> AsyncIterator[LiveAPI]:
    async with serve(api_settings.model_copy(update={"api_keys": [ALPHA, BETA]})) as live:
        yield live


async def upload(client: httpx.AsyncClient) -> str:
    r = await client.post("/api/uploads", files={"files": ("face.png", png(), "image/png")})
    assert r.status_code == 201, r.text
    return str(r.json()["items"][0]["key"])


async def finished(client: httpx.AsyncClient, job_id: str, wait_s: float = 60) -> dict[str, Any]:
    for _ in range(int(wait_s * 10)):
        job = (await client.get(f"/api/jobs/{job_id}")).json()
        if job["status"] in ("completed", "failed", "cancelled"):
            return job  # type: ignore[no-any-return]
        await asyncio.sleep(0.1)
    raise AssertionError(f"job {job_id} did not finish")


def portrait_graph(key: str) -> dict[str, Any]:
    """The field report's input, verbatim: a talking head from an attachment that names `key`."""
    return {"schema": "langgraph.v1", "workflowId": "x",
            "context": {"attachments": [{"id": "f", "kind": "image", "key": key}]},
            "nodes": [{"id": "t", "service": "tts.synthesize", "plane": "gpu", "params": {"text": "hi"}},
                      {"id": "v", "service": "video.animate_portrait", "plane": "gpu",
                       "params": {"image": {"$attachment": "f"}, "audio": {"$node": "t", "output": "audio"}}}]}


def publish_graph(*items: Any) -> dict[str, Any]:
    return diag_graph({"id": "p", "service": "artifact.publish", "plane": "control", "params": {"items": list(items)}})


async def test_a_graph_naming_another_keys_object_is_refused_on_every_path(keyed: LiveAPI, executors) -> None:
    async with keyed.client(ALPHA) as a, keyed.client(BETA) as b:
        theirs = await upload(b)
        descriptor = {"key": theirs, "contentType": "image/png", "size": 1, "sha256": ""}
        attempts: list[tuple[str, dict[str, Any], str | None]] = [
            # the field report's input
            ("/api/jobs", {"graph": portrait_graph(theirs)}, "context.attachments[0].key"),
            # the same key as a literal param: a descriptor, a bare key, inside a list, in publish items
            ("/api/jobs", {"graph": publish_graph(descriptor)}, "nodes[0].params.items[0].key"),
            ("/api/jobs", {"graph": publish_graph("ok", theirs)}, "nodes[0].params.items[1]"),
            ("/api/jobs", {"graph": diag_graph({"id": "e", "service": "diag.echo", "plane": "control",
                                                "params": {"text": theirs}})}, "nodes[0].params.text"),
            # attachments by key on the paths that take them
            ("/api/pipelines/sadtalker/runs", {"params": {"text": "hi"}, "attachments": [{"key": theirs}]}, None),
            ("/api/plan", {"goal": "animate this face", "attachments": [{"key": theirs}]}, None),
            ("/api/chat", {"message": "animate this face", "attachments": [{"key": theirs}]}, None),
        ]
        for path, body, field in attempts:
            r = await a.post(path, json=body)
            assert r.status_code == 404, (path, body, r.status_code, r.text)
            problem = r.json()
            assert problem["code"] == "not_found" and theirs in problem["detail"], problem
            if field is not None:
                assert problem["field"] == field, problem
        # A node handed in as already completed, with the object as its output: the evaluator refuses it.
        r = await a.post("/api/jobs", json={"graph": diag_graph(
            {"id": "d", "service": "diag.echo", "plane": "control", "params": {"text": "x"},
             "status": "completed", "output": {"data": descriptor}},
            {"id": "p", "service": "artifact.publish", "plane": "control",
             "params": {"items": [{"$node": "d", "output": "data"}]}})})
        assert r.status_code == 422 and r.json()["code"] == "graph_refused", r.text
        # A job's own artifact is another object kind: another key cannot name it either.
        job = (await b.post("/api/jobs", json={"graph": diag_graph(
            {"id": "t", "service": "tts.synthesize", "plane": "gpu", "params": {"text": "hi"}})}))
        assert job.status_code == 202, job.text
        assert (await a.get("/api/jobs")).json()["items"] == []
        made = f"jobs/{job.json()['id']}/t/speech.wav"
        r = await a.post("/api/jobs", json={"graph": publish_graph({"key": made, "contentType": "audio/wav"})})
        assert r.status_code == 404 and r.json()["field"] == "nodes[0].params.items[0].key", r.text
        # Nothing was queued for the refused graphs.
        assert (await a.get("/api/jobs")).json()["items"] == []


async def test_own_objects_still_work(keyed: LiveAPI, executors) -> None:
    async with keyed.client(ALPHA) as a:
        mine = await upload(a)
        r = await a.post("/api/jobs", json={"graph": publish_graph({"key": mine, "contentType": "image/png"})})
        assert r.status_code == 202, r.text
        job = await finished(a, r.json()["id"])
        assert job["status"] == "completed", job
        # An artifact of an earlier job of the same key, named by a later job: allowed by the API and the executor.
        first = (await a.post("/api/jobs", json={"graph": diag_graph(
            {"id": "t", "service": "tts.synthesize", "plane": "gpu", "params": {"text": "hi"}})})).json()["id"]
        assert (await finished(a, first))["status"] == "completed"
        made = {"key": f"jobs/{first}/t/speech.wav", "contentType": "audio/wav"}
        r = await a.post("/api/jobs", json={"graph": publish_graph(made)})
        assert r.status_code == 202, r.text
        job = await finished(a, r.json()["id"])
        assert job["status"] == "completed", job


async def test_the_executor_refuses_a_foreign_key_that_got_past_the_api(keyed: LiveAPI, executors) -> None:
    """Defence in depth: a job enqueued without the API's check still cannot read another key's object."""
    async with keyed.client(ALPHA) as a, keyed.client(BETA) as b:
        theirs = await upload(b)
        for graph in (publish_graph({"key": theirs, "contentType": "image/png"}), portrait_graph(theirs)):
            job_id = await keyed.services.queue.submit(Graph.model_validate(graph), owner=owner_of(ALPHA))
            job = await finished(a, job_id, wait_s=90)
            assert job["status"] == "failed", job
            failed = [n for n in job["graph"]["nodes"] if n["status"] == "failed"]
            assert failed and failed[0]["error"]["code"] == "artifact_not_found", failed
            assert "same API key" in failed[0]["error"]["hint"], failed


async def test_owned_store_reads_only_the_owners_prefixes_or_recorded_objects(tmp_path: Path) -> None:
    inner = LocalStore(tmp_path)
    src = tmp_path / "src.bin"
    src.write_bytes(b"x")
    for key in ("uploads/me/a1/f.png", "uploads/you/a2/f.png", "jobs/j1/n/out.wav", "jobs/j2/n/out.wav",
                "jobs/j3/n/out.wav"):
        await inner.put_file(key, src)
    recorded = {"jobs/j2/n/out.wav": "me", "jobs/j3/n/out.wav": "you"}

    async def owner_of_key(key: str) -> str | None:
        return recorded.get(key)

    store = OwnedStore(inner, owner="me", job_id="j1", owner_of=owner_of_key)
    for key in ("uploads/me/a1/f.png", "jobs/j1/n/out.wav", "jobs/j2/n/out.wav"):
        assert (await store.stat(key)).size == 1
        assert (await store.get_file(key, tmp_path / "dest")).read_bytes() == b"x"
    for key in ("uploads/you/a2/f.png", "jobs/j3/n/out.wav", "uploads/me/../you/a2/f.png", "nowhere/x"):
        with pytest.raises(ArtifactNotFound):
            await store.stat(key)
        with pytest.raises(ArtifactNotFound):
            await store.get_file(key, tmp_path / "dest")
        with pytest.raises(ArtifactNotFound):
            async for _ in store.stream(key):
                pass
    with pytest.raises(Exception, match="may only write under jobs/j1/"):
        await store.put_file("uploads/you/a2/f.png", src)
    # Without a Postgres record (no store), only the prefixes pass.
    bare = OwnedStore(inner, owner="me", job_id="j1", owner_of=None)
    with pytest.raises(ArtifactNotFound):
        await bare.stat("jobs/j2/n/out.wav")
