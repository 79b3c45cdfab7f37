"""Per-key limits hold across API processes: each check is one Redis operation, and heals when a process dies."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import httpx
import pytest
import redis.asyncio as aioredis

from conversation.slots import StreamSlots
from spinbot import constants as C
from spinbot.errors import Problem
from spinbot.graph import Graph
from spinbot.settings import Settings
from tests.web.conftest import LiveAPI, diag_graph, serve, wait_node


@contextlib.asynccontextmanager
async def two_apis(settings: Settings) -> AsyncIterator[tuple[LiveAPI, LiveAPI]]:
    """Two API servers (each its own Services: Redis clients, stream slots) on one Redis and Postgres."""
    async with serve(settings) as a, serve(settings) as b:
        yield a, b


async def test_ten_concurrent_jobs_on_two_apis_with_a_limit_of_four_admit_exactly_four(api_settings: Settings) -> None:
    settings = api_settings.model_copy(update={"max_jobs_per_key": 4})
    body = {"graph": diag_graph(wait_node("w", 30.0))}  # no executor: every admitted job stays unfinished
    async with two_apis(settings) as (a, b), a.client() as ca, b.client() as cb:
        replies = await asyncio.gather(*(c.post("/api/jobs", json=body) for c in [ca, cb] * 5))
        codes = sorted(r.status_code for r in replies)
        assert codes == [202] * 4 + [429] * 6, [r.text for r in replies]
        refused = next(r for r in replies if r.status_code == 429)
        assert refused.json()["code"] == "too_many_jobs" and refused.headers["Retry-After"]
        admitted = [r.json()["id"] for r in replies if r.status_code == 202]
        # refused submits leave nothing behind: no record in Redis, no row in Postgres
        rows = await a.services.store.pool.fetch("SELECT id FROM jobs")
        assert sorted(r["id"] for r in rows) == sorted(admitted)
        assert (await cb.post(f"/api/jobs/{admitted[0]}/cancel")).status_code == 200
        # a cancelled job no longer counts, whichever API cancelled it and whatever Postgres says
        again = await asyncio.gather(*(c.post("/api/jobs", json=body) for c in [ca, cb]))
        assert sorted(r.status_code for r in again) == [202, 429]


async def _open(c: httpx.AsyncClient, path: str, opened: list[httpx.Response], stop: asyncio.Event) -> int:
    async with c.stream("GET", path) as resp:
        if resp.status_code == 200:
            opened.append(resp)
            await stop.wait()
        return resp.status_code


async def test_open_streams_are_limited_across_two_apis(api_settings: Settings) -> None:
    settings = api_settings.model_copy(update={"max_streams_per_key": 3})
    async with two_apis(settings) as (a, b), a.client() as ca, b.client() as cb:
        graph = Graph.model_validate(diag_graph(wait_node("w", 30.0)))
        job = await a.services.queue.submit(graph, owner="local")  # no executor: its stream stays open
        stop = asyncio.Event()
        opened: list[httpx.Response] = []
        tasks = [asyncio.create_task(_open(c, f"/api/jobs/{job}/events", opened, stop)) for c in [ca, cb] * 4]
        for _ in range(200):
            if sum(t.done() for t in tasks) == 5 and len(opened) == 3:
                break
            await asyncio.sleep(0.05)
        assert sorted(t.result() for t in tasks if t.done()) == [429] * 5 and len(opened) == 3
        held = await a.services.redis.zcard(C.owner_streams_key("local"))
        assert held == 3
        stop.set()  # the three readers leave: their slots come back, on both APIs
        assert sorted(await asyncio.gather(*tasks)) == [200] * 3 + [429] * 5
        for _ in range(100):
            if await a.services.redis.zcard(C.owner_streams_key("local")) == 0:
                break
            await asyncio.sleep(0.05)
        assert await a.services.redis.zcard(C.owner_streams_key("local")) == 0


async def test_the_slots_of_a_process_that_died_come_back_and_live_ones_are_renewed(redis: aioredis.Redis) -> None:
    dead = StreamSlots(redis, 2, ttl_s=0.6)
    for _ in range(2):
        await dead.acquire("k")  # then the process dies: no release, no renewal
    alive = StreamSlots(redis, 2, ttl_s=0.6)
    with pytest.raises(Problem) as refused:
        await alive.acquire("k")
    assert refused.value.status == 429 and refused.value.code == "too_many_streams"
    await asyncio.sleep(0.8)
    leases = [await alive.acquire("k"), await alive.acquire("k")]
    renewal = asyncio.create_task(alive.renew_loop())
    try:
        await asyncio.sleep(1.5)  # well past the TTL: renewed, so still held
        with pytest.raises(Problem):
            await StreamSlots(redis, 2, ttl_s=0.6).acquire("k")
    finally:
        renewal.cancel()
    alive.release("k", leases[0])
    for _ in range(50):
        if await redis.zcard(C.owner_streams_key("k")) == 1:
            break
        await asyncio.sleep(0.02)
    assert await redis.zcard(C.owner_streams_key("k")) == 1
    await alive.close()
    assert await redis.zcard(C.owner_streams_key("k")) == 0

