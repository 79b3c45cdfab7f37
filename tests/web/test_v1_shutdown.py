"""SIGTERM to the API while a /v1 answer streams: the stream ends with an error the client shows, a
finish_reason and [DONE], and the job goes on (issue 22, item 7)."""

from __future__ import annotations

import asyncio
import json
import re
import signal

import httpx
import redis.asyncio as aioredis
import uvicorn
from sse_starlette.sse import AppStatus

from spinbot.queue import JobQueue
from spinbot.settings import Settings
from tests.harness import InProcess
from tests.runtime.conftest import wait_terminal
from tests.web.test_chat import diag_plan
from web.app import StreamClosingServer, create_app


async def test_sigterm_ends_a_v1_stream_with_an_error_chunk_and_the_job_goes_on(
        api_settings: Settings, executors: InProcess, fake_ollama, redis: aioredis.Redis) -> None:  # noqa: ANN001
    fake_ollama.replies.append(diag_plan(seconds=3.0))
    settings = api_settings.model_copy(update={"ollama_url": fake_ollama.url, "planner_direct_plans": True})
    config = uvicorn.Config(create_app(settings), host="127.0.0.1", port=0, ws="none", lifespan="on",
                            log_level="warning", log_config=None, timeout_graceful_shutdown=5)
    server = StreamClosingServer(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        assert not task.done()
        await asyncio.sleep(0.01)
    url = f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"
    data: list[str] = []
    job_id = None
    try:
        async with httpx.AsyncClient(base_url=url, timeout=30) as c, c.stream(
                "POST", "/v1/chat/completions",
                json={"model": "spinbot", "stream": True,
                      "messages": [{"role": "user", "content": "make a slow echo"}]}) as resp:
            assert resp.status_code == 200
            async for line in resp.aiter_lines():
                if not line.startswith("data: "):
                    continue
                data.append(line.removeprefix("data: "))
                if job_id is None and (m := re.search(r"Job `([0-9a-f]{32})`", line)):
                    job_id = m.group(1)
                    server.handle_exit(signal.SIGTERM, None)  # what uvicorn's signal handler calls
                    server._captured_signals.clear()  # noqa: SLF001 (else uvicorn re-raises it at pytest on exit)
        await asyncio.wait_for(task, 15)
    finally:
        AppStatus.should_exit = False  # sse-starlette's process-wide flag, set by the handler above
        server.should_exit = True
        await asyncio.gather(task, return_exceptions=True)
    assert job_id is not None, data
    assert data[-1] == "[DONE]", data[-4:]
    chunks = [json.loads(d) for d in data[:-1]]
    [error] = [c["error"] for c in chunks if "error" in c]
    assert error["type"] == "server_error" and error["code"] == "server_shutting_down"
    assert "Your job goes on" in error["message"] and f"/jobs/{job_id}" in error["message"]
    content = "".join(ch["delta"].get("content") or "" for c in chunks for ch in c.get("choices", []))
    assert "Your job goes on" in content  # a client that ignores errors still shows what happened
    assert [ch["finish_reason"] for c in chunks for ch in c.get("choices", []) if ch["finish_reason"]] == ["stop"]
    # The job was not cancelled with the stream: the executors finish it.
    assert (await wait_terminal(JobQueue(redis, None), job_id, 20)).status == "completed"
