"""Live manifests: published by running executors with a TTL, merged for readers, gone when they stop."""

from __future__ import annotations

import asyncio

import redis.asyncio as aioredis

from spinbot import constants as C
from spinbot.capabilities import live_manifest, publish
from spinbot.manifests_io import registry
from tests.runtime.conftest import InProcess


async def test_running_executors_publish_and_withdraw(inproc: InProcess, redis: aioredis.Redis) -> None:
    assert (await live_manifest(redis)).services == {}
    await inproc.both()
    await inproc.ready()
    merged = await live_manifest(redis)
    assert set(merged.planes) == {"control", "gpu"}
    assert sorted(merged.services["diag.echo"].planes) == ["control", "gpu"]
    assert merged.planes["gpu"].devices and merged.planes["gpu"].devices[0]["name"] == "test"
    keys = await redis.keys(C.MANIFEST_PATTERN)
    assert len(keys) == 2 and all([await redis.ttl(k) > 0 for k in keys])
    await inproc.close()
    assert (await live_manifest(redis)).services == {}


async def test_a_dead_executors_manifest_expires(redis: aioredis.Redis) -> None:
    manifest = registry("control").manifest(executor="ghost-1")
    await publish(redis, manifest, ttl_s=1)
    assert "diag.echo" in (await live_manifest(redis)).services
    await asyncio.sleep(1.2)
    assert (await live_manifest(redis)).services == {}
