"""What the chat use case works with: the parts built once per API process (its lifespan), passed down."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any

import redis.asyncio as aioredis

from conversation.auth import LinkSigner
from conversation.repo import Repo
from conversation.slots import StreamSlots
from conversation.turns import OpenTurns
from spinbot import redis_setup
from spinbot.artifacts import ArtifactStore, open_store
from spinbot.capabilities import declared_manifest
from spinbot.errors import outage
from spinbot.history import EstimatesCache
from spinbot.queue import EventHub, JobQueue
from spinbot.settings import Settings
from spinbot.store import PgLimits, Store

log = logging.getLogger(__name__)

HUB_MAX_SHARDS = 1024  # each blocking read of the event hub holds one connection of its own pool


@dataclass
class Services:
    """Everything a request may need; built once per app in its lifespan."""

    settings: Settings
    redis: aioredis.Redis
    store: Store
    artifacts: ArtifactStore
    queue: JobQueue  # follows jobs through its event hub (one per process, built here)
    repo: Repo
    links: LinkSigner
    streams: StreamSlots
    turns: OpenTurns  # this process's claims on open chat turns (conversation/turns.py)
    estimates: EstimatesCache  # durations learned from the jobs that ran (spinbot/estimates.py)
    background: set[asyncio.Task[Any]] = field(default_factory=set)
    open_streams: set[Any] = field(default_factory=set)  # the open event stream responses, ended at shutdown

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        """Work that must outlive the request that started it (a chat turn whose client left)."""
        task = asyncio.create_task(coro, name=name)
        self.background.add(task)
        task.add_done_callback(self.background.discard)
        return task


def require(value: str | None, name: str) -> str:
    if not value:
        raise RuntimeError(
            f"SPINBOT_{name} is not set: start everything with `spinbot up` (it embeds Redis and Postgres), "
            f"or set SPINBOT_{name}"
        )
    return value


def redis_client(url: str, max_connections: int, socket_timeout: float | None = None) -> aioredis.Redis:
    """A client whose pool waits for a free connection under bursts instead of failing."""
    extra = {} if socket_timeout is None else {"socket_timeout": socket_timeout}
    pool = aioredis.BlockingConnectionPool.from_url(url, max_connections=max_connections, timeout=10,
                                                   decode_responses=True, **extra)
    return aioredis.Redis.from_pool(pool)  # the client owns the pool: aclose() closes it


async def build_services(settings: Settings, *, who: str = "the API") -> Services:
    """The parts of one process (the API's lifespan, `spinbot submit`), connected. RuntimeError when Redis or
    Postgres is not configured; Redis, Postgres and artifact-store errors as their clients raise them."""
    url = require(settings.redis_url, "REDIS_URL")
    redis = redis_client(url, 128)
    try:
        await redis_setup.check_eviction(redis, production=settings.production, who=who)
    except Exception as e:
        if outage(e) is None:
            await redis.aclose()
            raise
        log.warning("could not check Redis' eviction policy now (%s: %s); /health checks it", type(e).__name__, e)
    store = await Store.connect(require(settings.database_url, "DATABASE_URL"), max_size=settings.pg_pool_size,
                                limits=PgLimits.from_settings(settings))
    artifacts = open_store(settings)
    await artifacts.check()
    # The hub's shards each hold a connection in a blocking read: they get a pool of their own.
    # Their reads block for 2 s: a socket timeout well above that, so a busy event loop is not a Redis failure.
    hub = EventHub(redis, reader=redis_client(url, HUB_MAX_SHARDS + 4, socket_timeout=30), max_shards=HUB_MAX_SHARDS)
    return Services(
        settings=settings, redis=redis, store=store, artifacts=artifacts,
        queue=JobQueue(redis, store, hub=hub), repo=Repo(store.pool),
        links=LinkSigner.from_settings(settings), streams=StreamSlots(redis, settings.max_streams_per_key),
        turns=OpenTurns(redis, settings.turn_lease_s),
        estimates=EstimatesCache(store.pool, lambda: declared_manifest().services),
    )

async def close_services(services: Services) -> None:
    """Stop what build_services started and spawn ran, and close the connections."""
    for task in list(services.background):
        task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await asyncio.gather(*services.background, return_exceptions=True)
    await services.streams.close()
    await services.queue.hub.stop()
    await services.queue.hub.reader.aclose()
    await services.store.close()
    await services.redis.aclose()
