"""Both planes' executors as asyncio tasks in a test's event loop, on the test's Redis and Postgres."""

from __future__ import annotations

import asyncio
from typing import Any

import redis.asyncio as aioredis

from executors.core import Executor
from executors.manifests import registry
from spinbot import constants as C
from spinbot.artifacts import LocalStore
from spinbot.redis_setup import executor_client
from spinbot.registry import Registry
from spinbot.settings import Settings
from spinbot.store import Store


class InProcess:
    """Both planes' executors as asyncio tasks in this test's loop."""

    def __init__(self, settings: Settings, store: Store | None, *, device: dict[str, Any] | None = None) -> None:
        self.settings = settings
        self.store = store
        self.device = device or {"kind": "cpu", "name": "test", "total_mb": 4096}
        self.executors: list[Executor] = []
        self.tasks: list[asyncio.Task[None]] = []
        self.clients: list[aioredis.Redis] = []

    async def start(self, plane: str, *, services: list[Any] | None = None, **overrides: Any) -> Executor:
        """An executor of `plane`; `services` adds test-only services to the plane's registry."""
        settings = self.settings.model_copy(update=overrides) if overrides else self.settings
        reg = registry(plane)  # type: ignore[arg-type]
        if services:
            reg = Registry(plane, [*reg.services.values(), *services])  # type: ignore[arg-type]
        client = executor_client(settings.redis_url)  # type: ignore[arg-type]
        self.clients.append(client)
        ex = Executor(settings, plane, reg, client, self.store, LocalStore(settings.artifacts_dir),  # type: ignore[arg-type]
                      device=self.device if plane == "gpu" else None)
        self.executors.append(ex)
        self.tasks.append(asyncio.create_task(ex.run()))
        return ex

    async def both(self, **overrides: Any) -> None:
        await self.start("control", **overrides)
        await self.start("gpu", **overrides)

    async def ready(self) -> None:
        """Until every executor's consumer joined its group (so a cancel or claim test is not racing start-up)."""
        for _ in range(200):
            if all(ex.started.is_set() for ex in self.executors):
                return
            await asyncio.sleep(0.01)
        raise AssertionError("executors did not start")

    async def published(self) -> None:
        """Until every executor's live manifest is in Redis (what the API's planner and /health read)."""
        probe = self.clients[0]
        for _ in range(500):
            if await probe.zcard(C.MANIFEST_DEADLINES) >= len(self.executors):
                return
            await asyncio.sleep(0.01)
        raise AssertionError("executors did not publish their manifests")

    async def close(self) -> None:
        for ex in self.executors:
            ex.stop()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        for c in self.clients:
            await c.aclose()
