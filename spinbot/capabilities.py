"""Capabilities: each running executor publishes its plane manifest with a TTL; readers merge them.

Beside what runs now (the live manifest) stands what the code declares (manifests/*.json, committed):
a service declared there is known even while no executor of its plane is online.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from functools import cache

import redis.asyncio as aioredis
from redis import exceptions as redis_errors

from spinbot import MANIFESTS_DIR
from spinbot import constants as C
from spinbot.manifest import MergedManifest, PlaneManifest, merge

log = logging.getLogger(__name__)


def ttl_for(heartbeat_s: float) -> int:
    """A manifest outlives a few missed heartbeats, then disappears with its executor."""
    return max(5, int(heartbeat_s * 3 + 1))


async def publish(redis: aioredis.Redis, manifest: PlaneManifest, *, ttl_s: int) -> None:
    assert manifest.executor, "a live manifest names its executor"
    live = manifest.model_copy(update={"heartbeat": time.time()})
    await redis.set(C.manifest_key(manifest.plane, manifest.executor), live.model_dump_json(by_alias=True), ex=ttl_s)


async def withdraw(redis: aioredis.Redis, plane: str, executor_id: str) -> None:
    await redis.delete(C.manifest_key(plane, executor_id))


async def live_manifests(redis: aioredis.Redis) -> list[PlaneManifest]:
    keys = [k async for k in redis.scan_iter(match=C.MANIFEST_PATTERN, count=100)]
    if not keys:
        return []
    out = []
    for raw in await redis.mget(keys):
        if raw:  # expired between SCAN and MGET
            try:
                out.append(PlaneManifest.model_validate_json(raw))
            except ValueError:
                log.warning("ignoring an unreadable live manifest")
    return sorted(out, key=lambda m: (m.plane, m.executor or ""))


async def live_manifest(redis: aioredis.Redis) -> MergedManifest:
    """The merged manifest of every executor alive now: only what can run now."""
    return merge(await live_manifests(redis))


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


async def heartbeat(
    redis: aioredis.Redis, build: object, *, interval_s: float, stop: asyncio.Event
) -> None:
    """Re-publish `build()`'s manifest every interval until `stop`; Redis outages are logged, not fatal."""
    ttl = ttl_for(interval_s)
    while not stop.is_set():
        try:
            await publish(redis, build(), ttl_s=ttl)  # type: ignore[operator]
        except (redis_errors.ConnectionError, redis_errors.TimeoutError, OSError) as e:
            log.warning("could not publish the live manifest (Redis unreachable: %s); retrying", e)
        try:
            await asyncio.wait_for(stop.wait(), timeout=interval_s)
        except TimeoutError:
            pass
