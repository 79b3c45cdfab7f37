"""The event hub's subscriptions: live events in order, and keep-alive wake-ups from one shared timer."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from spinbot import constants as C
from spinbot.queue import dumps
from spinbot.queue.hub import EventHub, Subscription


async def _collect(sub: Subscription, until: float) -> list[list[str]]:
    """What each take() returned (event messages; [] for a keep-alive wake-up) until `until` (monotonic)."""
    got: list[list[str]] = []
    while time.monotonic() < until:
        try:
            async with asyncio.timeout(until - time.monotonic()):
                events = await sub.take()
        except TimeoutError:
            break
        got.append([ev.data["message"] for ev in events])
    return got


async def test_a_quiet_subscription_is_woken_for_keep_alives_and_a_busy_one_gets_every_event(redis: Any) -> None:
    hub = EventHub(redis, block_ms=100)
    busy, quiet = await hub.subscribe("busy", idle_s=0.3), await hub.subscribe("quiet", idle_s=0.3)
    try:
        until = time.monotonic() + 1.5

        async def publish() -> list[str]:
            sent = []
            while time.monotonic() < until - 0.2:
                sent.append(f"m{len(sent)}")
                await redis.xadd(C.job_events_key("busy"), {"type": "log", "data": dumps({"message": sent[-1]})})
                await asyncio.sleep(0.05)
            return sent

        sent, busy_got, quiet_got = await asyncio.gather(publish(), _collect(busy, until), _collect(quiet, until))
    finally:
        hub.unsubscribe(busy)
        hub.unsubscribe(quiet)
        await hub.stop()
    assert [m for batch in busy_got for m in batch] == sent  # in order, once each
    assert [] not in busy_got[:-1]  # never idle for a whole period while events flow (the last: after they stop)
    assert 3 <= len(quiet_got) <= 6 and all(batch == [] for batch in quiet_got)  # one wake-up per 0.3 s
    assert hub.jobs == 0
