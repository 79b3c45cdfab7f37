"""Open event streams per key, counted across every API process: leases in Redis that expire.

Each owner has one sorted set (constants.owner_streams_key): lease id -> expiry in Redis server time (ms).
Taking a slot is one script (drop expired leases, count, add when under the limit), so concurrent
requests on any number of API processes are admitted exactly up to the limit. A process renews its
leases every `ttl_s / 3` and removes each when its stream ends; the leases of a process that died
expire within `ttl_s`, so its slots come back by themselves.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import redis.asyncio as aioredis
import redis.exceptions

from spinbot import constants as C
from spinbot.errors import Problem

log = logging.getLogger(__name__)

# KEYS: the owner's leases. ARGV: lease id, ttl ms, limit. Returns {1, n held before} or {0, n held}.
_ACQUIRE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local n = redis.call('ZCARD', KEYS[1])
if n >= tonumber(ARGV[3]) then return {0, n} end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
redis.call('PEXPIRE', KEYS[1], 2 * tonumber(ARGV[2]))
return {1, n}
"""

# KEYS: the owner's leases. ARGV: ttl ms, lease ids... Pushes back the expiry of the leases still there.
_RENEW = """
local t = redis.call('TIME')
local until_ = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) + tonumber(ARGV[1])
for i = 2, #ARGV do redis.call('ZADD', KEYS[1], 'XX', until_, ARGV[i]) end
redis.call('PEXPIRE', KEYS[1], 2 * tonumber(ARGV[1]))
return 1
"""


class StreamSlots:
    """At most `limit` open event streams per owner across all API processes (429 too_many_streams)."""

    def __init__(self, redis: aioredis.Redis, limit: int, *, ttl_s: float = 30.0) -> None:
        self.redis = redis
        self.limit = limit
        self.ttl_ms = max(1, int(ttl_s * 1000))
        self.held: dict[str, set[str]] = {}  # owner -> this process's lease ids
        self._acquire = redis.register_script(_ACQUIRE)
        self._renew = redis.register_script(_RENEW)
        self._releasing: set[asyncio.Task[None]] = set()

    async def acquire(self, owner: str) -> str:
        """A lease on one of `owner`'s slots; its id. Raises Problem 429 when all are taken."""
        lease = uuid.uuid4().hex
        ok, held = await self._acquire(keys=[C.owner_streams_key(owner)], args=[lease, self.ttl_ms, self.limit])
        if not int(ok):
            raise Problem("too_many_streams",
                          f"this key already has {int(held)} open event streams (limit {self.limit})",
                          hint="close a stream you no longer read, then retry")
        self.held.setdefault(owner, set()).add(lease)
        return lease

    def release(self, owner: str, lease: str) -> None:
        """Give the slot back (removed from Redis in the background; if that fails, it expires)."""
        leases = self.held.get(owner)
        if leases is None or lease not in leases:
            return
        leases.discard(lease)
        if not leases:
            del self.held[owner]
        task = asyncio.get_running_loop().create_task(self._remove(owner, [lease]), name="stream-slot-release")
        self._releasing.add(task)
        task.add_done_callback(self._releasing.discard)

    @contextmanager
    def holding(self, owner: str, lease: str) -> Iterator[None]:
        """Release `lease` when the block ends with an error (a stream that never started)."""
        try:
            yield
        except BaseException:
            self.release(owner, lease)
            raise

    async def _remove(self, owner: str, leases: list[str]) -> None:
        try:
            await self.redis.zrem(C.owner_streams_key(owner), *leases)
        except (redis.exceptions.RedisError, OSError) as e:
            log.warning("could not free %d stream slot(s) of %s now (%s); they expire in %.0f s",
                        len(leases), owner, e, self.ttl_ms / 1000)

    async def renew(self) -> None:
        """Push back the expiry of every lease this process holds (one round trip)."""
        if not self.held:
            return
        async with self.redis.pipeline(transaction=False) as pipe:
            for owner, leases in self.held.items():
                await self._renew(keys=[C.owner_streams_key(owner)], args=[self.ttl_ms, *leases], client=pipe)
            await pipe.execute()

    async def renew_loop(self) -> None:
        """renew() every ttl/3 until cancelled; a failed renewal is retried at the next turn."""
        while True:
            await asyncio.sleep(self.ttl_ms / 3000)
            try:
                await self.renew()
            except (redis.exceptions.RedisError, OSError) as e:
                log.warning("could not renew this API's stream slots (%s); retrying in %.0f s", e, self.ttl_ms / 3000)

    async def close(self) -> None:
        """Free every slot this process holds (at shutdown)."""
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(*self._releasing, return_exceptions=True)
        held, self.held = self.held, {}
        for owner, leases in held.items():
            await self._remove(owner, list(leases))
