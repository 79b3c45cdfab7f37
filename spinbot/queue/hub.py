"""Job event streams for many followers over few Redis connections (JobQueue.follow reads through it).

One EventHub per process that follows jobs (an API's is built in conversation.services) tails every job
event stream that has a subscriber, with one blocking XREAD per small group of jobs, and hands each new
entry to its subscriptions. A follower first catches up from its Last-Event-ID with plain reads, then
takes live entries from the hub, skipping ids it already has (JobQueue.follow): nothing is lost or
repeated whatever the interleaving.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
import uuid
from typing import Any

import redis.asyncio as aioredis
import redis.exceptions

from spinbot import constants as C
from spinbot.backoff import Backoff
from spinbot.loops import forever
from spinbot.queue.record import TERMINAL_JOB, Event, as_str, decode_event

log = logging.getLogger(__name__)

ZERO = "0-0"
_STREAM_ID = re.compile(r"[0-9]{1,20}(-[0-9]{1,20})?")


def parse_id(event_id: str) -> tuple[int, int]:
    ms, _, seq = event_id.partition("-")
    return int(ms), int(seq or 0)


def valid_id(event_id: str | None) -> str:
    """A Last-Event-ID as a stream id; our own suffixed ids (`<id>/m3`) resume from their stream id. Anything
    Redis would not take as a stream id (not ASCII digits, past 64 bits) resumes from the start."""
    if not event_id:
        return ZERO
    base = event_id.split("/", 1)[0].strip()
    if not _STREAM_ID.fullmatch(base) or any(int(part) >= 2**64 for part in base.split("-")):
        return ZERO
    return base if "-" in base else f"{base}-0"


def is_terminal(ev: Event) -> bool:
    return ev.type == "job" and ev.data.get("status") in TERMINAL_JOB


class Subscription:
    """A client's view of one job's live events, fed by the hub: the events not yet taken, and the one
    future its reader waits on (no queue, task or timer of its own: an idle stream costs little)."""

    __slots__ = ("job_id", "events", "waiter", "quiet")

    def __init__(self, job_id: str) -> None:
        self.job_id = job_id
        self.events: list[Event] = []
        self.waiter: asyncio.Future[None] | None = None
        self.quiet = False  # nothing delivered since the keep-alive ticker last looked (KeepAlive)

    def put(self, ev: Event) -> None:
        self.events.append(ev)
        self.quiet = False
        self._wake()

    def _wake(self) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    async def take(self) -> list[Event]:
        """The events delivered since the last take, in order; [] when the keep-alive ticker found the
        subscription quiet for a whole period (time for a keep-alive) before any came."""
        if not self.events:
            self.waiter = asyncio.get_running_loop().create_future()
            try:
                await self.waiter
            finally:
                self.waiter = None
        events, self.events = self.events, []
        return events


class KeepAlive:
    """One timer for every subscription waiting with the same `idle_s`: each period, those that got
    nothing during the whole period are woken empty-handed (their stream sends a keep-alive). A quiet
    stream hears from it every `idle_s`; after an event, within `idle_s` to 2 x `idle_s`."""

    def __init__(self, idle_s: float) -> None:
        self.idle_s = idle_s
        self.subs: dict[Subscription, None] = {}
        self.handle: asyncio.TimerHandle | None = None

    def add(self, sub: Subscription) -> None:
        self.subs[sub] = None
        if self.handle is None:
            self.handle = asyncio.get_running_loop().call_later(self.idle_s, self._tick)

    def discard(self, sub: Subscription) -> None:
        self.subs.pop(sub, None)
        if not self.subs and self.handle is not None:
            self.handle.cancel()
            self.handle = None

    def _tick(self) -> None:
        for sub in self.subs:
            if sub.quiet:
                sub._wake()
            sub.quiet = True
        self.handle = asyncio.get_running_loop().call_later(self.idle_s, self._tick)


#: A shard's wake stream lives this long past its last renewal (renewed every third of it while the shard
#: runs): an API process that dies leaves none behind for longer.
WAKE_TTL_S = 60


class _Shard:
    """One blocking XREAD over the event streams of its jobs, plus a wake stream to add jobs at once."""

    def __init__(self, redis: aioredis.Redis, reader: aioredis.Redis, block_ms: int, count: int) -> None:
        self.redis = redis  # quick commands
        self.reader = reader  # the blocking read: one connection per shard, from a pool of its own
        self.block_ms = block_ms
        self.count = count
        self.subs: dict[str, set[Subscription]] = {}
        self.cursor: dict[str, str] = {}
        self.wake_key = f"{C.PREFIX}:sse:wake:{uuid.uuid4().hex[:12]}"
        self.wake_id = ZERO
        self.renewed = 0.0  # time.monotonic() of the wake key's last expiry renewal
        self.task: asyncio.Task[None] | None = None

    async def subscribe(self, job_id: str) -> Subscription:
        sub = Subscription(job_id)
        subs = self.subs.get(job_id)
        if subs is not None:
            subs.add(sub)
            return sub
        self.subs[job_id] = {sub}
        if self.task is None:
            self.task = asyncio.create_task(self._run(), name="sse-hub-shard")  # set before any await: one reader
        # Tail from the stream's current end; the subscriber's own catch-up covers what came before.
        last = await self.redis.xrevrange(C.job_events_key(job_id), count=1)
        if job_id in self.subs and job_id not in self.cursor:
            self.cursor[job_id] = as_str(last[0][0]) if last else ZERO
            with contextlib.suppress(redis.exceptions.RedisError, OSError):
                await self._wake()
        return sub

    async def _wake(self) -> str:
        """Add to the wake stream (ending the shard's blocking read) and renew its expiry, in one transaction:
        the key never exists without a TTL. Returns the new entry's id."""
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.xadd(self.wake_key, {"w": "1"}, maxlen=16, approximate=True)
            pipe.expire(self.wake_key, WAKE_TTL_S)
            entry, _ = await pipe.execute()
        self.renewed = time.monotonic()
        return as_str(entry)

    def unsubscribe(self, sub: Subscription) -> bool:
        """Drop `sub`; True when that was its job's last subscriber here (the job leaves this shard)."""
        subs = self.subs.get(sub.job_id)
        if subs is None:
            return False
        subs.discard(sub)
        if subs:
            return False
        del self.subs[sub.job_id]
        self.cursor.pop(sub.job_id, None)
        return True

    async def stop(self) -> None:
        if self.task:
            # A cancel that arrives as the blocking XREAD ends can be lost inside redis-py's read (the task is
            # left "cancelling" and reads on): 8 of 19 runs of `spinbot submit --wait` hung at exit that way.
            # So cancel until the task has ended.
            while not self.task.done():
                self.task.cancel()
                await asyncio.wait([self.task], timeout=0.5)
            with contextlib.suppress(redis.exceptions.RedisError, OSError):
                await self.redis.delete(self.wake_key)

    async def _run(self) -> None:
        """Read until stopped; any failure (Redis down, out of memory, the wake key gone) backs off and
        reads again (spinbot.loops), the wake stream made anew when it could not be; the wake key's expiry
        is renewed while the shard lives, so a killed API leaves it for at most WAKE_TTL_S."""
        self.wake_id = ""
        await forever(self._read_once, name="event hub reader", backoff=Backoff(0.1, 5.0))

    async def _read_once(self) -> None:
        if not self.wake_id:
            self.wake_id = await self._wake()
        elif time.monotonic() - self.renewed > WAKE_TTL_S / 3:
            await self.redis.expire(self.wake_key, WAKE_TTL_S)
            self.renewed = time.monotonic()
        streams: dict[Any, Any] = {C.job_events_key(j): c for j, c in self.cursor.items()}
        streams[self.wake_key] = self.wake_id
        res: Any = await self.reader.xread(streams, count=self.count, block=self.block_ms)
        for key, entries in res or []:
            self._dispatch(as_str(key), entries)

    def _dispatch(self, key: str, entries: list[Any]) -> None:
        if key == self.wake_key:
            self.wake_id = as_str(entries[-1][0])
            return
        job_id = key.removeprefix(f"{C.PREFIX}:job:").removesuffix(":events")
        if job_id not in self.cursor:
            return  # everyone left while the read was in flight
        subs = self.subs.get(job_id, ())
        for eid, fields in entries:
            ev = decode_event(eid, fields)  # decoded once per job, whatever the number of its watchers
            for sub in subs:
                sub.put(ev)
        self.cursor[job_id] = as_str(entries[-1][0])


class EventHub:
    """Followed jobs packed onto shards of at most `jobs_per_shard` each, each shard one blocking XREAD.

    An event costs one XREAD over its shard's few jobs and one decode, then an in-process put per
    watcher: the work per event does not grow with the number of jobs followed. Shards are added as
    jobs are (up to `max_shards`, each holding one connection of the reader's pool while it blocks);
    past that, a new job joins the least loaded shard. With a fixed 64 shards, 10,000 followed jobs
    meant XREADs over ~160 streams per event and p99 delivery of 1.3-1.4 s (bench/sse.py).
    """

    def __init__(self, redis: aioredis.Redis, *, reader: aioredis.Redis | None = None, jobs_per_shard: int = 16,
                 max_shards: int = 1024, block_ms: int = 2_000, count: int = 200) -> None:
        # block_ms stays under redis-py's default 5 s socket timeout.
        self.redis = redis
        self.reader = reader or redis
        self.jobs_per_shard = jobs_per_shard
        self.max_shards = max_shards
        self._new_shard = lambda: _Shard(redis, self.reader, block_ms, count)
        self._shards: list[_Shard] = []
        self._spare: dict[_Shard, None] = {}  # shards below jobs_per_shard, oldest first
        self._home: dict[str, _Shard] = {}  # job id -> the shard that reads its stream
        self._keepalive: dict[float, KeepAlive] = {}  # idle_s -> the one timer of the subscriptions using it

    def _place(self, job_id: str) -> _Shard:
        shard = self._home.get(job_id)
        if shard is None:
            if self._spare:
                shard = next(iter(self._spare))
            elif len(self._shards) < self.max_shards:
                shard = self._new_shard()
                self._shards.append(shard)
                self._spare[shard] = None
            else:
                shard = min(self._shards, key=lambda s: len(s.subs))
            self._home[job_id] = shard
        return shard

    async def stop(self) -> None:
        for shard in self._shards:
            await shard.stop()

    @property
    def jobs(self) -> int:
        return len(self._home)

    async def subscribe(self, job_id: str, idle_s: float | None = None) -> Subscription:
        """Follow `job_id`'s live events; with `idle_s`, the subscription is also woken empty-handed when
        quiet that long (KeepAlive). Pair with unsubscribe."""
        shard = self._place(job_id)
        sub = await shard.subscribe(job_id)
        if len(shard.subs) >= self.jobs_per_shard:
            self._spare.pop(shard, None)
        if idle_s is not None:
            self._keepalive.setdefault(idle_s, KeepAlive(idle_s)).add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        for keepalive in self._keepalive.values():
            keepalive.discard(sub)
        shard = self._home.get(sub.job_id)
        if shard is not None and shard.unsubscribe(sub):
            del self._home[sub.job_id]
            if len(shard.subs) < self.jobs_per_shard:
                self._spare[shard] = None

