"""Many writers on one Postgres record: one lock order (no deadlocks), and conflicts run again."""

from __future__ import annotations

import asyncio
import json
import logging

import asyncpg
import pytest
import redis.asyncio as aioredis

from spinbot.queue import JobQueue
from spinbot.store import Store, in_transaction
from tests.runtime.conftest import graph

GRAPH = {
    "schema": "langgraph.v1", "workflowId": "w", "context": {"goal": "g"},
    "nodes": [{"id": "a", "service": "diag.echo", "plane": "control"}],
}


def _conflict_retries(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "spinbot.backoff"]


async def test_overlapping_snapshot_batches_in_opposite_orders_never_deadlock(
        store: Store, caplog: pytest.LogCaptureFixture) -> None:
    """Two executors' record writers flush batches over the same jobs, one in the reverse order of the
    other (what made 4 deadlocks in 4 scale-out runs): rows are locked in one order, so none is aborted."""
    caplog.set_level(logging.WARNING, logger="spinbot.backoff")
    jobs = [f"j{i:03d}" for i in range(400)]
    for j in jobs:
        await store.create_job(j, "alice", GRAPH)

    async def writer(order: list[str], first_version: int) -> None:
        for round_ in range(10):
            v = first_version + 2 * round_
            await store.record_snapshots([(j, v, "running", "gpu", 0.5, json.dumps(GRAPH) if v % 3 == 0 else None)
                                          for j in order])

    await asyncio.gather(writer(jobs, 1), writer(jobs[::-1], 2))
    assert _conflict_retries(caplog) == []
    versions = {r["version"] for r in await store.pool.fetch("SELECT version FROM jobs")}
    assert versions == {20}


async def test_a_deadlocked_transaction_is_run_again(store: Store, caplog: pytest.LogCaptureFixture) -> None:
    """Two transactions lock two rows in opposite orders: Postgres aborts one (40P01); in_transaction runs
    it again and both commit."""
    caplog.set_level(logging.WARNING, logger="spinbot.backoff")
    for j in ("a", "b"):
        await store.create_job(j, "alice", GRAPH)
    both_hold_one = asyncio.Barrier(2)
    runs: list[str] = []

    def transfer(first: str, second: str) -> object:
        async def work(conn: asyncpg.Connection) -> None:
            runs.append(first)
            await conn.execute("UPDATE jobs SET progress=progress+0.1 WHERE id=$1", first)
            if runs.count(first) == 1:  # only the first try meets the other one halfway
                await both_hold_one.wait()
            await conn.execute("UPDATE jobs SET progress=progress+0.1 WHERE id=$1", second)

        return work

    await asyncio.wait_for(asyncio.gather(
        in_transaction(store.pool, transfer("a", "b"), what="a then b"),  # type: ignore[arg-type]
        in_transaction(store.pool, transfer("b", "a"), what="b then a"),  # type: ignore[arg-type]
    ), 20)
    assert len(runs) == 3  # one of them ran twice
    assert any("deadlock" in m for m in _conflict_retries(caplog))
    progress = {r["id"]: r["progress"] for r in await store.pool.fetch("SELECT id, progress FROM jobs")}
    assert progress == {"a": pytest.approx(0.2), "b": pytest.approx(0.2)}


async def test_other_errors_are_not_run_again(store: Store) -> None:
    tries = 0

    async def work(conn: asyncpg.Connection) -> None:
        nonlocal tries
        tries += 1
        await conn.execute("SELECT 1/0")

    with pytest.raises(asyncpg.DivisionByZeroError):
        await in_transaction(store.pool, work, what="a division by zero")
    assert tries == 1


async def test_cancels_while_writers_move_the_same_jobs_all_land_in_postgres(
        redis: aioredis.Redis, store: Store, caplog: pytest.LogCaptureFixture) -> None:
    """Queued jobs cancelled through the API's path (Redis first, then the Postgres record) while an
    executor's writer moves the same rows: every cancel answers, no row stays queued or running."""
    caplog.set_level(logging.WARNING, logger="spinbot.backoff")
    q = JobQueue(redis, store)
    await q.ensure_groups()
    ids = [await q.submit(graph([{"id": "a", "service": "diag.echo", "plane": "control"}]), owner="alice")
           for _ in range(30)]

    async def writer() -> None:
        for _ in range(3):  # the version the cancel writes too (a writer does not get ahead of the record)
            await store.record_snapshots([(j, 1, "running", "control", 0.1, None) for j in reversed(ids)])

    results = await asyncio.gather(writer(), *(q.cancel(j) for j in ids))
    assert results[1:] == [True] * len(ids)
    rows = await store.pool.fetch("SELECT status FROM jobs WHERE id = ANY($1)", ids)
    assert sorted(r["status"] for r in rows) == ["cancelled"] * len(ids)
    assert _conflict_retries(caplog) == []


async def test_a_cancel_answers_from_redis_when_postgres_cannot_be_written(
        redis: aioredis.Redis, database_url: str, caplog: pytest.LogCaptureFixture) -> None:
    """The record is written after Redis; when that fails the cancel still succeeds (the sweep writes it)."""
    broken = await Store.connect(database_url)
    q = JobQueue(redis, broken)
    await q.ensure_groups()
    job = await q.submit(graph([{"id": "a", "service": "diag.echo", "plane": "control"}]), owner="alice")
    await broken.close()  # every Postgres call now raises InterfaceError
    assert await q.cancel(job) is True
    state = await q.get(job)
    assert state is not None and state.status == "cancelled"
    assert any("reconciliation sweep writes it" in r.getMessage() for r in caplog.records)
