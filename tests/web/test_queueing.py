"""A queue queues: graphs of declared services are accepted while their plane has no executor online.

Every path that admits a graph (POST /api/jobs, pipeline runs, POST /api/evaluate) follows one rule:
a declared service whose plane is offline is a `plane_offline` warning (the job starts when an
executor joins); an undeclared service stays `unknown_service`, and a live service that reports
itself unavailable stays `service_unavailable`. /health says when both planes are ready.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from spinbot.settings import Settings
from spinbot.store import Store
from tests.harness import InProcess
from tests.web.conftest import LiveAPI, diag_graph, echo_node

OFFLINE = "no {} executor online; the job starts when one joins"


@pytest.fixture
async def runner(api_settings: Settings, store: Store) -> AsyncIterator[InProcess]:
    """Executors this test starts itself, one plane at a time (none at first)."""
    r = InProcess(api_settings, store)
    yield r
    await r.close()


async def start(runner: InProcess, *planes: str) -> None:
    if not planes:
        return
    for plane in planes:
        await runner.start(plane)
    await runner.ready()
    await runner.published()


async def stop(runner: InProcess, plane: str) -> None:
    """Stop this plane's executors (their live manifests are withdrawn), as a restart begins."""
    for ex, task in zip(runner.executors, runner.tasks, strict=True):
        if ex.plane == plane:
            ex.stop()
            await asyncio.wait_for(task, 15)
    keep = [i for i, ex in enumerate(runner.executors) if ex.plane != plane]
    runner.executors = [runner.executors[i] for i in keep]
    runner.tasks = [runner.tasks[i] for i in keep]


def offline(body: dict[str, Any]) -> list[tuple[str | None, str]]:
    """(node, message) of the plane_offline warnings in an evaluation."""
    return [(f["node"], f["message"]) for f in body["findings"] if f["code"] == "plane_offline"]


async def finished(c: httpx.AsyncClient, job_id: str, within_s: float = 30.0) -> dict[str, Any]:
    """The job once it is terminal (polled: it may wait for executors that are not there yet)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within_s
    while True:
        job = (await c.get(f"/api/jobs/{job_id}")).json()
        if job["status"] in ("completed", "failed", "cancelled") or loop.time() > deadline:
            return job
        await asyncio.sleep(0.1)


async def test_a_job_posted_with_no_executor_online_waits_and_completes(api: LiveAPI, runner: InProcess) -> None:
    graph = diag_graph(echo_node("a", "control side"), echo_node("b", "gpu side", plane="gpu"))
    async with api.client() as c:
        r = await c.post("/api/jobs", json={"graph": graph})
        assert r.status_code == 202, r.text
        body = r.json()
        assert body["status"] == "queued" and body["evaluation"]["ok"] is True
        assert offline(body["evaluation"]) == [("a", OFFLINE.format("control")), ("b", OFFLINE.format("gpu"))]
        await asyncio.sleep(0.3)
        assert (await c.get(body["url"])).json()["status"] == "queued"
        await start(runner, "control", "gpu")
        job = await finished(c, body["id"])
    assert job["status"] == "completed", job
    outputs = {n["id"]: n["output"]["text"] for n in job["graph"]["nodes"]}
    assert outputs == {"a": "control side", "b": "gpu side"}


async def test_a_job_posted_while_the_gpu_plane_restarts_waits_for_it(api: LiveAPI, runner: InProcess) -> None:
    await start(runner, "control", "gpu")
    await stop(runner, "gpu")
    graph = diag_graph(echo_node("a", "first"), echo_node("b", "then gpu", plane="gpu"))
    async with api.client() as c:
        r = await c.post("/api/jobs", json={"graph": graph})
        assert r.status_code == 202, r.text
        assert offline(r.json()["evaluation"]) == [("b", OFFLINE.format("gpu"))]  # control is up: no warning for a
        for _ in range(100):  # the control part runs now; the job then waits in the gpu queue
            job = (await c.get(r.json()["url"])).json()
            if {n["id"]: n["status"] for n in job["graph"]["nodes"]}["a"] == "completed":
                break
            await asyncio.sleep(0.1)
        assert job["status"] in ("queued", "running") and job["plane"] == "gpu", job
        await start(runner, "gpu")
        job = await finished(c, r.json()["id"])
    assert job["status"] == "completed", job


async def test_a_pipeline_run_waits_for_executors(api: LiveAPI, runner: InProcess) -> None:
    async with api.client() as c:
        r = await c.post("/api/pipelines/capabilities/runs", json={"params": {}})
        assert r.status_code == 202, r.text
        assert offline(r.json()["evaluation"]) == [("gpu", OFFLINE.format("gpu")),
                                                   ("manifest", OFFLINE.format("control"))]
        await start(runner, "control", "gpu")
        job = await finished(c, r.json()["id"])
    assert job["status"] == "completed", job


async def test_evaluate_shows_the_warning(api: LiveAPI, runner: InProcess) -> None:
    graph = diag_graph(echo_node("a"), echo_node("b", plane="gpu"))
    async with api.client() as c:
        none_up = (await c.post("/api/evaluate", json={"graph": graph})).json()
        await start(runner, "control")
        control_up = (await c.post("/api/evaluate", json={"graph": graph})).json()
        await start(runner, "gpu")
        both_up = (await c.post("/api/evaluate", json={"graph": graph})).json()
    assert none_up["ok"] is True and [n for n, _ in offline(none_up)] == ["a", "b"]
    assert control_up["ok"] is True and offline(control_up) == [("b", OFFLINE.format("gpu"))]
    assert both_up["ok"] is True and both_up["findings"] == []
    assert [n["plane"] for n in graph["nodes"]] == ["control", "gpu"]


@pytest.mark.parametrize("planes", [(), ("control", "gpu")])
async def test_an_undeclared_service_is_still_unknown(api: LiveAPI, runner: InProcess, planes: tuple[str, ...]) -> None:
    await start(runner, *planes)
    graph = diag_graph(echo_node("a"), {"id": "x", "service": "shell.exec", "plane": "gpu", "params": {}})
    async with api.client() as c:
        refused = await c.post("/api/jobs", json={"graph": graph})
        verdict = (await c.post("/api/evaluate", json={"graph": graph})).json()
        listing = (await c.get("/api/jobs")).json()
    assert refused.status_code == 422 and refused.json()["code"] == "graph_refused"
    assert [(f["code"], f["node"]) for f in refused.json()["findings"] if f["severity"] == "error"] == [
        ("unknown_service", "x")]
    assert verdict["ok"] is False and "unknown_service" in {f["code"] for f in verdict["findings"]}
    assert listing["items"] == []


async def test_a_live_service_that_reports_itself_unavailable_is_refused(api: LiveAPI, runner: InProcess) -> None:
    """llm.generate_script while Ollama is down (nothing listens on the test's Ollama URL)."""
    await start(runner, "control")
    graph = diag_graph({"id": "s", "service": "llm.generate_script", "plane": "control", "params": {"topic": "tides"}})
    async with api.client() as c:
        refused = await c.post("/api/jobs", json={"graph": graph})
        verdict = (await c.post("/api/evaluate", json={"graph": graph})).json()
        pipeline = await c.post("/api/pipelines/f5tts_infinitetalk/runs", json={"params": {"topic": "tides"}})
    assert refused.status_code == 422, refused.text
    finding = next(f for f in refused.json()["findings"] if f["code"] == "service_unavailable")
    assert finding["node"] == "s" and "Ollama" in finding["message"]
    assert verdict["ok"] is False and "service_unavailable" in {f["code"] for f in verdict["findings"]}
    assert pipeline.status_code == 422, pipeline.text  # its script is written by the LLM: refused the same way
    assert ("service_unavailable", "script") in {(f["code"], f["node"]) for f in pipeline.json()["findings"]}


async def test_health_says_when_both_planes_are_ready(api: LiveAPI, runner: InProcess) -> None:
    async with api.client() as c:
        none_up, none_ready = await c.get("/health"), await c.get("/health", params={"ready": "1"})
        await start(runner, "control")
        control_ready = await c.get("/health?ready=1")
        await start(runner, "gpu")
        both_ready = await c.get("/health?ready=1")
        await stop(runner, "gpu")
        restarting = await c.get("/health?ready=true")
    assert none_up.status_code == 200 and none_up.json()["ready"] is False  # alive, not ready
    assert none_up.json()["waiting_for"] == ["control executor", "gpu executor"]
    assert none_ready.status_code == 503 and none_ready.headers["retry-after"]
    assert control_ready.status_code == 503 and control_ready.json()["waiting_for"] == ["gpu executor"]
    assert both_ready.status_code == 200 and both_ready.json()["ready"] is True
    assert both_ready.json()["waiting_for"] == []
    assert restarting.status_code == 503 and restarting.json()["planes"]["gpu"]["executors"] == []
