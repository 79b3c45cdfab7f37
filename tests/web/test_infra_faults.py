"""The API during Redis and Postgres faults: 503 + Retry-After meanwhile, healthy again after (issue 22,
items 1, 2, 4, 5, 6)."""

from __future__ import annotations

import asyncio
import time
from urllib.parse import urlsplit

import httpx
import pytest
import redis.asyncio as aioredis

from conversation.services import build_services
from spinbot.redis_setup import UnsafeSetup
from spinbot.settings import Settings
from tests.faults import TcpProxy, locked, redis_policy, redis_refusing_writes
from tests.harness import InProcess
from tests.web.conftest import LiveAPI, diag_graph, echo_node, read_sse, serve, wait_node

ROUTES = ("/api/jobs", "/api/conversations", "/api/profiles")


def assert_503(r: httpx.Response, code: str) -> None:
    assert r.status_code == 503, (r.request.url, r.status_code, r.text)
    assert int(r.headers["retry-after"]) > 0
    body = r.json()
    assert body["code"] == code and "this is a bug" not in r.text and body["hint"], body


async def test_postgres_going_away_answers_503_and_heals(api_settings: Settings, database_url: str) -> None:
    target = urlsplit(database_url)
    proxy = await TcpProxy(target.hostname or "127.0.0.1", target.port or 5432).start()
    settings = api_settings.model_copy(update={"database_url": proxy.url_for(database_url),
                                               "pg_acquire_timeout_s": 2.0})
    async with serve(settings) as api, api.client() as c:
        for path in ROUTES:
            assert (await c.get(path)).status_code == 200
        await proxy.stop()  # Postgres restarting: open connections reset, new ones refused
        for path in ROUTES:
            assert_503(await c.get(path), "postgres_unavailable")
        assert_503(await c.post("/api/jobs", json={"graph": diag_graph(echo_node("a"))}), "postgres_unavailable")
        health = await c.get("/health")
        assert health.status_code == 503 and health.json()["checks"]["postgres"]["ok"] is False
        await proxy.start()
        for path in ROUTES:
            assert (await c.get(path)).status_code == 200, path
        assert (await c.get("/health")).json()["checks"]["postgres"]["ok"] is True
    await proxy.stop()


async def test_a_locked_table_answers_503_quickly_and_health_notices(api_settings: Settings,
                                                                    database_url: str) -> None:
    settings = api_settings.model_copy(update={"pg_lock_timeout_s": 0.5})
    async with serve(settings) as api, api.client() as c, locked(database_url, "jobs"):
        t0 = time.monotonic()
        r = await c.get("/api/jobs")
        took = time.monotonic() - t0
        health = await c.get("/health")
    assert_503(r, "postgres_unavailable")
    assert took < 5, took  # the lock_timeout (0.5 s) and some load, not the lock's holder
    pg = health.json()["checks"]["postgres"]
    assert health.status_code == 503 and pg["ok"] is False and "table jobs is locked" in pg["error"], pg


async def test_an_exhausted_pool_answers_503_and_unrelated_routes_stay_responsive(
        api_settings: Settings, database_url: str) -> None:
    settings = api_settings.model_copy(update={"pg_pool_size": 3, "pg_acquire_timeout_s": 1.0,
                                               "pg_lock_timeout_s": 30.0})
    async with serve(settings) as api, api.client() as c, locked(database_url, "jobs"):
        blocked = [asyncio.create_task(c.get("/api/jobs")) for _ in range(6)]  # they hold the whole pool
        await asyncio.sleep(0.5)
        t0 = time.monotonic()
        others = await asyncio.gather(*(c.get(p) for p in ("/api/conversations", "/api/profiles")))
        took = time.monotonic() - t0
        health = await c.get("/health")
        for t in blocked:
            t.cancel()
        await asyncio.gather(*blocked, return_exceptions=True)
    for r in others:
        assert_503(r, "postgres_busy")
        assert "no Postgres connection came free within 1 s" in r.json()["detail"]
    assert took < 5, took  # the acquire timeout (1 s) and some load, not the 30 s lock wait
    pg = health.json()["checks"]["postgres"]
    assert health.status_code == 503 and "no Postgres connection came free" in pg["error"], pg


async def test_health_is_ready_again_after_redis_refused_writes(api: LiveAPI, executors: InProcess,
                                                               redis: aioredis.Redis) -> None:
    async with api.client() as c:
        assert (await c.get("/health", params={"ready": 1})).status_code == 200
        async with redis_refusing_writes(redis):
            assert_503(await c.post("/api/jobs", json={"graph": diag_graph(echo_node("a"))}), "redis_unavailable")
            await asyncio.sleep(6)  # longer than a live manifest's TTL: both expired meanwhile
            assert (await c.get("/health", params={"ready": 1})).status_code == 503
        deadline = time.monotonic() + 5
        while (ready := await c.get("/health", params={"ready": 1})).status_code != 200:
            assert time.monotonic() < deadline, ready.json()
            await asyncio.sleep(0.2)
        job = await c.post("/api/jobs", json={"graph": diag_graph(echo_node("a"))})
        assert job.status_code == 202, job.text


async def test_health_warns_about_an_evicting_redis_and_fails_it_in_production(
        api_settings: Settings, redis: aioredis.Redis) -> None:
    async with redis_policy(redis, "volatile-lru"):
        async with serve(api_settings) as api, api.client() as c:
            body = (await c.get("/health")).json()
        assert body["status"] == "degraded" and "maxmemory-policy is volatile-lru" in body["warnings"][0]
        assert body["checks"]["redis"]["ok"] is True and body["checks"]["redis"]["maxmemory_policy"] == "volatile-lru"
        production = api_settings.model_copy(update={"production": True})
        with pytest.raises(UnsafeSetup, match="the API refuses to start: Redis' maxmemory-policy is volatile-lru"):
            await build_services(production)
        async with serve(api_settings) as api, api.client() as c:
            api.services.settings = production  # the policy changed after a start in production mode
            health = await c.get("/health")
        assert health.status_code == 503 and health.json()["checks"]["redis"]["ok"] is False


async def test_event_streams_resume_after_redis_refused_writes(api: LiveAPI, executors: InProcess,
                                                              redis: aioredis.Redis) -> None:
    async with api.client() as c:
        job = (await c.post("/api/jobs", json={"graph": diag_graph(wait_node("w", 1.5, steps=3))})).json()["id"]

        async def follow() -> list[dict]:  # type: ignore[type-arg]
            async with c.stream("GET", f"/api/jobs/{job}/events") as resp:
                return await read_sse(resp)

        async with redis_refusing_writes(redis):
            # the first watcher starts the event hub's reader while Redis refuses its wake-up stream's write
            watcher = asyncio.create_task(follow())
            await asyncio.sleep(2)
        events = await asyncio.wait_for(watcher, 20)
    assert events[-1]["event"] == "job" and events[-1]["data"]["status"] == "completed", events[-3:]


async def test_a_chat_turn_on_a_locked_table_ends_quickly_saying_retry(api_settings: Settings,
                                                                      database_url: str) -> None:
    settings = api_settings.model_copy(update={"pg_lock_timeout_s": 0.5})
    async with serve(settings) as api, api.client() as c, locked(database_url, "conversations"):
        t0 = time.monotonic()
        async with c.stream("POST", "/api/chat", json={"message": "make a quick echo test"}) as resp:
            assert resp.status_code == 200
            events = await read_sse(resp)
        took = time.monotonic() - t0
    assert took < 5, took  # not until the lock's holder lets go
    [error] = [e["data"] for e in events if e["event"] == "error"]
    assert error["code"] == "postgres_unavailable" and error["status"] == 503, error
    answer = "".join(e["data"]["delta"] for e in events if e["event"] == "message")
    assert "I could not do that now: Postgres is unavailable" in answer and "retry in 5 s" in answer
