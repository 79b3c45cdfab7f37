"""The event hub (spinbot/queue/hub.py): stopping it ends its readers, whatever they were doing."""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio as aioredis

from spinbot.queue.hub import EventHub, _Shard


async def test_stop_ends_a_reader_whose_cancel_was_lost(redis: aioredis.Redis, monkeypatch: pytest.MonkeyPatch) -> None:
    """redis-py can lose a cancel that arrives as a blocking XREAD ends (the task stays "cancelling" and reads on,
    as 8 of 19 `spinbot submit --wait` runs did at exit): stop() cancels again until the reader has ended."""
    lost: list[bool] = []

    async def read_once_losing_the_first_cancel(self: _Shard) -> None:
        try:
            await asyncio.sleep(0.05)  # the blocking read
        except asyncio.CancelledError:
            if lost:
                raise
            lost.append(True)  # swallowed, as redis-py's read did

    monkeypatch.setattr(_Shard, "_read_once", read_once_losing_the_first_cancel)
    hub = EventHub(redis, block_ms=100)
    hub.unsubscribe(await hub.subscribe("j1"))
    stopping = asyncio.create_task(hub.stop())
    await asyncio.wait([stopping], timeout=5)  # does not cancel it: a stop that hangs stays pending
    stopped = stopping.done()
    stopping.cancel()  # (a hung stop, cancelled, cancels the reader it awaits: nothing is left running)
    await asyncio.gather(stopping, return_exceptions=True)
    task = hub._shards[0].task
    assert stopped and lost == [True] and task is not None and task.cancelled()
