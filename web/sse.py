"""Job event streams for many clients over few Redis connections, and their SSE encoding.

One EventHub per API process tails every job event stream that has a subscriber with a single
blocking XREAD over all of them, and hands each new entry to the subscribers' queues. A client
first catches up from its Last-Event-ID with plain reads, then takes live entries from the hub,
skipping ids it already has: nothing is lost or repeated whatever the interleaving.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator
from typing import Any

import orjson
import redis.asyncio as aioredis
import redis.exceptions

from spinbot import constants as C
from spinbot.jobs import TERMINAL_JOB, Event, JobQueue

log = logging.getLogger(__name__)

ZERO = "0-0"


def parse_id(event_id: str) -> tuple[int, int]:
    ms, _, seq = event_id.partition("-")
    return int(ms), int(seq or 0)


def valid_id(event_id: str | None) -> str:
    """A Last-Event-ID as a stream id; our own suffixed ids (`<id>/m3`) resume from their stream id."""
    if not event_id:
        return ZERO
    base = event_id.split("/", 1)[0].strip()
    try:
        parse_id(base)
    except ValueError:
        return ZERO
    return base if "-" in base else f"{base}-0"


def is_terminal(ev: Event) -> bool:
    return ev.type == "job" and ev.data.get("status") in TERMINAL_JOB


def _s(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


def decode_entry(eid: Any, fields: dict[Any, Any]) -> Event:
    f = {_s(k): _s(v) for k, v in fields.items()}
    return Event(_s(eid), f.get("type", ""), orjson.loads(f.get("data") or "{}"))


class Subscription:
    """A client's view of one job's live events (fed by the hub)."""

    __slots__ = ("job_id", "queue")

    def __init__(self, job_id: str) -> None:
        self.job_id = job_id
        self.queue: asyncio.Queue[Event] = asyncio.Queue()


class EventHub:
    def __init__(self, redis: aioredis.Redis, *, block_ms: int = 10_000, count: int = 200) -> None:
        self.redis = redis
        self.block_ms = block_ms
        self.count = count
        self._subs: dict[str, set[Subscription]] = {}
        self._cursor: dict[str, str] = {}
        self._wake_key = f"{C.PREFIX}:sse:wake:{uuid.uuid4().hex[:12]}"
        self._wake_id = ZERO
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._wake_id = _s(await self.redis.xadd(self._wake_key, {"w": "1"}, maxlen=16, approximate=True))
        await self.redis.expire(self._wake_key, 24 * 3600)
        self._task = asyncio.create_task(self._run(), name="sse-hub")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        with contextlib.suppress(redis.exceptions.RedisError, OSError):
            await self.redis.delete(self._wake_key)

    @property
    def jobs(self) -> int:
        return len(self._subs)

    async def subscribe(self, job_id: str) -> Subscription:
        sub = Subscription(job_id)
        subs = self._subs.get(job_id)
        if subs is not None:
            subs.add(sub)
            return sub
        self._subs[job_id] = {sub}
        # Start tailing at the stream's current end; the subscriber's own catch-up covers what came before.
        last = await self.redis.xrevrange(C.job_events_key(job_id), count=1)
        if job_id in self._subs and job_id not in self._cursor:
            self._cursor[job_id] = _s(last[0][0]) if last else ZERO
            await self._wake()
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        subs = self._subs.get(sub.job_id)
        if subs is None:
            return
        subs.discard(sub)
        if not subs:
            del self._subs[sub.job_id]
            self._cursor.pop(sub.job_id, None)

    async def _wake(self) -> None:
        with contextlib.suppress(redis.exceptions.RedisError, OSError):
            await self.redis.xadd(self._wake_key, {"w": "1"}, maxlen=16, approximate=True)

    async def _run(self) -> None:
        backoff = 0.1
        while True:
            streams = {C.job_events_key(j): c for j, c in self._cursor.items()}
            streams[self._wake_key] = self._wake_id
            try:
                res = await self.redis.xread(streams, count=self.count, block=self.block_ms)
                backoff = 0.1
            except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError) as e:
                log.warning("event hub: Redis read failed (%s); retrying in %.1f s", e, backoff)
                await asyncio.sleep(backoff)
                backoff = min(5.0, backoff * 2)
                continue
            for key, entries in res or []:
                self._dispatch(_s(key), entries)

    def _dispatch(self, key: str, entries: list[Any]) -> None:
        if key == self._wake_key:
            self._wake_id = _s(entries[-1][0])
            return
        job_id = key.removeprefix(f"{C.PREFIX}:job:").removesuffix(":events")
        if job_id not in self._cursor:
            return  # everyone left while the read was in flight
        for eid, fields in entries:
            ev = decode_entry(eid, fields)
            for sub in self._subs.get(job_id, ()):
                sub.queue.put_nowait(ev)
        self._cursor[job_id] = _s(entries[-1][0])


async def follow_job(
    queue: JobQueue, hub: EventHub, job_id: str, after: str = ZERO, *, batch: int = 500
) -> AsyncIterator[Event]:
    """Every event of a job after `after`, in order, once each, ending with the terminal `job` event."""
    sub = await hub.subscribe(job_id)
    last = after
    try:
        while True:  # catch up from the stream itself
            got = await queue.read_events(job_id, last, count=batch)
            for ev in got:
                last = ev.id
                yield ev
                if is_terminal(ev):
                    return
            if len(got) < batch:
                break
        state = await queue.get(job_id)
        if state is None or state.terminal:
            # Ended meanwhile: what it wrote after our catch-up is in the stream now; then nothing more.
            for ev in await queue.read_events(job_id, last, count=batch):
                yield ev
            return
        while True:  # live, from the hub
            ev = await sub.queue.get()
            if parse_id(ev.id) <= parse_id(last):
                continue
            last = ev.id
            yield ev
            if is_terminal(ev):
                return
    finally:
        hub.unsubscribe(sub)


def encode(event: str | None, data: Any, event_id: str | None = None) -> bytes:
    """One SSE message; data is JSON on one line."""
    out = b""
    if event_id is not None:
        out += b"id: " + event_id.encode() + b"\n"
    if event is not None:
        out += b"event: " + event.encode() + b"\n"
    payload = data if isinstance(data, bytes) else orjson.dumps(data)
    return out + b"data: " + payload + b"\n\n"


def open_stream(
    services: Any, owner: str, events: AsyncIterator[Any], *, headers: dict[str, str] | None = None
) -> Any:
    """An SSE response that holds one of the owner's stream slots (429 when none is free) while open."""
    from sse_starlette import EventSourceResponse
    from starlette.background import BackgroundTask

    from spinbot.metrics import SSE_STREAMS

    services.streams.acquire(owner)
    SSE_STREAMS.inc()
    released = False

    def release() -> None:
        nonlocal released
        if not released:
            released = True
            services.streams.release(owner)
            SSE_STREAMS.dec()

    async def body() -> AsyncIterator[Any]:
        try:
            async for item in events:
                yield item
        finally:
            release()
            await events.aclose()  # type: ignore[attr-defined]

    return EventSourceResponse(
        body(), ping=services.settings.sse_ping_s, sep="\n", background=BackgroundTask(release),
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no", **(headers or {})},
    )
