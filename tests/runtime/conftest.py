"""Executors for runtime tests: in-process asyncio tasks, or real `spinbot executor` subprocesses."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from spinbot.graph import Graph
from spinbot.queue import TERMINAL_JOB, Event, JobQueue, JobState
from spinbot.settings import Settings
from spinbot.store import Store
from tests.harness import InProcess

ROOT = Path(__file__).resolve().parents[2]


def graph(nodes: list[dict[str, Any]], edges: list[tuple[str, str]] = (), **extra: Any) -> Graph:  # type: ignore[assignment]
    doc = {"schema": "langgraph.v1", "workflowId": "test", "nodes": nodes,
           "edges": [{"from": a, "to": b} for a, b in edges], **extra}
    return Graph.model_validate(doc)


async def wait_terminal(q: JobQueue, job_id: str, timeout: float = 30.0) -> JobState:  # noqa: ASYNC109
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        st = await q.get(job_id)
        if st and st.status in TERMINAL_JOB:
            return st
        await asyncio.sleep(0.02)
    st = await q.get(job_id)
    raise AssertionError(f"job {job_id} not terminal after {timeout} s: {st}")


async def all_events(q: JobQueue, job_id: str) -> list[Event]:
    out: list[Event] = []
    after = "0-0"
    while batch := await q.read_events(job_id, after, count=1000):
        out += batch
        after = batch[-1].id
    return out


@pytest.fixture
async def inproc(settings: Settings, store: Store) -> AsyncIterator[InProcess]:
    runner = InProcess(settings, store)
    yield runner
    await runner.close()


@pytest.fixture
async def queue(redis: aioredis.Redis, store: Store) -> JobQueue:
    q = JobQueue(redis, store)
    await q.ensure_groups()
    return q


def executor_env(settings: Settings, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update({
        "SPINBOT_REDIS_URL": str(settings.redis_url), "SPINBOT_DATABASE_URL": str(settings.database_url),
        "SPINBOT_DATA_DIR": str(settings.data_dir), "SPINBOT_CLAIM_IDLE_MS": str(settings.claim_idle_ms),
        "SPINBOT_HEARTBEAT_S": str(settings.heartbeat_s), "PYTHONUNBUFFERED": "1",
    })
    env.update(extra)
    return env


@pytest.fixture
def spawn(settings: Settings, tmp_path: Path) -> Callable[..., subprocess.Popen[bytes]]:
    """Start `python -m shell.cli executor PLANE` as a real subprocess; killed at teardown."""
    procs: list[subprocess.Popen[bytes]] = []

    def start(plane: str, **env: str) -> subprocess.Popen[bytes]:
        with (tmp_path / f"executor-{plane}-{len(procs)}.log").open("wb") as log:
            p = subprocess.Popen([sys.executable, "-m", "shell.cli", "executor", plane], cwd=ROOT,
                                 env=executor_env(settings, **env), stdout=log, stderr=subprocess.STDOUT)
        procs.append(p)
        return p

    yield start  # type: ignore[misc]
    for p in procs:
        if p.poll() is None:
            p.kill()
        p.wait(10)
