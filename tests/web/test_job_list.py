"""GET /api/jobs shows each job's live status and progress (Redis), one round trip per page."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from conversation.views import with_live
from spinbot import constants as C
from tests.harness import InProcess
from tests.web.conftest import LiveAPI, diag_graph, echo_node, wait_node


async def test_a_running_job_is_listed_running_with_its_progress(api: LiveAPI, executors: InProcess) -> None:
    async with api.client() as c:
        r = await c.post("/api/jobs", json={"graph": diag_graph(wait_node("w", 4.0, steps=20))})
        assert r.status_code == 202, r.text
        job_id = r.json()["id"]
        listed: dict[str, Any] = {}
        for _ in range(150):
            listed = (await c.get("/api/jobs")).json()["items"][0]
            if listed["status"] == "running" and listed["progress"] > 0:
                break
            await asyncio.sleep(0.05)
        detail = (await c.get(f"/api/jobs/{job_id}")).json()
        await c.post(f"/api/jobs/{job_id}/cancel")
    assert listed["id"] == job_id and listed["status"] == "running" and 0 < listed["progress"] < 1, listed
    assert listed["plane"] == "control" and listed["updated"] and "graph" not in listed
    assert detail["status"] == "running"


async def test_a_page_of_jobs_costs_one_redis_round_trip(
    api: LiveAPI, executors: InProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with api.client() as c:
        ids = []
        for i in range(3):
            r = await c.post("/api/jobs", json={"graph": diag_graph(echo_node("e", f"job {i}"))})
            assert r.status_code == 202, r.text
            ids.append(r.json()["id"])
        for _ in range(200):
            items = (await c.get("/api/jobs")).json()["items"]
            if all(j["status"] == "completed" for j in items):
                break
            await asyncio.sleep(0.05)
        redis = api.services.redis
        pipelines: list[Any] = []
        real = redis.pipeline

        def counting(*args: Any, **kw: Any) -> Any:
            pipe = real(*args, **kw)
            pipelines.append(pipe)
            return pipe

        monkeypatch.setattr(redis, "pipeline", counting)
        page = (await c.get("/api/jobs", params={"limit": 100})).json()
        monkeypatch.undo()
    assert [j["id"] for j in page["items"]] == ids[::-1]
    assert all(j["status"] == "completed" and j["progress"] == 1.0 for j in page["items"])
    assert len(pipelines) == 1 and not pipelines[0].is_transaction  # one round trip, not a MULTI


async def test_a_job_redis_no_longer_holds_is_listed_from_postgres(api: LiveAPI, executors: InProcess) -> None:
    async with api.client() as c:
        r = await c.post("/api/jobs", json={"graph": diag_graph(echo_node("e"))})
        job_id = r.json()["id"]
        for _ in range(200):
            if (await c.get(f"/api/jobs/{job_id}")).json()["status"] == "completed":
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.5)  # the executor's Postgres writer flushes the terminal row
        await api.services.redis.delete(C.job_key(job_id))
        assert await api.services.queue.get(job_id) is None
        listed = (await c.get("/api/jobs")).json()["items"]
    assert [(j["id"], j["status"], j["progress"]) for j in listed] == [(job_id, "completed", 1.0)]


ROW = {"id": "j", "status": "queued", "progress": 0.0, "plane": "control", "version": 3, "error": None,
       "updated": None}


@pytest.mark.parametrize(
    ("live", "expected"),
    [
        (None, ("queued", 0.0, 3)),  # no hash: the row
        ([None] * 6, ("queued", 0.0, 3)),  # HMGET of a missing key
        (["running", "0.4", "gpu", "3", "1700000000.5", ""], ("running", 0.4, 3)),  # progress between versions
        (["failed", "1.0", "", "5", "1700000001.0", '{"code": "x"}'], ("failed", 1.0, 5)),
        (["queued", "0.0", "control", "2", "1699999999.0", ""], ("queued", 0.0, 3)),  # Redis behind the row
    ],
)
def test_with_live(live: list[str | None] | None, expected: tuple[str, float, int]) -> None:
    out = with_live(dict(ROW), live)
    assert (out["status"], out["progress"], out["version"]) == expected
    if expected[0] == "failed":
        assert out["error"] == {"code": "x"} and out["plane"] is None and out["updated"]
