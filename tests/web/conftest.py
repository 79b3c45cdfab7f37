"""A live API (uvicorn on a loopback port, in the test's loop) and in-process executors for both planes."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import uvicorn

from spinbot.settings import Settings
from spinbot.store import Store
from tests.harness import InProcess
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
    return settings.model_copy(update={"chat_job_limit_s": 20.0, "sse_ping_s": 5.0})


@pytest.fixture
async def api(api_settings: Settings) -> AsyncIterator[LiveAPI]:
    async with serve(api_settings) as live:
        yield live


@pytest.fixture
async def executors(api_settings: Settings, store: Store) -> AsyncIterator[InProcess]:
    runner = InProcess(api_settings, store)
    await runner.both()
    await runner.ready()
    await runner.published()
    yield runner
    await runner.close()


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


def png_bytes(size: int = 64) -> bytes:
    """A real PNG (uploads are checked by content: it must decode)."""
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (size, size), (200, 120, 40)).save(buf, "PNG")
    return buf.getvalue()


def wav_bytes(seconds: float = 0.35, rate: int = 16000) -> bytes:
    """A real WAV: a 440 Hz tone, 16-bit mono (about 32 KB a second)."""
    import io
    import math
    import struct
    import wave

    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(b"".join(struct.pack("<h", int(8000 * math.sin(2 * math.pi * 440 * i / rate)))
                               for i in range(int(seconds * rate))))
    return buf.getvalue()
