"""deploy/prune_redis.py drops only finished, old, fully recorded jobs; Postgres keeps serving them."""

from __future__ import annotations

import asyncio
import importlib.util
import sys
from collections.abc import AsyncIterator
from types import ModuleType

import pytest
import redis.asyncio as aioredis

from spinbot import ROOT
from spinbot import constants as C
from spinbot.queue import JobQueue
from spinbot.settings import Settings
from spinbot.store import Store
from tests.runtime.conftest import InProcess, graph, wait_terminal


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("prune_redis", ROOT / "deploy" / "prune_redis.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["prune_redis"] = module
    spec.loader.exec_module(module)
    return module


prune_redis = _load()
DAY = 86400.0


@pytest.fixture
async def running(settings: Settings, store: Store) -> AsyncIterator[InProcess]:
    runner = InProcess(settings, store)
    await runner.both()
    await runner.ready()
    yield runner
    await runner.close()


async def _finished_job(q: JobQueue, redis: aioredis.Redis, text: str) -> str:
    job_id = await q.submit(
        graph([{"id": "a", "service": "diag.echo", "plane": "control", "params": {"text": text}}]), owner="ops"
    )
    assert (await wait_terminal(q, job_id)).status == "completed"
    for _ in range(200):  # the final copy to Postgres runs right after the terminal transition
        last = await redis.xrevrange(C.job_events_key(job_id), count=1)
        if last and await redis.hget(C.job_key(job_id), "synced") == last[0][0]:
            return job_id
        await asyncio.sleep(0.02)
    raise AssertionError("events never synced to Postgres")


async def _age(redis: aioredis.Redis, job_id: str, days: float) -> None:
    created = float(await redis.zscore(C.JOBS_INDEX, job_id))  # type: ignore[arg-type]
    await redis.zadd(C.JOBS_INDEX, {job_id: created - days * DAY}, xx=True)


async def test_prunes_only_old_finished_recorded_jobs(running: InProcess, redis: aioredis.Redis, store: Store) -> None:
    q = JobQueue(redis, store)
    old, recent, unsynced = [await _finished_job(q, redis, t) for t in ("old", "recent", "unsynced")]
    busy = await q.submit(
        graph([{"id": "w", "service": "diag.wait", "plane": "gpu", "params": {"seconds": 60}}]), owner="ops"
    )
    for job_id in (old, unsynced, busy):
        await _age(redis, job_id, 10)
    await redis.hset(C.job_key(unsynced), "synced", "0-0")  # as if the copy to Postgres had not happened

    dry = await prune_redis.prune(redis, older_than_s=7 * DAY, dry_run=True)
    assert (dry.examined, dry.dropped) == (3, 1)
    assert await redis.exists(C.job_key(old), C.job_events_key(old)) == 2

    result = await prune_redis.prune(redis, older_than_s=7 * DAY)
    assert (result.examined, result.dropped) == (3, 1)
    assert await redis.exists(C.job_key(old), C.job_events_key(old)) == 0
    assert await redis.zscore(C.JOBS_INDEX, old) is None
    for kept in (recent, unsynced, busy):
        assert await redis.exists(C.job_key(kept)) == 1, kept

    row = await store.get_job(old, "ops")  # the record the API falls back to
    assert row is not None and row["status"] == "completed"
    assert [e["type"] for e in await store.events(old, limit=100)][-1] == "job"
    assert await q.cancel(busy)
