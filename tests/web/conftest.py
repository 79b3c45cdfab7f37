"""A live API (uvicorn on a loopback port, in the test's loop) and in-process executors for both planes."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis
import uvicorn

from executors.core import Executor
from spinbot.artifacts import LocalStore
from spinbot.manifests_io import registry
from spinbot.settings import Settings
from spinbot.store import Store
from web.app import create_app


@dataclass
class LiveAPI:
    url: str
    settings: Settings
    app: Any

    def client(self, key: str | None = None, **kw: Any) -> httpx.AsyncClient:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.AsyncClient(base_url=self.url, headers=headers, timeout=30, **kw)

    @property
    def services(self) -> Any:
        return self.app.state.services


@contextlib.asynccontextmanager
async def serve(settings: Settings) -> AsyncIterator[LiveAPI]:
    app = create_app(settings)
    config = uvicorn.Config(app, host="127.0.0.1", port=0, ws="none", lifespan="on", log_level="warning",
                            log_config=None, timeout_graceful_shutdown=1)
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    for _ in range(500):
        if server.started or task.done():
            break
        await asyncio.sleep(0.01)
    if task.done():
        task.result()
        raise RuntimeError("uvicorn did not start")
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield LiveAPI(f"http://127.0.0.1:{port}", settings, app)
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)


@pytest.fixture
def api_settings(settings: Settings) -> Settings:
    """Diagnostic services visible, short limits so tests see them."""
    return settings.model_copy(update={"diag_visible": True, "chat_job_limit_s": 20.0, "sse_ping_s": 5.0})


@pytest.fixture
async def api(api_settings: Settings) -> AsyncIterator[LiveAPI]:
    async with serve(api_settings) as live:
        yield live


class Executors:
    """Both planes' executors as tasks in this test's loop, on the test's Redis and Postgres."""

    def __init__(self, settings: Settings, store: Store) -> None:
        self.settings = settings
        self.store = store
        self.executors: list[Executor] = []
        self.tasks: list[asyncio.Task[None]] = []
        self.clients: list[aioredis.Redis] = []

    async def start(self) -> Executors:
        for plane in ("control", "gpu"):
            client = aioredis.Redis.from_url(self.settings.redis_url or "", decode_responses=True)
            self.clients.append(client)
            device = {"kind": "cpu", "name": "test", "total_mb": 4096} if plane == "gpu" else None
            ex = Executor(self.settings, plane, registry(plane), client, self.store,  # type: ignore[arg-type]
                          LocalStore(self.settings.artifacts_dir), device=device)
            self.executors.append(ex)
            self.tasks.append(asyncio.create_task(ex.run()))
        for _ in range(500):
            if all(ex.started.is_set() for ex in self.executors):
                break
            await asyncio.sleep(0.01)
        # The live manifest is published by the executors' heartbeat: wait until both planes show.
        probe = self.clients[0]
        for _ in range(500):
            if len([k async for k in probe.scan_iter(match="spinbot:manifest:*")]) >= 2:
                return self
            await asyncio.sleep(0.01)
        raise AssertionError("executors did not publish their manifests")

    async def close(self) -> None:
        for ex in self.executors:
            ex.stop()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        for c in self.clients:
            await c.aclose()


@pytest.fixture
async def executors(api_settings: Settings, store: Store) -> AsyncIterator[Executors]:
    ex = await Executors(api_settings, store).start()
    yield ex
    await ex.close()


def diag_graph(*nodes: dict[str, Any], workflow: str = "wf") -> dict[str, Any]:
    return {"schema": "langgraph.v1", "workflowId": workflow, "nodes": list(nodes)}


def wait_node(node_id: str, seconds: float, steps: int = 5, plane: str = "control") -> dict[str, Any]:
    return {"id": node_id, "service": "diag.wait", "plane": plane, "params": {"seconds": seconds, "steps": steps}}


def echo_node(node_id: str, text: str = "hi", plane: str = "control") -> dict[str, Any]:
    return {"id": node_id, "service": "diag.echo", "plane": plane, "params": {"text": text}}


async def read_sse(response: httpx.Response, *, stop_after: int | None = None) -> list[dict[str, Any]]:
    """Parse an SSE body into {id, event, data} dicts (data JSON-decoded when possible)."""
    import json

    out: list[dict[str, Any]] = []
    cur: dict[str, Any] = {"id": None, "event": "message", "data": []}
    async for line in response.aiter_lines():
        if line == "":
            if cur["data"]:
                raw = "\n".join(cur["data"])
                try:
                    data = json.loads(raw)
                except ValueError:
                    data = raw
                out.append({"id": cur["id"], "event": cur["event"], "data": data})
                if stop_after is not None and len(out) >= stop_after:
                    return out
            cur = {"id": None, "event": "message", "data": []}
        elif line.startswith(":"):
            continue
        else:
            field, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if field == "data":
                cur["data"].append(value)
            elif field in ("id", "event"):
                cur[field] = value
    return out
