"""Real executor subprocesses: `spinbot submit --wait`, kill -9 at random moments, a Redis restart."""

from __future__ import annotations

import asyncio
import json
import random
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis
import redis.exceptions

from spinbot.capabilities import live_manifests, withdraw
from spinbot.embedded import RedisServer
from spinbot.graph import node_ref
from spinbot.queue import TERMINAL_JOB, Event, JobQueue
from spinbot.settings import Settings
from spinbot.store import Store
from tests.runtime.conftest import ROOT, InProcess, all_events, executor_env, graph

Spawn = Callable[..., subprocess.Popen[bytes]]


def chain(i: int, wait_s: float = 0.15) -> dict[str, Any]:
    """Five nodes alternating planes, data flowing down the chain."""
    return {
        "schema": "langgraph.v1", "workflowId": f"chain-{i}",
        "nodes": [
            {"id": "a", "service": "diag.echo", "plane": "control", "params": {"text": f"job{i}"}},
            {"id": "b", "service": "diag.wait", "plane": "gpu",
             "params": {"seconds": wait_s, "steps": 2, "text": node_ref("a", "text")}},
            {"id": "c", "service": "diag.echo", "plane": "control", "params": {"text": node_ref("b", "text")}},
            {"id": "d", "service": "diag.wait", "plane": "gpu",
             "params": {"seconds": wait_s, "steps": 2, "text": node_ref("c", "text")}},
            {"id": "e", "service": "diag.echo", "plane": "control",
             "params": {"data": [node_ref("d", "text"), node_ref("a", "text")]}},
        ],
    }


def check_no_rerun(job: str, events: list[Event]) -> tuple[int, int]:
    """Every node completed exactly once and never started again after completing.

    Returns (node runs interrupted and run again, times the job was resumed by another executor).
    """
    completed: set[str] = set()
    starts = resumed = 0
    for e in events:
        resumed += e.type == "log" and "resumed by" in e.data["message"]
        if e.type != "node":
            continue
        node, status = e.data["node"], e.data["status"]
        assert node not in completed, f"job {job}: node {node} {status} after it completed"
        if status == "completed":
            completed.add(node)
        starts += status == "running"
    assert completed == {"a", "b", "c", "d", "e"}, (job, completed)
    return starts - len(completed), resumed


async def cli(settings: Settings, *args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "shell.cli", *args, cwd=ROOT, env=executor_env(settings),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    return proc.returncode or 0, out.decode(), err.decode()


async def test_submit_cli_waits_and_reports(spawn: Spawn, settings: Settings, queue: JobQueue,
                                            tmp_path: Path) -> None:
    from spinbot.embedded import free_port

    metrics_port = free_port()
    spawn("control")
    spawn("gpu", SPINBOT_METRICS_PORT=str(metrics_port))
    good = tmp_path / "good.json"
    good.write_text(json.dumps(chain(1, wait_s=0.1)))
    code, out, err = await cli(settings, "submit", str(good), "--wait")
    assert code == 0, err
    job = out.strip()
    st = await queue.get(job)
    assert st and st.status == "completed" and st.owner == "local"
    assert "job completed" in err and '"data": ["job1", "job1"]' in err
    async with httpx.AsyncClient() as http:
        metrics = (await http.get(f"http://127.0.0.1:{metrics_port}/metrics")).text
    assert 'spinbot_node_duration_seconds_count{plane="gpu",service="diag.wait",status="completed"} 2.0' in metrics
    assert 'spinbot_handoffs_total{source="gpu",target="control"} 2.0' in metrics

    bad = tmp_path / "fail.json"
    bad.write_text(json.dumps({"schema": "langgraph.v1", "workflowId": "f", "nodes": [
        {"id": "x", "service": "diag.fail", "plane": "gpu", "params": {"mode": "permanent"}}]}))
    code, _, err = await cli(settings, "submit", str(bad), "--wait")
    assert code == 1 and "job failed" in err

    broken = tmp_path / "broken.json"
    broken.write_text('{"workflowId": "f", "nodes": [')
    code, _, err = await cli(settings, "submit", str(broken))
    assert code == 2 and "is not valid JSON" in err and "line 1" in err

    unknown = tmp_path / "unknown.json"
    unknown.write_text(json.dumps({"schema": "langgraph.v1", "workflowId": "u",
                                   "nodes": [{"id": "x", "service": "no.such", "plane": "gpu"}]}))
    code, _, err = await cli(settings, "submit", str(unknown))
    assert code == 2 and "unknown_service" in err and "service 'no.such'" in err


@pytest.mark.timeout(170)  # 25-40 s normally; six executor start-ups (torch, langgraph) crawl on a loaded box
async def test_kill_9_at_random_moments_loses_nothing(spawn: Spawn, settings: Settings, queue: JobQueue) -> None:
    """Executors are kill -9'd and restarted while 24 jobs run; every job completes, no node runs twice."""
    env = {"SPINBOT_MAX_DELIVERIES": "1000", "SPINBOT_CLAIM_IDLE_MS": "1000", "SPINBOT_HEARTBEAT_S": "0.2"}
    names = [f"{plane}-{i}" for plane in ("control", "gpu") for i in (1, 2, 3)]
    procs = {name: spawn(name.split("-")[0], **env) for name in names}
    rng = random.Random(20261121)

    def name_of(consumer: str) -> list[str]:
        pid = int(consumer.split("-")[-2])  # consumer names are plane-host-pid-suffix
        return [n for n, p in procs.items() if p.pid == pid]

    async def serving() -> set[str]:
        live = await live_manifests(queue.redis)
        return {n for m in live for n in name_of(m.executor or "")}

    async def victim() -> str | None:
        """An executor whose plane has another one serving: mostly one holding a job right now."""
        up = await serving()
        covered = [n for n in up if any(m != n and m[:3] == n[:3] for m in up)]
        for plane in ("gpu", "control"):  # gpu nodes run longest: most kills interrupt one
            info = await queue.redis.xpending(f"spinbot:plane:{plane}", "executors")
            holding = [n for c in info.get("consumers") or [] if int(c["pending"]) > 0
                       for n in name_of(c["name"]) if n in covered]
            if holding and rng.random() < 0.8:
                return rng.choice(sorted(holding))
        return rng.choice(sorted(covered)) if covered else None

    deadline = time.monotonic() + 35  # start-up is slow on a loaded 2-core machine (torch, langgraph imports)
    while len(await serving()) < len(names) and time.monotonic() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.2)
    jobs: list[str] = []
    kills = 0
    kill_phase_ends = time.monotonic() + 45

    async def submitter() -> None:
        """At least 20 jobs, and more while the kills go on."""
        i = 0
        while i < 20 or (kills < 10 and time.monotonic() < kill_phase_ends):
            jobs.append(await queue.submit(graph(**_kw(chain(i, wait_s=0.4))), owner="crash"))
            i += 1
            await asyncio.sleep(0.5)

    sub = asyncio.create_task(submitter())
    while kills < 10 and time.monotonic() < kill_phase_ends:
        await asyncio.sleep(rng.uniform(0.5, 1.5))
        name = await victim()
        if name is None:
            continue
        procs[name].kill()  # SIGKILL: no cleanup, no ack
        procs[name].wait()
        # its manifest outlives it by a few seconds: forget it now so it is not picked as a peer
        for m in await live_manifests(queue.redis):
            if not name_of(m.executor or ""):
                await withdraw(queue.redis, m.plane, m.executor or "")
        procs[name] = spawn(name.split("-")[0], **env)
        kills += 1
    await sub
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        states = [await queue.get(j) for j in jobs]
        if all(s and s.status in TERMINAL_JOB for s in states):
            break
        await asyncio.sleep(0.2)
    assert kills >= 6 and len(jobs) >= 20
    interrupted = resumed = 0
    for i, job in enumerate(jobs):
        st = await queue.get(job)
        assert st and st.status == "completed", (job, st and st.status, st and st.error)
        out = {n["id"]: n["output"] for n in st.graph["nodes"]}
        assert out["e"]["data"] == [f"job{i}", f"job{i}"]
        reruns, resumes = check_no_rerun(job, await all_events(queue, job))
        interrupted, resumed = interrupted + reruns, resumed + resumes
    # the kills landed mid-job: jobs were taken over, running nodes were interrupted and ran again
    assert resumed >= 3 and interrupted >= 1, (resumed, interrupted)


def _kw(doc: dict[str, Any]) -> dict[str, Any]:
    return {"nodes": doc["nodes"], "workflowId": doc["workflowId"]}


async def test_redis_restart_loses_no_accepted_job(settings: Settings, store: Store, tmp_path: Path) -> None:
    server = RedisServer(tmp_path / "private-redis").start()
    client = aioredis.Redis.from_url(server.url, decode_responses=True)
    runner = InProcess(settings.model_copy(update={"redis_url": server.url}), store)
    try:
        q = JobQueue(client, store)
        await q.ensure_groups()
        await runner.both()
        jobs = [await q.submit(graph(**_kw(chain(i, wait_s=0.3))), owner="r") for i in range(6)]
        await asyncio.sleep(0.5)
        states_before = [await q.get(j) for j in jobs]
        assert not all(s and s.status in TERMINAL_JOB for s in states_before)  # the restart lands mid-run
        server.stop()  # SIGTERM: Redis writes its AOF and exits
        await asyncio.sleep(0.5)
        server.start()  # same port, same directory
        deadline = time.monotonic() + 60
        states: dict[str, Any] = {}
        while time.monotonic() < deadline and len(states) < len(jobs):
            try:
                for j in jobs:
                    st = await q.get(j)
                    if st and st.status in TERMINAL_JOB:
                        states[j] = st
            except redis.exceptions.ConnectionError:
                pass
            await asyncio.sleep(0.1)
        for i, j in enumerate(jobs):
            assert j in states, f"job {j} did not finish after the Redis restart"
            assert states[j].status == "completed"
            out = {n["id"]: n["output"] for n in states[j].graph["nodes"]}
            assert out["e"]["data"] == [f"job{i}", f"job{i}"]
            check_no_rerun(j, await all_events(q, j))
        assert await client.xlen("spinbot:plane:control") == await client.xlen("spinbot:plane:gpu") == 0
    finally:
        await runner.close()
        await client.aclose()
        server.stop(kill=True)


async def _log_contains(path: Path, text: str, timeout: float = 40.0) -> bool:  # noqa: ASYNC109
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and text in path.read_text(errors="replace"):  # noqa: ASYNC240 (a test's small log)
            return True
        await asyncio.sleep(0.2)
    return False


async def test_executor_waits_for_a_dead_redis_and_postgres(
    spawn: Spawn, settings: Settings, store: Store, tmp_path: Path
) -> None:
    """No crash loop: a clear error that names the problem, retries, and work once Redis is back."""
    from spinbot.embedded import free_port

    redis_port, pg_port = free_port(), free_port()
    redis_url = f"redis://127.0.0.1:{redis_port}/0"
    control = spawn("control", SPINBOT_REDIS_URL=redis_url)
    gpu = spawn("gpu", SPINBOT_DATABASE_URL=f"postgresql://spinbot@127.0.0.1:{pg_port}/postgres")
    assert await _log_contains(tmp_path / "executor-control-0.log",
                               f"Redis at {redis_url} is unreachable"), "no clear Redis error"
    assert await _log_contains(tmp_path / "executor-gpu-1.log",
                               f"Postgres at postgresql://spinbot@127.0.0.1:{pg_port}/postgres is unreachable")
    assert "fix SPINBOT_DATABASE_URL" in (tmp_path / "executor-gpu-1.log").read_text()
    assert control.poll() is None and gpu.poll() is None  # still alive, retrying
    server = RedisServer(tmp_path / "late-redis", port=redis_port).start()
    client = aioredis.Redis.from_url(redis_url, decode_responses=True)
    try:
        q = JobQueue(client, store)
        await q.ensure_groups()
        job = await q.submit(graph([{"id": "a", "service": "diag.echo", "plane": "control",
                                     "params": {"text": "back"}}]), owner="t")
        deadline = time.monotonic() + 40
        while time.monotonic() < deadline:
            st = await q.get(job)
            if st and st.status in TERMINAL_JOB:
                break
            await asyncio.sleep(0.1)
        assert st and st.status == "completed" and st.graph["nodes"][0]["output"]["text"] == "back"
    finally:
        await client.aclose()
        server.stop(kill=True)


async def test_postgres_down_mid_run_loses_nothing(
    settings: Settings, redis: aioredis.Redis, tmp_path: Path, caplog: Any
) -> None:
    """Jobs finish while Postgres is down; their record catches up once it is back."""
    from spinbot.embedded import PostgresServer

    pg = PostgresServer(tmp_path / "pg").start()
    store = None
    for _ in range(100):  # the server accepts connections a moment after it listens
        try:
            store = await Store.connect(pg.url)
            break
        except Exception:  # noqa: BLE001
            await asyncio.sleep(0.1)
    assert store is not None
    runner = InProcess(settings.model_copy(update={"database_url": pg.url}), store)
    try:
        q = JobQueue(redis, store)
        await q.ensure_groups()
        await runner.both()
        jobs = [await q.submit(graph(**_kw(chain(i, wait_s=0.3))), owner="pg") for i in range(3)]
        await asyncio.sleep(0.3)
        pg.stop(kill=True)  # Postgres dies mid-run
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            states = [await q.get(j) for j in jobs]
            if all(s and s.status in TERMINAL_JOB for s in states):
                break
            await asyncio.sleep(0.1)
        assert all(s and s.status == "completed" for s in states)
        assert "Postgres unreachable while finishing job" in caplog.text
        pg.start()  # back on the same port and data
        deadline = time.monotonic() + 40
        rows: list[Any] = []
        while time.monotonic() < deadline:
            try:
                rows = [await store.get_job(j) for j in jobs]
                if all(r and r["status"] == "completed" for r in rows):
                    break
            except Exception:  # noqa: BLE001 - the pool reconnects
                pass
            await asyncio.sleep(0.2)
        assert all(r and r["status"] == "completed" for r in rows), rows
        for j in jobs:
            events = await all_events(q, j)
            for _ in range(50):
                if await store.pool.fetchval("SELECT count(*) FROM job_events WHERE job_id=$1", j) == len(events):
                    break
                await asyncio.sleep(0.2)
            assert await store.pool.fetchval("SELECT count(*) FROM job_events WHERE job_id=$1", j) == len(events)
    finally:
        await runner.close()
        await store.close()
        pg.stop(kill=True)
