"""The executors' side of the plane streams: claim, autoclaim, heartbeat, release, drop, dead-letter.

One Consumer per executor: it reads its plane's stream as consumer `name` of constants.GROUP.
Claims come back as `Claim`s; writes to a claimed job go through its `Lease` (lease.py).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import redis.exceptions

from spinbot import constants as C
from spinbot.queue.interface import Claim, LeaseAPI, QueueCore
from spinbot.queue.lease import Lease
from spinbot.queue.record import DELTA_FIELD, TERMINAL_JOB, as_str, decode_hash, dumps

HEAD_FIELDS = ("entry", "stream", "status", "cancel", "version", "progress")


class Consumer:
    """Consumer `name` of the group on `plane`'s stream."""

    def __init__(self, queue: QueueCore, plane: str, name: str, *, claim_idle_ms: int) -> None:
        self.queue = queue
        self.redis = queue.redis
        self.plane = plane
        self.name = name
        self.stream = C.plane_stream(plane)
        self.claim_idle_ms = claim_idle_ms

    def lease(self, claim: Claim) -> Lease:
        return Lease(self.queue, claim.fields.get("job", ""), self.stream, claim.entry, self.name, claim.deliveries)

    # -- claim

    async def claim_new(self, count: int, block_ms: int) -> list[Claim]:
        """Entries never delivered before (XREADGROUP >), waiting up to block_ms for the first."""
        res: Any = await self.redis.xreadgroup(C.GROUP, self.name, {self.stream: ">"}, count=count, block=block_ms)
        return [Claim(as_str(eid), decode_hash(f or {}), 1) for _, entries in res or [] for eid, f in entries]

    async def claim_own_pending(self, count: int) -> list[Claim]:
        """Entries already delivered to this consumer name (after a restart or an outage)."""
        res: Any = await self.redis.xreadgroup(C.GROUP, self.name, {self.stream: "0"}, count=count)
        return [Claim(as_str(eid), decode_hash(f), await self.deliveries(as_str(eid)))
                for _, entries in res or [] for eid, f in entries if f]

    async def autoclaim(self, count: int) -> list[Claim]:
        """Entries idle longer than claim_idle_ms (their executor died), taken over."""
        _, entries, *_ = await self.redis.xautoclaim(
            self.stream, C.GROUP, self.name, min_idle_time=self.claim_idle_ms, start_id="0-0", count=count)
        return [Claim(as_str(eid), decode_hash(f), await self.deliveries(as_str(eid)))
                for eid, f in entries if f is not None]

    async def deliveries(self, entry: str) -> int:
        p = await self.redis.xpending_range(self.stream, C.GROUP, min=entry, max=entry, count=1)
        return int(p[0]["times_delivered"]) if p else 1

    # -- keep, give back, drop

    async def heartbeat(self, entries: list[str]) -> list[tuple[str, str]]:
        """Reset the idle time of these held entries; (entry, reason) for those no longer ours, reason
        one of gone, nogroup, unclaimed, stolen."""
        if not entries:
            return []
        lost: list[Any] = list(await self.queue.scripts.heartbeat(keys=[self.stream],
                                                                  args=[C.GROUP, self.name, *entries]))
        return [(as_str(e), as_str(r)) for e, r in zip(lost[::2], lost[1::2], strict=True)]

    async def release(self, entries: list[str]) -> None:
        """Hand unfinished entries back: marked idle, the next autoclaim elsewhere takes them."""
        if entries:
            await self.redis.xclaim(self.stream, C.GROUP, self.name, 0, list[Any](entries),
                                    idle=self.claim_idle_ms + 1, justid=True)

    async def drop(self, entry: str) -> None:
        """Ack and delete an entry that carries nothing to do (a duplicate, a finished job)."""
        pipe = self.redis.pipeline(transaction=True)
        pipe.xack(self.stream, C.GROUP, entry)
        pipe.xdel(self.stream, entry)
        await pipe.execute()

    async def dead_letter(self, entry: str, fields: dict[str, str], reason: str) -> None:
        """Move an entry that cannot be read as a job to the dead-letter stream."""
        pipe = self.redis.pipeline(transaction=True)
        pipe.xadd(C.DEAD_LETTER_STREAM, {"stream": self.stream, "entry": entry, "reason": reason,
                                         "fields": dumps(fields)})
        pipe.xack(self.stream, C.GROUP, entry)
        pipe.xdel(self.stream, entry)
        await pipe.execute()

    async def drop_if_stale(self, lease: LeaseAPI) -> bool:
        """After a lost claim: if the entry no longer carries its job and is still ours, drop it."""
        entry, stream, status = await self.redis.hmget(C.job_key(lease.job_id), ["entry", "stream", "status"])
        if entry == lease.entry and stream == self.stream and status not in TERMINAL_JOB:
            return False
        pending = await self.redis.xpending_range(self.stream, C.GROUP, lease.entry, lease.entry, 1)
        if pending and as_str(pending[0]["consumer"]) == self.name:
            await self.drop(lease.entry)
            return True
        return False

    # -- read the job a claim carries

    async def read_record(self, job_id: str) -> dict[str, str]:
        """The whole job record ({} if there is none)."""
        return decode_hash(await self.redis.hgetall(C.job_key(job_id)))

    async def read_since(self, job_id: str, versions: range) -> tuple[dict[str, str], list[str | None]]:
        """The record's head fields (HEAD_FIELDS) and the hand-off deltas of `versions`, in one read:
        what an executor whose cached graph is behind needs to catch up."""
        names = [*HEAD_FIELDS, *(f"{DELTA_FIELD}{v}" for v in versions)]
        values = await self.redis.hmget(C.job_key(job_id), names)
        head = {k: as_str(v) for k, v in zip(HEAD_FIELDS, values, strict=False) if v is not None}
        return head, [as_str(v) if v is not None else None for v in values[len(HEAD_FIELDS):]]

    async def cancel_flags(self, job_ids: list[str]) -> list[bool]:
        """Whether each job's record asks for a cancel (pub/sub is not durable: this is the backstop)."""
        pipe = self.redis.pipeline(transaction=False)
        for job_id in job_ids:
            pipe.hget(C.job_key(job_id), "cancel")
        return [flag in ("1", b"1") for flag in await pipe.execute()]

    async def leave(self) -> bool:
        """Remove this consumer from the group (a clean shutdown), unless it still holds pending entries
        (released ones wait there for another executor's autoclaim; the consumer sweep removes it later)."""
        return bool(await self.queue.scripts.leave(keys=[self.stream], args=[C.GROUP, self.name]))

    async def sweep_consumers(self, idle_ms: int) -> list[str]:
        """Remove the group's consumers idle longer than idle_ms that hold no pending entry (executors that
        stopped without leaving: crashed, killed); returns their names. A live executor's next read would
        bring its consumer back, so the threshold only saves churn."""
        try:
            consumers: Any = await self.redis.xinfo_consumers(self.stream, C.GROUP)
        except redis.exceptions.ResponseError as e:  # no stream or no group yet: nothing to sweep
            if "no such key" in str(e).lower() or "NOGROUP" in str(e):
                return []
            raise
        idle = [as_str(c["name"]) for c in consumers
                if int(c.get("pending", 0)) == 0 and int(c.get("idle", 0)) > idle_ms and as_str(c["name"]) != self.name]
        if not idle:
            return []
        return [as_str(n) for n in await self.queue.scripts.leave(keys=[self.stream], args=[C.GROUP, *idle])]

    async def sweep_turn(self, ttl_ms: int) -> bool:
        """Whether this consumer sweeps now: no other took the reconcile lock in the last ttl_ms."""
        return bool(await self.redis.set(C.RECONCILE_LOCK, self.name, nx=True, px=ttl_ms))

    async def cancel_requests(self) -> AsyncIterator[str]:
        """Job ids as cancels are published (constants.CANCEL_CHANNEL), until the connection drops."""
        pubsub = self.redis.pubsub()
        try:
            await pubsub.subscribe(C.CANCEL_CHANNEL)
            async for msg in pubsub.listen():
                if msg.get("type") == "message":
                    yield as_str(msg["data"])
        finally:
            with contextlib.suppress(Exception):
                await pubsub.aclose()
