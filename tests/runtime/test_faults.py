"""Executors heal by themselves after Redis or Postgres faults, mean "claiming" when they say "live", check
Redis' eviction policy, and leave their consumer group (issue 22, items 1-3)."""

from __future__ import annotations

import asyncio
import time

import asyncpg
import pytest
import redis.asyncio as aioredis
from redis.exceptions import OutOfMemoryError

from executors import upkeep
from executors.core import Executor
from executors.manifests import registry
from spinbot import capabilities
from spinbot import constants as C
from spinbot.artifacts import LocalStore
from spinbot.queue import JobQueue
from spinbot.redis_setup import UnsafeSetup
from spinbot.settings import Settings
from spinbot.store import Store
from tests.faults import redis_policy, redis_refusing_writes
from tests.harness import InProcess
from tests.runtime.conftest import graph, wait_terminal


async def live_planes(redis: aioredis.Redis) -> dict[str, int]:
    out: dict[str, int] = {}
    for m in await capabilities.live_manifests(redis):
        out[m.plane] = out.get(m.plane, 0) + 1
    return out


async def until(check, timeout: float, what: str) -> float:  # noqa: ANN001, ASYNC109
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if await check():
            return time.monotonic() - t0
        await asyncio.sleep(0.1)
    raise AssertionError(f"not within {timeout} s: {what}")


def running_loops(ex: Executor) -> list[str]:
    return sorted(name for name, t in ex.loops.items() if not t.done())


async def test_every_loop_survives_redis_refusing_writes(inproc: InProcess, queue: JobQueue,
                                                         redis: aioredis.Redis) -> None:
    await inproc.both()
    await inproc.ready()
    await inproc.published()
    loops = {ex.plane: running_loops(ex) for ex in inproc.executors}
    assert loops["control"] == ["cancel-listener", "claim", "claims-heartbeat", "manifest", "postgres-writer",
                                "reconcile", "reprobe"]
    ttl = capabilities.ttl_for(inproc.settings.heartbeat_s)
    async with redis_refusing_writes(redis):
        with pytest.raises(OutOfMemoryError):
            await queue.submit(graph([{"id": "a", "service": "diag.echo", "plane": "control",
                                       "params": {"text": "x"}}]), owner="t")
        await asyncio.sleep(ttl + 1)  # every heartbeat failed meanwhile: the manifests expired
        assert await live_planes(redis) == {}
    # Writes are accepted again: the loops that failed all along are still there and work again.
    assert {ex.plane: running_loops(ex) for ex in inproc.executors} == loops
    took = await until(lambda: _both_live(redis), ttl, "both executors' live manifests back")
    job = await queue.submit(graph([{"id": "a", "service": "diag.echo", "plane": "control", "params": {"text": "x"}},
                                    {"id": "b", "service": "diag.echo", "plane": "gpu", "params": {"text": "y"}}],
                                   [("a", "b")]), owner="t")
    assert (await wait_terminal(queue, job, 20)).status == "completed"
    assert took < inproc.settings.heartbeat_s + 2


async def _both_live(redis: aioredis.Redis) -> bool:
    return await live_planes(redis) == {"control": 1, "gpu": 1}


async def test_record_writer_survives_postgres_dropping_its_connections(inproc: InProcess, queue: JobQueue,
                                                                        store: Store, database_url: str) -> None:
    await inproc.both()
    await inproc.ready()
    admin = await asyncpg.connect(database_url)
    try:
        job = await queue.submit(graph([{"id": "a", "service": "diag.wait", "plane": "control",
                                         "params": {"seconds": 1.0, "steps": 4}}]), owner="t")
        await asyncio.sleep(0.3)
        # what a Postgres restart does to every open connection (57P01, admin shutdown)
        killed = await admin.fetchval("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                                      "WHERE datname = current_database() AND pid <> pg_backend_pid()")
        assert killed >= 1
        assert (await wait_terminal(queue, job, 20)).status == "completed"
        await until(lambda: _recorded(store, job), 15, "the job's end recorded in Postgres")
    finally:
        await admin.close()
    assert all(not t.done() for ex in inproc.executors for t in ex.loops.values())


async def _recorded(store: Store, job_id: str) -> bool:
    row = await store.get_job(job_id)
    return row is not None and row["status"] == "completed"


async def test_live_means_claiming_a_stuck_claim_loop_lets_the_manifest_expire(
        inproc: InProcess, redis: aioredis.Redis) -> None:
    ex = await inproc.start("control")
    await inproc.ready()
    await inproc.published()
    release = asyncio.Event()
    real = ex.consumer.claim_new

    async def stuck(count: int, block_ms: int) -> list:  # type: ignore[type-arg]
        await release.wait()  # a read that never returns (a half-open connection, a wedged client)
        return await real(count, block_ms)

    ex.consumer.claim_new = stuck  # type: ignore[method-assign]
    ttl = capabilities.ttl_for(inproc.settings.heartbeat_s)
    gone = await until(lambda: _none_live(redis), ttl * 1.5 + 2, "the stuck executor's manifest expiring")
    assert gone > 1  # it was live before the claim loop stalled
    release.set()
    await until(lambda: _one_live(redis), ttl, "the manifest back once the claim loop turns again")


async def _none_live(redis: aioredis.Redis) -> bool:
    return await live_planes(redis) == {}


async def _one_live(redis: aioredis.Redis) -> bool:
    return await live_planes(redis) == {"control": 1}


async def test_an_evicting_redis_is_refused_in_production_mode_and_a_warning_otherwise(
        settings: Settings, redis: aioredis.Redis, caplog: pytest.LogCaptureFixture) -> None:
    def executor(production: bool) -> Executor:
        s = settings.model_copy(update={"production": production})
        return Executor(s, "control", registry("control"), redis, None, LocalStore(s.artifacts_dir))

    async with redis_policy(redis, "allkeys-lru"):
        with pytest.raises(UnsafeSetup, match="maxmemory-policy is allkeys-lru"):
            await asyncio.wait_for(executor(True).run(), 10)
        ex = executor(False)
        task = asyncio.create_task(ex.run())
        await asyncio.wait_for(ex.started.wait(), 10)
        ex.stop()
        await task
    assert any("maxmemory-policy is allkeys-lru" in r.getMessage() and r.levelname == "ERROR"
               for r in caplog.records)


async def consumers(redis: aioredis.Redis, plane: str) -> dict[str, int]:
    return {c["name"]: int(c["pending"]) for c in await redis.xinfo_consumers(C.plane_stream(plane), C.GROUP)}


async def test_a_cleanly_stopped_executor_leaves_its_consumer_group(inproc: InProcess, redis: aioredis.Redis) -> None:
    for _ in range(3):
        ex = await inproc.start("control")
        await asyncio.wait_for(ex.started.wait(), 10)
        await until(lambda ex=ex: _has_consumer(redis, ex.id), 5, "the consumer joined")
        ex.stop()
        await inproc.tasks[-1]
        assert await consumers(redis, "control") == {}


async def _has_consumer(redis: aioredis.Redis, name: str) -> bool:
    return name in await consumers(redis, "control")


async def test_the_sweep_removes_idle_consumers_without_pending_entries(settings: Settings, redis: aioredis.Redis,
                                                                        store: Store, queue: JobQueue) -> None:
    stream = C.plane_stream("control")
    await redis.xreadgroup(C.GROUP, "crashed-idle", {stream: ">"}, count=1)  # joined, holds nothing
    await redis.xadd(stream, {"job": "not-a-job"})
    await redis.xreadgroup(C.GROUP, "crashed-holding", {stream: ">"}, count=1)  # holds an entry
    quick = settings.model_copy(update={"claim_idle_ms": 20})  # consumers idle > 200 ms count as gone
    ex = Executor(quick, "control", registry("control"), redis, store, LocalStore(quick.artifacts_dir))
    await asyncio.sleep(upkeep.consumer_idle_ms(quick.claim_idle_ms) / 1000 + 0.1)
    await upkeep.reconcile_once(ex)
    # the holding one stays: deleting it would drop its pending entry, which autoclaim hands to a live executor
    assert await consumers(redis, "control") == {"crashed-holding": 1}
