"""Capabilities: each running executor publishes its plane manifest with a heartbeat; readers merge them.

Layout in Redis (names in spinbot.constants): one hash per plane, executor id -> manifest JSON, and one
sorted set of heartbeat deadlines ("plane:executor" -> Redis server time + TTL). A reader gets every live
manifest in one script call whose cost grows with the number of executors, not with the keyspace (the
SCAN this replaces took 335 ms at 100k keys). Each publish prunes the entries whose deadline has passed.

Beside what runs now (the live manifest) stands what the code declares (manifests/*.json, committed):
a service declared there is known even while no executor of its plane is online.
"""

from __future__ import annotations

import json
import logging
import time
from functools import cache, lru_cache

import redis.asyncio as aioredis

from spinbot import MANIFESTS_DIR
from spinbot import constants as C
from spinbot.manifest import MergedManifest, PlaneManifest, merge

log = logging.getLogger(__name__)

# Deadlines are Redis server time, so executors and readers on hosts with skewed clocks agree.
_NOW = "local t = redis.call('TIME') local now = tonumber(t[1]) + tonumber(t[2]) / 1000000\n"

# KEYS: deadlines, then each plane's hash; ARGV: the plane names in KEYS order, plane, executor, json, ttl_s
_PUBLISH = _NOW + """
local n = #KEYS - 1
local hash = {}
for i = 1, n do hash[ARGV[i]] = KEYS[i + 1] end
for _, member in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now)) do
  local sep = string.find(member, ':', 1, true)
  local h = hash[string.sub(member, 1, sep - 1)]
  if h then redis.call('HDEL', h, string.sub(member, sep + 1)) end
  redis.call('ZREM', KEYS[1], member)
end
redis.call('HSET', hash[ARGV[n + 1]], ARGV[n + 2], ARGV[n + 3])
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[n + 4]), ARGV[n + 1] .. ':' .. ARGV[n + 2])
"""

# KEYS: deadlines, then each plane's hash; ARGV: the plane names in KEYS order. Returns the live JSONs.
_READ = _NOW + """
local out = {}
for i = 2, #KEYS do
  local entries = redis.call('HGETALL', KEYS[i])
  for j = 1, #entries, 2 do
    local deadline = redis.call('ZSCORE', KEYS[1], ARGV[i - 1] .. ':' .. entries[j])
    if deadline and tonumber(deadline) > now then out[#out + 1] = entries[j + 1] end
  end
end
return out
"""

_KEYS = [C.MANIFEST_DEADLINES, *(C.manifests_key(p) for p in C.PLANES)]


def ttl_for(heartbeat_s: float) -> int:
    """A manifest outlives a few missed heartbeats, then disappears with its executor."""
    return max(5, int(heartbeat_s * 3 + 1))


async def publish(redis: aioredis.Redis, manifest: PlaneManifest, *, ttl_s: float) -> None:
    """Put (or refresh) `manifest` for its plane and executor, live for `ttl_s` seconds from now."""
    assert manifest.executor, "a live manifest names its executor"
    live = manifest.model_copy(update={"heartbeat": time.time()})
    script = redis.register_script(_PUBLISH)
    await script(keys=_KEYS, args=[*C.PLANES, manifest.plane, manifest.executor,
                                   live.model_dump_json(by_alias=True), ttl_s])


async def withdraw(redis: aioredis.Redis, plane: str, executor_id: str) -> None:
    """Take an executor's manifest off now (a clean stop); a crashed one expires at its deadline."""
    async with redis.pipeline(transaction=True) as pipe:
        pipe.hdel(C.manifests_key(plane), executor_id)
        pipe.zrem(C.MANIFEST_DEADLINES, f"{plane}:{executor_id}")
        await pipe.execute()


@lru_cache(maxsize=64)
def _parse(raw: str | bytes) -> PlaneManifest | None:
    """One manifest's JSON -> model; cached because the same JSON is read until the next heartbeat."""
    try:
        return PlaneManifest.model_validate_json(raw)
    except ValueError:
        log.warning("ignoring an unreadable live manifest")
        return None


async def _live_raw(redis: aioredis.Redis) -> tuple[str | bytes, ...]:
    """The JSON of every live executor's manifest, in a stable order (one script call)."""
    script = redis.register_script(_READ)
    return tuple(sorted(await script(keys=_KEYS, args=list(C.PLANES))))


def _manifests(raws: tuple[str | bytes, ...]) -> list[PlaneManifest]:
    out = [m for m in map(_parse, raws) if m is not None]
    return sorted(out, key=lambda m: (m.plane, m.executor or ""))


@lru_cache(maxsize=8)
def _merged(raws: tuple[str | bytes, ...]) -> MergedManifest:
    """merge() of those manifests, cached: it costs ~0.6 ms and its inputs change only with a heartbeat."""
    return merge(_manifests(raws))


async def live_manifests(redis: aioredis.Redis) -> list[PlaneManifest]:
    """Every live executor's manifest, sorted by (plane, executor); shared objects: read-only."""
    return _manifests(await _live_raw(redis))


async def live_manifest(redis: aioredis.Redis) -> MergedManifest:
    """The merged manifest of every executor alive now: only what can run now.

    Read from Redis at every call (one script call, ~0.2 ms, whatever the keyspace holds); the merge
    is shared between calls that see the same manifests, so the result is read-only.
    """
    return _merged(await _live_raw(redis))


def committed_manifest() -> MergedManifest:
    """manifests/control.json + gpu.json merged: what the code declares, whether or not it runs now."""
    return merge(
        PlaneManifest.model_validate(json.loads((MANIFESTS_DIR / f"{plane}.json").read_text()))
        for plane in C.PLANES
    )


@cache
def declared_manifest() -> MergedManifest:
    """committed_manifest(), read once per process (the files change only with the code); read-only."""
    return committed_manifest()
