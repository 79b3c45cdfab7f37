"""spinbot.loops.forever survives every error of a step; spinbot.errors.outage names the part that failed."""

from __future__ import annotations

import asyncio
import logging

import asyncpg
import pytest
import redis.asyncio as aioredis
import redis.exceptions

from spinbot.backoff import Backoff
from spinbot.errors import PoolTimeout, TransientError, classify, outage
from spinbot.loops import LoopHealth, forever


async def test_a_loop_survives_any_error_and_goes_on(caplog: pytest.LogCaptureFixture) -> None:
    errors: list[BaseException] = [
        redis.exceptions.OutOfMemoryError("OOM command not allowed when used memory > 'maxmemory'."),
        redis.exceptions.ReadOnlyError("READONLY You can't write against a read only replica."),
        asyncpg.exceptions.AdminShutdownError("terminating connection due to administrator command"),
        ConnectionRefusedError(111, "Connect call failed"),
        KeyError("a bug"),
    ]
    calls = 0
    done = asyncio.Event()
    health = LoopHealth("test")

    async def step() -> None:
        nonlocal calls
        calls += 1
        if errors:
            raise errors.pop(0)
        if calls >= 8:
            done.set()

    caplog.set_level(logging.WARNING, logger="spinbot.loops")
    task = asyncio.create_task(forever(step, name="test loop", backoff=Backoff(0.001, 0.002), health=health))
    await asyncio.wait_for(done.wait(), 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert calls >= 8 and health.failures == 0 and health.last_ok is not None
    messages = [r.getMessage() for r in caplog.records]
    assert any("redis unavailable (OutOfMemoryError" in m for m in messages)
    assert any("redis unavailable (ReadOnlyError" in m for m in messages)
    assert any("postgres unavailable (AdminShutdownError" in m for m in messages)
    assert any("test loop failed" in m for m in messages)  # a bug: logged with its traceback, still goes on
    assert any("works again after 5 failed tries" in m for m in messages)


async def test_a_loop_stops_when_told() -> None:
    stop = asyncio.Event()
    calls = 0

    async def step() -> None:
        nonlocal calls
        calls += 1
        if calls == 3:
            stop.set()

    await asyncio.wait_for(forever(step, name="t", every_s=0.001, stop=stop), 5)
    assert calls == 3


async def test_outage_names_the_part_and_nothing_else(redis_url: str) -> None:
    pg = [asyncpg.exceptions.ConnectionDoesNotExistError("closed"), asyncpg.exceptions.CannotConnectNowError("x"),
          asyncpg.exceptions.TooManyConnectionsError("x"), asyncpg.exceptions.QueryCanceledError("timeout"),
          asyncpg.exceptions.LockNotAvailableError("lock"), asyncpg.exceptions.DeadlockDetectedError("x"),
          PoolTimeout("busy")]
    rd = [redis.exceptions.ConnectionError("x"), redis.exceptions.TimeoutError("x"),
          redis.exceptions.BusyLoadingError("x"), redis.exceptions.ResponseError("MISCONF errors writing to disk")]
    assert {outage(e) for e in pg} == {"postgres"}
    assert {outage(e) for e in rd} == {"redis"}
    assert [outage(e) for e in (KeyError("k"), ValueError("v"), OSError("disk full"), TimeoutError(),
                                redis.exceptions.ResponseError("WRONGTYPE"),
                                asyncpg.exceptions.UniqueViolationError("dup"))] == [None] * 6
    assert outage(ExceptionGroup("g", [ValueError(), asyncpg.exceptions.AdminShutdownError("x")])) == "postgres"
    # A bare OSError counts by where it was raised: a refused connection inside the client library.
    with pytest.raises(Exception) as refused:
        await asyncpg.connect("postgresql://u@127.0.0.1:9/db", timeout=2)
    assert outage(refused.value) == "postgres", repr(refused.value)
    client = aioredis.Redis.from_url("redis://127.0.0.1:9/0")
    with pytest.raises(Exception) as down:
        await client.ping()
    await client.aclose()
    assert outage(down.value) == "redis"
    assert isinstance(classify(refused.value), TransientError)
