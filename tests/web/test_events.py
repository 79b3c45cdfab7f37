"""Job event streams: a client that drops mid-job resumes with Last-Event-ID and misses nothing."""

from __future__ import annotations

import asyncio
from typing import Any

from spinbot import constants as C
from spinbot.graph import Graph
from tests.web.conftest import LiveAPI, diag_graph, read_sse, wait_node


async def test_resume_with_last_event_id_is_complete_and_ordered(api: LiveAPI, executors, redis) -> None:
    graph = diag_graph(wait_node("w1", 1.0, steps=8), wait_node("w2", 0.6, steps=6, plane="gpu"))
    graph["edges"] = [{"from": "w1", "to": "w2"}]
    async with api.client() as c:
        job_id = (await c.post("/api/jobs", json={"graph": graph})).json()["id"]
        async with c.stream("GET", f"/api/jobs/{job_id}/events") as resp:
            first = await read_sse(resp, stop_after=5)  # then the connection drops mid-job
        assert len(first) == 5 and first[-1]["data"].get("status") != "completed"
        await asyncio.sleep(0.4)  # events keep coming while nobody listens
        async with c.stream("GET", f"/api/jobs/{job_id}/events",
                            headers={"Last-Event-ID": first[-1]["id"]}) as resp:
            rest = await read_sse(resp)
    seen = [e["id"] for e in first + rest]
    stored = [eid for eid, _ in await redis.xrange(C.job_events_key(job_id))]
    assert seen == stored  # complete, in order, nothing repeated
    assert rest[-1]["event"] == "job" and rest[-1]["data"]["status"] == "completed"
    assert {e["event"] for e in first + rest} >= {"job", "node", "progress"}


async def test_finished_job_replays_everything_then_closes(api: LiveAPI, executors, redis) -> None:
    graph = diag_graph(wait_node("w", 0.2, steps=2))
    async with api.client() as c:
        job_id = (await c.post("/api/jobs", json={"graph": graph})).json()["id"]
        async with c.stream("GET", f"/api/jobs/{job_id}/events") as resp:
            live = await read_sse(resp)
        async with c.stream("GET", f"/api/jobs/{job_id}/events", params={"after": live[1]["id"]}) as resp:
            replay = await read_sse(resp)
    assert [e["id"] for e in replay] == [e["id"] for e in live[2:]]


async def test_job_detail_lists_its_last_events_from_redis_then_from_postgres(api: LiveAPI, executors, redis) -> None:
    """GET /api/jobs/ID: the job's last events, oldest first, from its Redis stream (JobQueue.recent_events); once
    Redis no longer holds the stream, the same events from Postgres."""
    graph = diag_graph(wait_node("w", 0.2, steps=2))
    async with api.client() as c:
        job_id = (await c.post("/api/jobs", json={"graph": graph})).json()["id"]
        async with c.stream("GET", f"/api/jobs/{job_id}/events") as resp:
            live = await read_sse(resp)
        shown = (await c.get(f"/api/jobs/{job_id}")).json()["events"]
        assert [e["id"] for e in shown] == [e["id"] for e in live]
        assert shown[-1]["type"] == "job" and shown[-1]["data"]["status"] == "completed"
        await api.services.queue.sync_store(job_id)  # every event in the record (the executors' sync may lag)
        await redis.delete(C.job_events_key(job_id))
        archived = (await c.get(f"/api/jobs/{job_id}")).json()["events"]
    assert [e["id"] for e in archived] == [e["id"] for e in live]


async def test_many_streams_share_one_reader(api: LiveAPI, executors) -> None:
    graph = diag_graph(wait_node("w", 0.5, steps=5))
    async with api.client() as c:
        job_id = (await c.post("/api/jobs", json={"graph": graph})).json()["id"]

        async def one() -> list[str]:
            async with c.stream("GET", f"/api/jobs/{job_id}/events") as resp:
                return [e["id"] for e in await read_sse(resp)]

        results = await asyncio.gather(*(one() for _ in range(10)))
    assert all(r == results[0] for r in results) and len(results[0]) >= 7
    assert api.services.queue.hub.jobs == 0  # every subscription was released


async def test_pings_and_clean_close_at_shutdown(api_settings, redis) -> None:
    from tests.web.conftest import serve
    from web.app import close_streams

    async with serve(api_settings.model_copy(update={"sse_ping_s": 0.2})) as api, api.client() as c:
        graph = Graph.model_validate(diag_graph(wait_node("w", 1.0)))
        job_id = await api.services.queue.submit(graph, owner="local")  # no executor: the stream stays idle
        async with c.stream("GET", f"/api/jobs/{job_id}/events") as resp:
            lines: list[str] = []
            async for line in resp.aiter_lines():
                lines.append(line)
                if sum(ln.startswith(": ping") for ln in lines) >= 2:
                    close_streams(api.services)  # what SIGTERM does: the body ends, no error
            assert lines[0].startswith("id: ") and any(ln.startswith(": ping") for ln in lines)
        for _ in range(100):  # the server lets go of the stream's slot once the response has ended
            if api.services.open_streams == set() and api.services.streams.held == {}:
                break
            await asyncio.sleep(0.02)
        assert api.services.open_streams == set() and api.services.streams.held == {}


async def test_events_redis_no_longer_holds_are_replayed_from_postgres(api: LiveAPI, executors, redis, store) -> None:
    graph = diag_graph(wait_node("w1", 0.3, steps=4), wait_node("w2", 0.3, steps=4, plane="gpu"))
    graph["edges"] = [{"from": "w1", "to": "w2"}]
    async with api.client() as c:
        job_id = (await c.post("/api/jobs", json={"graph": graph})).json()["id"]
        async with c.stream("GET", f"/api/jobs/{job_id}/events") as resp:
            live = await read_sse(resp)
        ids = [e["id"] for e in live]
        for _ in range(200):  # the record in Postgres catches up just after the finish
            if len(await store.events_between(job_id, "0-0", None)) == len(ids):
                break
            await asyncio.sleep(0.02)
        await redis.xtrim(C.job_events_key(job_id), maxlen=3)  # Redis keeps only the last three
        async with c.stream("GET", f"/api/jobs/{job_id}/events") as resp:
            from_start = await read_sse(resp)
        async with c.stream("GET", f"/api/jobs/{job_id}/events", headers={"Last-Event-ID": ids[2]}) as resp:
            resumed = await read_sse(resp)
        await redis.delete(C.job_events_key(job_id))  # pruned from Redis altogether
        async with c.stream("GET", f"/api/jobs/{job_id}/events", params={"after": ids[-4]}) as resp:
            pruned = await read_sse(resp)
    assert [e["id"] for e in from_start] == ids and from_start[-1]["data"]["status"] == "completed"
    assert [e["id"] for e in resumed] == ids[3:]
    assert [e["id"] for e in pruned] == ids[-3:]


async def test_an_open_stream_costs_two_tasks_and_a_client_leaving_frees_it_at_once(api: LiveAPI, redis) -> None:
    n = 10
    graph = Graph.model_validate(diag_graph(wait_node("w", 1.0)))
    jobs = [await api.services.queue.submit(graph, owner="local") for _ in range(n)]  # no executor: idle streams
    opened, leave = asyncio.Semaphore(0), asyncio.Event()

    async def one(c: Any, job_id: str) -> None:
        async with c.stream("GET", f"/api/jobs/{job_id}/events") as resp:
            lines = resp.aiter_lines()  # kept: an iterator left to the garbage collector closes the connection
            async for line in lines:
                if line.startswith("data:"):
                    assert '"queued"' in line
                    break
            opened.release()
            await leave.wait()  # then the client goes away mid-stream

    async with api.client() as c:
        await c.get("/health")  # the client's connection pool and the server warmed up
        before = len(asyncio.all_tasks())
        clients = [asyncio.create_task(one(c, j)) for j in jobs]
        for _ in jobs:
            await asyncio.wait_for(opened.acquire(), 30)
        # Per stream: the test's own task, the server's request task, one watching the client (sse-starlette's
        # task group ran three beside the request's); and the hub's reader of these jobs (one shard).
        assert len(asyncio.all_tasks()) - before <= 3 * n + 1
        assert len(api.services.open_streams) == n and api.services.queue.hub.jobs == n
        leave.set()
        await asyncio.gather(*clients)
        for _ in range(100):
            if not api.services.open_streams and not api.services.streams.held and api.services.queue.hub.jobs == 0:
                break
            await asyncio.sleep(0.02)
    assert api.services.open_streams == set() and api.services.streams.held == {} and api.services.queue.hub.jobs == 0
