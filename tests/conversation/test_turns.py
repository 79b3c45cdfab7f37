"""What a killed API leaves behind: its chat turns are answered by another API (conversation/turns.py), and its
Redis keys expire within a minute (the event hub's wake streams, spinbot/queue/hub.py)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from spinbot import constants as C
from spinbot.embedded import free_port
from spinbot.queue.hub import WAKE_TTL_S, EventHub
from spinbot.settings import Settings
from tests.web.conftest import LiveAPI, read_sse, serve
from tests.web.test_chat import _events, diag_plan

ROOT = Path(__file__).resolve().parents[2]


def start_api(settings: Settings, port: int, log: Path, **extra: str) -> subprocess.Popen[bytes]:
    """`spinbot api` as its own process on the test's Redis, Postgres and data dir; returns once it answers."""
    env = {**os.environ, "SPINBOT_REDIS_URL": str(settings.redis_url),
           "SPINBOT_DATABASE_URL": str(settings.database_url), "SPINBOT_DATA_DIR": str(settings.data_dir),
           "SPINBOT_HOST": "127.0.0.1", "SPINBOT_PORT": str(port), "SPINBOT_API_KEYS": "",
           "SPINBOT_OLLAMA_URL": settings.ollama_url, "SPINBOT_PLANNER_TRUST": settings.planner_trust,
           "SPINBOT_PLANNER_DIRECT_PLANS": "true",
           "SPINBOT_TURN_LEASE_S": str(settings.turn_lease_s), **extra}
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "shell.cli", "api"], cwd=ROOT, env=env, stdout=out,
                                stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code in (200, 503):
                return proc
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError("the API did not start: " + log.read_text())


async def last_answer(api: LiveAPI, conv_id: str, *, within_s: float) -> dict[str, Any]:
    """The conversation's last message once its turn is closed (or whatever it is after within_s)."""
    async with api.client() as c:
        deadline = time.monotonic() + within_s
        while True:
            last = (await c.get(f"/api/conversations/{conv_id}")).json()["messages"][-1]
            if (last.get("metadata") or {}).get("turn") == "done" or time.monotonic() > deadline:
                return last  # type: ignore[no-any-return]
            await asyncio.sleep(0.2)


@pytest.mark.slow
@pytest.mark.timeout(240)
async def test_a_turn_whose_api_was_killed_gets_its_answer_from_another_api(
        api_settings: Settings, executors: Any, fake_ollama: Any, tmp_path: Path) -> None:
    settings = api_settings.model_copy(update={"ollama_url": fake_ollama.url, "planner_direct_plans": True,
                                               "turn_lease_s": 1.5})
    fake_ollama.replies.append(diag_plan(seconds=3.0))
    port = free_port()
    first = await asyncio.to_thread(start_api, settings, port, tmp_path / "api1.log")
    try:
        async with serve(settings) as other, httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as c:
            async with c.stream("POST", "/api/chat", json={"message": "make a slow echo"}) as resp:
                assert resp.status_code == 200
                seen = []
                async for ev in _events(resp):
                    seen.append(ev)
                    if ev["event"] == "job":
                        break
                first.kill()  # kill -9 while the job runs
                first.wait(10)
            wake_keys = [k async for k in other.services.redis.scan_iter(match=f"{C.PREFIX}:sse:wake:*")]
            assert wake_keys  # the dead API's hub shard followed the job
            for key in wake_keys:
                assert 0 < await other.services.redis.ttl(key) <= WAKE_TTL_S
            conv_id = next(e["data"]["id"] for e in seen if e["event"] == "conversation")
            job_id = next(e["data"]["job_id"] for e in seen if e["event"] == "job")
            # the claim of the dead API lapses, the job ends, and the other API writes the answer
            last = await last_answer(other, conv_id, within_s=60)
            assert last["job_id"] == job_id
            assert last["content"].startswith("Done: 2 steps ran"), last["content"]
            assert last["metadata"]["turn"] == "done" and last["metadata"]["status"] == "completed"
            assert await other.services.redis.zscore(C.OPEN_TURNS, str(last["id"])) is None
    finally:
        if first.poll() is None:
            first.kill()
            first.wait(10)


async def test_a_turn_answered_by_its_own_api_is_not_answered_again(
        api_settings: Settings, executors: Any, fake_ollama: Any) -> None:
    """The live API closes the turn; a sweep afterwards (any API's) finds nothing to do."""
    from conversation.turns import sweep

    settings = api_settings.model_copy(update={"ollama_url": fake_ollama.url, "planner_direct_plans": True})
    fake_ollama.replies.append(diag_plan(seconds=0.2))
    async with serve(settings) as api, api.client() as c:
        async with c.stream("POST", "/api/chat", json={"message": "make a quick echo"}) as resp:
            events = await read_sse(resp)
        conv_id = next(e["data"]["id"] for e in events if e["event"] == "conversation")
        last = await last_answer(api, conv_id, within_s=5)
        assert last["metadata"]["turn"] == "done" and last["content"].startswith("Done:")
        assert await api.services.redis.zcard(C.OPEN_TURNS) == 0
        assert await sweep(api.services) == []


async def test_a_live_hub_renews_its_wake_stream_and_a_stopped_one_lets_it_expire(
        redis: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("spinbot.queue.hub.WAKE_TTL_S", 1)
    hub = EventHub(redis, block_ms=100)
    sub = await hub.subscribe("j1")
    try:
        await asyncio.sleep(2.5)  # past the TTL more than twice: renewed while the shard runs
        keys = [k async for k in redis.scan_iter(match=f"{C.PREFIX}:sse:wake:*")]
        assert len(keys) == 1 and 0 < await redis.ttl(keys[0]) <= 1
    finally:
        hub.unsubscribe(sub)
    task = hub._shards[0].task
    assert task is not None
    while not task.done():  # the process stops without cleaning up (what kill -9 does to it)
        task.cancel()
        await asyncio.wait([task], timeout=0.5)
    await asyncio.sleep(1.5)
    assert [k async for k in redis.scan_iter(match=f"{C.PREFIX}:sse:wake:*")] == []
