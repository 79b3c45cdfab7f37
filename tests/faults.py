"""Infrastructure faults for tests, made with the real servers: a Redis that refuses writes, a Postgres
that goes away (a TCP proxy in front of the real one), a table locked from another connection."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import asyncpg
import redis.asyncio as aioredis


@contextlib.asynccontextmanager
async def redis_refusing_writes(redis: aioredis.Redis) -> AsyncIterator[None]:
    """Redis at its memory limit with noeviction (what a full production Redis does): every write command
    and every script is refused with OOM, reads still work. Restored on exit."""
    old = (await redis.config_get("maxmemory"))["maxmemory"]
    policy = (await redis.config_get("maxmemory-policy"))["maxmemory-policy"]
    assert policy == "noeviction", policy
    await redis.config_set("maxmemory", 1)
    try:
        yield
    finally:
        await redis.config_set("maxmemory", old)


@contextlib.asynccontextmanager
async def redis_policy(redis: aioredis.Redis, policy: str) -> AsyncIterator[None]:
    """Redis with another maxmemory-policy for a while."""
    old = (await redis.config_get("maxmemory-policy"))["maxmemory-policy"]
    await redis.config_set("maxmemory-policy", policy)
    try:
        yield
    finally:
        await redis.config_set("maxmemory-policy", old)


@contextlib.asynccontextmanager
async def locked(database_url: str, *tables: str) -> AsyncIterator[asyncpg.Connection]:
    """`tables` locked ACCESS EXCLUSIVE (as an ALTER TABLE or VACUUM FULL does) by another connection."""
    conn = await asyncpg.connect(database_url)
    tx = conn.transaction()
    await tx.start()
    try:
        await conn.execute(f"LOCK TABLE {', '.join(tables)} IN ACCESS EXCLUSIVE MODE")
        yield conn
    finally:
        await tx.rollback()
        await conn.close()


class TcpProxy:
    """A TCP relay on a fixed loopback port to `target`; stop() is the server going away (new connections
    refused, open ones reset), start() it coming back on the same port."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    def url_for(self, url: str) -> str:
        """`url` (of the target) pointed at this proxy."""
        return url.replace(f"{self.target[0]}:{self.target[1]}", f"127.0.0.1:{self.port}")

    async def start(self) -> TcpProxy:
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", self.port, reuse_address=True)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        assert self._server is not None
        self._server.close()
        for w in list(self._writers):
            w.transport.abort()
        self._writers.clear()
        await self._server.wait_closed()
        self._server = None

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        self._writers |= {writer, up_writer}

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError, asyncio.CancelledError):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.transport.abort()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        self._writers -= {writer, up_writer}
