"""POST /api/jobs/{id}/retry, the recovery docs/operations.md documents: a failed or cancelled job runs again as
a new job, what completed is reused (node cache), the rest runs (issue 22, 27)."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from tests.web.conftest import LiveAPI, read_sse


def speech_then(step: dict[str, Any]) -> dict[str, Any]:
    return {"schema": "langgraph.v1", "workflowId": "retry", "nodes": [
        {"id": "say", "service": "tts.synthesize", "plane": "gpu", "params": {"text": "Tides follow the moon."}},
        step | {"id": "then"}], "edges": [{"from": "say", "to": "then"}]}


async def ended(c: httpx.AsyncClient, job_id: str) -> dict[str, Any]:
    for _ in range(600):
        job: dict[str, Any] = (await c.get(f"/api/jobs/{job_id}")).json()
        if job["status"] in ("completed", "failed", "cancelled"):
            return job
        await asyncio.sleep(0.05)
    raise AssertionError(f"job {job_id} did not end")


async def node_status(c: httpx.AsyncClient, job_id: str, node: str, want: str) -> None:
    for _ in range(600):
        graph = (await c.get(f"/api/jobs/{job_id}")).json()["graph"]
        if next(n for n in graph["nodes"] if n["id"] == node)["status"] == want:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"node {node} of job {job_id} never became {want}")


async def completed_events(c: httpx.AsyncClient, job_id: str) -> dict[str, dict[str, Any]]:
    async with c.stream("GET", f"/api/jobs/{job_id}/events") as r:
        events = await read_sse(r)
    return {e["data"]["node"]: e["data"] for e in events if e["event"] == "node" and e["data"]["status"] == "completed"}


async def test_a_cancelled_job_is_retried_reusing_what_completed(api: LiveAPI, executors: Any) -> None:
    async with api.client() as c:
        first = (await c.post("/api/jobs", json={"graph": speech_then(
            {"service": "diag.wait", "plane": "control", "params": {"seconds": 2.0, "steps": 4}})})).json()
        running = await c.post(f"/api/jobs/{first['id']}/retry")
        assert running.status_code == 409 and running.json()["code"] == "not_retryable"
        await node_status(c, first["id"], "then", "running")
        await c.post(f"/api/jobs/{first['id']}/cancel")
        assert (await ended(c, first["id"]))["status"] == "cancelled"

        r = await c.post(f"/api/jobs/{first['id']}/retry")
        assert r.status_code == 202, r.text
        retry = r.json()
        assert retry["retry_of"] == first["id"] and retry["id"] != first["id"]
        assert (retry["reused"], retry["runs"]) == (["say"], ["then"])
        job = await ended(c, retry["id"])
        assert job["status"] == "completed" and job["graph"]["metadata"]["retry"] == {"of": first["id"]}
        done = await completed_events(c, retry["id"])
        assert done["say"]["reused"]["job"] == first["id"] and "reused" not in done["then"]

        again = await c.post(f"/api/jobs/{retry['id']}/retry")  # completed: nothing to retry
        assert again.status_code == 409 and "completed" in again.json()["detail"]


async def test_a_failed_job_is_retried_and_only_the_failed_step_runs(api: LiveAPI, executors: Any) -> None:
    async with api.client() as c:
        first = (await c.post("/api/jobs", json={"graph": speech_then(
            {"service": "diag.fail", "plane": "control", "params": {"mode": "permanent"}})})).json()
        assert (await ended(c, first["id"]))["status"] == "failed"
        retry = (await c.post(f"/api/jobs/{first['id']}/retry")).json()
        assert (retry["reused"], retry["runs"]) == (["say"], ["then"])
        assert (await ended(c, retry["id"]))["status"] == "failed"  # its cause is not fixed: it fails again
        assert (await completed_events(c, retry["id"]))["say"]["reused"]["job"] == first["id"]
        other = await c.post(f"/api/jobs/{'0' * 32}/retry")
        assert other.status_code == 404
