"""Live manifests: published by running executors with a heartbeat deadline, merged for readers, gone when they stop."""

from __future__ import annotations

import asyncio

import redis.asyncio as aioredis

from executors.manifests import registry
from spinbot import constants as C
from spinbot.capabilities import live_manifest, publish, withdraw
from tests.runtime.conftest import InProcess


async def test_running_executors_publish_and_withdraw(inproc: InProcess, redis: aioredis.Redis) -> None:
    assert (await live_manifest(redis)).services == {}
    await inproc.both()
    await inproc.ready()
    merged = await live_manifest(redis)
    assert set(merged.planes) == {"control", "gpu"}
    assert sorted(merged.services["diag.echo"].planes) == ["control", "gpu"]
    assert merged.planes["gpu"].devices and merged.planes["gpu"].devices[0]["name"] == "test"
    assert [await redis.hlen(C.manifests_key(p)) for p in C.PLANES] == [1, 1]
    now = await redis.time()
    deadlines = await redis.zrange(C.MANIFEST_DEADLINES, 0, -1, withscores=True)
    assert len(deadlines) == 2 and all(score > now[0] for _, score in deadlines)
    await inproc.close()
    assert (await live_manifest(redis)).services == {}


async def test_a_dead_executors_manifest_expires(redis: aioredis.Redis) -> None:
    manifest = registry("control").manifest(executor="ghost-1")
    await publish(redis, manifest, ttl_s=1)
    assert "diag.echo" in (await live_manifest(redis)).services
    await asyncio.sleep(1.2)
    assert (await live_manifest(redis)).services == {}


async def test_publishing_prunes_the_dead_among_many_keys(redis: aioredis.Redis) -> None:
    await publish(redis, registry("gpu").manifest(executor="ghost-1"), ttl_s=0.2)
    await redis.mset({f"unrelated:{i}": "x" for i in range(2000)})  # the keyspace does not matter
    await asyncio.sleep(0.3)
    await publish(redis, registry("control").manifest(executor="alive-1"), ttl_s=30)
    assert await redis.hkeys(C.manifests_key("gpu")) == [] and await redis.zcard(C.MANIFEST_DEADLINES) == 1
    merged = await live_manifest(redis)
    assert set(merged.planes) == {"control"} and merged.planes["control"].executors == ["alive-1"]
    await withdraw(redis, "control", "alive-1")
    assert (await live_manifest(redis)).services == {} and await redis.zcard(C.MANIFEST_DEADLINES) == 0
