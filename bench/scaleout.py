"""Many processes, one truth: 2 APIs + 2 executors per plane on one Redis and one Postgres, kill -9 midway.

    .venv/bin/python bench/scaleout.py [--runs 3] [--turns 16] [--jobs 24]

Each run starts private Redis and Postgres, a scripted Ollama (tests/fake_ollama.py: every plan is
echo -> wait on the GPU plane -> echo), two `spinbot api` and two `spinbot executor` per plane, all
real processes. Then, with both APIs up:
- limits: 10 concurrent POST /api/jobs for one key, 5 per API, with SPINBOT_MAX_JOBS_PER_KEY=4 (admitted
  must be 4); 8 concurrent event streams for one key, 4 per API, with SPINBOT_MAX_STREAMS_PER_KEY=3
  (admitted must be 3);
- load: `--turns` chat turns (POST /api/chat, alternating APIs) and `--jobs` jobs (POST /api/jobs), each key
  at most 4 at once; every third job is cancelled through the API that did not submit it.
Once half the turns API 1 follows have their job, API 1 and one GPU executor are killed (SIGKILL). The bench then
waits for every job to end and every turn's conversation to hold its final answer (read from API 2).
Printed per run: Postgres deadlocks (pg_stat_database), 5xx answers seen by the clients, turns with
their answer, the limits admitted, cancels answered, jobs ended; then min/median/max over the runs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.api_process import start_api  # noqa: E402
from spinbot.embedded import PostgresServer, RedisServer, free_port  # noqa: E402
from tests.fake_ollama import FakeOllama  # noqa: E402

KEYS = [f"key{i:02d}" for i in range(40)]
LIMIT_KEY, STREAM_KEY = KEYS[0], KEYS[1]
PLAN = {"steps": [
    {"id": "say", "service": "diag.echo", "params": {"text": "hello"}, "inputs": {}},
    {"id": "wait", "service": "diag.wait", "params": {"seconds": 2.0, "steps": 4}, "inputs": {"text": "say.text"}},
]}
JOB = {"schema": "langgraph.v1", "workflowId": "scaleout", "nodes": [
    {"id": "a", "service": "diag.echo", "plane": "control", "params": {"text": "x"}},
    {"id": "b", "service": "diag.wait", "plane": "gpu", "params": {"seconds": 1.5, "steps": 3}},
    {"id": "c", "service": "diag.echo", "plane": "control", "params": {"text": "y"}},
], "edges": [{"from": "a", "to": "b"}, {"from": "b", "to": "c"}]}
SETTINGS = {"MAX_JOBS_PER_KEY": "4", "MAX_STREAMS_PER_KEY": "3", "API_KEYS": ",".join(KEYS),
            "PLANNER_TRUST": "rules", "PLANNER_DIRECT_PLANS": "true",
            "TURN_LEASE_S": "6", "CLAIM_IDLE_MS": "6000", "HEARTBEAT_S": "1"}


class Counts:
    def __init__(self) -> None:
        self.status: dict[int, int] = {}
        self.cut = 0  # requests cut by the kill (connection closed): not answers

    def saw(self, code: int) -> None:
        self.status[code] = self.status.get(code, 0) + 1

    @property
    def server_errors(self) -> int:
        return sum(n for code, n in self.status.items() if code >= 500)


class Run:
    """One run's processes and clients."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.procs: list[subprocess.Popen[bytes]] = []
        self.counts = Counts()

    def start(self) -> None:
        self.redis = RedisServer(self.tmp / "redis").start(quiet=True)
        self.pg = PostgresServer(self.tmp / "pg").start(quiet=True)
        self.ollama = FakeOllama().start()
        self.ollama.replies.extend([PLAN] * 1000)
        settings = {**SETTINGS, "OLLAMA_URL": self.ollama.url}
        self.ports = [free_port(), free_port()]
        for i, port in enumerate(self.ports):
            self.procs.append(start_api(self.redis.url, self.pg.url, self.tmp / f"api{i}", port, **settings))
        env = {**os.environ, "SPINBOT_REDIS_URL": self.redis.url, "SPINBOT_DATABASE_URL": self.pg.url,
               "SPINBOT_DATA_DIR": str(self.tmp / "api0"), **{f"SPINBOT_{k}": v for k, v in settings.items()}}
        for plane in ("control", "control", "gpu", "gpu"):
            with (self.tmp / f"executor-{plane}-{len(self.procs)}.log").open("wb") as log:
                self.procs.append(subprocess.Popen([sys.executable, "-m", "shell.cli", "executor", plane],
                                                   env=env, stdout=log, stderr=subprocess.STDOUT))
        for port in self.ports:  # ready: both planes online
            deadline = time.monotonic() + 180
            while httpx.get(f"http://127.0.0.1:{port}/health", params={"ready": 1}, timeout=5).status_code != 200:
                if time.monotonic() > deadline:
                    raise SystemExit("the executors did not come up; see the logs in " + str(self.tmp))
                time.sleep(0.5)

    def stop(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.kill()
            p.wait(10)
        self.ollama.stop()
        self.pg.stop()
        self.redis.stop()

    def client(self, api: int, key: str) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=f"http://127.0.0.1:{self.ports[api]}", timeout=60,
                                 headers={"Authorization": f"Bearer {key}"})

    async def deadlocks(self) -> int:
        conn = await asyncpg.connect(self.pg.url)
        try:
            return int(await conn.fetchval("SELECT sum(deadlocks) FROM pg_stat_database"))
        finally:
            await conn.close()


async def limits(run: Run) -> tuple[int, int]:
    """(jobs admitted of 10 with a limit of 4, streams admitted of 8 with a limit of 3), both APIs at once."""
    clients = [run.client(0, LIMIT_KEY), run.client(1, LIMIT_KEY)]
    replies = await asyncio.gather(*(c.post("/api/jobs", json={"graph": JOB}) for c in clients * 5))
    for r in replies:
        run.counts.saw(r.status_code)
    admitted = [r.json()["id"] for r in replies if r.status_code == 202]
    streams = [run.client(0, STREAM_KEY), run.client(1, STREAM_KEY)]
    slow = {"schema": "langgraph.v1", "workflowId": "streams", "nodes": [
        {"id": "w", "service": "diag.wait", "plane": "control", "params": {"seconds": 30, "steps": 3}}]}
    followed = (await streams[0].post("/api/jobs", json={"graph": slow})).json()["id"]
    opened = 0
    stop = asyncio.Event()

    async def follow(c: httpx.AsyncClient, job: str) -> None:
        nonlocal opened
        async with c.stream("GET", f"/api/jobs/{job}/events") as resp:
            run.counts.saw(resp.status_code)
            if resp.status_code == 200:
                opened += 1
                await stop.wait()

    tasks = [asyncio.create_task(follow(c, followed)) for c in streams * 4]
    await asyncio.sleep(3)
    stop.set()
    await asyncio.gather(*tasks)
    await streams[1].post(f"/api/jobs/{followed}/cancel")
    for job in admitted:
        await clients[1].post(f"/api/jobs/{job}/cancel")
    for c in clients + streams:
        await c.aclose()
    return len(admitted), opened


async def turn(run: Run, api: int, key: str, has_job: asyncio.Event) -> str | None:
    """One chat turn; its conversation id (None if refused). Reads until `done` or the kill cuts it."""
    conv: str | None = None
    async with run.client(api, key) as c:
        try:
            async with c.stream("POST", "/api/chat", json={"message": "make a slow echo"}) as resp:
                run.counts.saw(resp.status_code)
                if resp.status_code != 200:
                    return None
                event = ""
                async for line in resp.aiter_lines():
                    if line.startswith("event: "):
                        event = line[7:]
                        has_job.set() if event == "job" else None
                    elif line.startswith("data: ") and event == "conversation":
                        conv = json.loads(line[6:])["id"]
        except httpx.HTTPError:
            run.counts.cut += 1
    return conv


async def job(run: Run, api: int, key: str, cancel: bool) -> tuple[str | None, bool | None]:
    """Submit a job as `key`; with `cancel`, cancel it through the other API. (id, cancel answered 200?)."""
    async with run.client(api, key) as c, run.client(1 - api, key) as other:
        try:
            r = await c.post("/api/jobs", json={"graph": JOB})
        except httpx.HTTPError:
            run.counts.cut += 1
            return None, None
        run.counts.saw(r.status_code)
        if r.status_code != 202:
            return None, None
        if not cancel:
            return r.json()["id"], None
        await asyncio.sleep(0.5)
        try:
            answer = await other.post(f"/api/jobs/{r.json()['id']}/cancel")
        except httpx.HTTPError:
            run.counts.cut += 1
            return r.json()["id"], False
        run.counts.saw(answer.status_code)
        return r.json()["id"], answer.status_code == 200


async def one_run(tmp: Path, turns: int, jobs: int) -> dict[str, Any]:
    run = Run(tmp)
    await asyncio.to_thread(run.start)
    try:
        before = await run.deadlocks()
        admitted, opened = await limits(run)
        flags = [asyncio.Event() for _ in range(turns)]
        turn_tasks = [asyncio.create_task(turn(run, i % 2, KEYS[2 + i], flags[i])) for i in range(turns)]
        job_keys = [KEYS[2 + turns + i // 3] for i in range(jobs)]  # 3 jobs per key: under its limit of 4
        job_tasks = [asyncio.create_task(job(run, i % 2, job_keys[i], i % 3 == 2)) for i in range(jobs)]
        on_first = flags[::2]  # the turns API 1 (killed) follows: half of them have their job when it dies
        while sum(f.is_set() for f in on_first) < len(on_first) // 2:  # noqa: ASYNC110 (events of many tasks)
            await asyncio.sleep(0.1)
        run.procs[0].kill()  # API 1
        run.procs[4].kill()  # a GPU executor
        convs = await asyncio.gather(*turn_tasks)
        job_results = await asyncio.gather(*job_tasks)
        ids = [(j, key) for (j, _), key in zip(job_results, job_keys, strict=True) if j]
        cancels = [ok for _, ok in job_results if ok is not None]
        async with run.client(1, KEYS[2]) as c:
            deadline = time.monotonic() + 120
            ended = answered = with_job = 0
            while time.monotonic() < deadline:
                ended = answered = with_job = 0
                for j, key in ids:
                    r = await c.get(f"/api/jobs/{j}", headers={"Authorization": f"Bearer {key}"})
                    ended += r.json().get("status") in ("completed", "failed", "cancelled")
                for i, conv in enumerate(convs):
                    if conv is None:
                        continue
                    r = await c.get(f"/api/conversations/{conv}", headers={"Authorization": f"Bearer {KEYS[2 + i]}"})
                    ran = [m for m in r.json()["messages"] if m["role"] == "assistant" and m.get("job_id")]
                    with_job += bool(ran)  # a turn killed while planning has no job and nothing to answer
                    answered += bool(ran) and all((m.get("metadata") or {}).get("turn") == "done" for m in ran)
                if ended == len(ids) and answered == with_job:
                    break
                await asyncio.sleep(1)
        await asyncio.sleep(1.5)  # Postgres' statistics are flushed about once a second
        return {"deadlocks": await run.deadlocks() - before, "5xx": run.counts.server_errors, "cut": run.counts.cut,
                "turns": f"{answered}/{with_job}", "answered": answered, "unanswered": with_job - answered,
                "no_job": sum(c is not None for c in convs) - with_job, "jobs_limit": admitted, "streams_limit": opened,
                "cancels": f"{sum(cancels)}/{len(cancels)}", "jobs": f"{ended}/{len(ids)}"}
    finally:
        await asyncio.to_thread(run.stop)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--turns", type=int, default=16)
    ap.add_argument("--jobs", type=int, default=24)
    args = ap.parse_args()
    console = Console(width=200)
    table = Table(title=f"scale-out: 2 APIs + 2 executors per plane, kill -9 of API 1 and a GPU executor midway "
                        f"({args.turns} chat turns, {args.jobs} jobs, every 3rd cancelled via the other API)")
    for col in ("run", "deadlocks", "5xx", "requests cut by the kill", "turns answered / with a job",
                "turns killed before their job", "jobs admitted (limit 4 of 10)", "streams admitted (limit 3 of 8)",
                "cancels answered", "jobs ended", "load avg"):
        table.add_column(col, justify="right")
    rows = []
    for i in range(args.runs):
        tmp = tempfile.mkdtemp(prefix="spinbot-scaleout-")
        r = asyncio.run(one_run(Path(tmp), args.turns, args.jobs))
        if r["unanswered"] or r["deadlocks"] or r["5xx"]:
            console.print(f"run {i + 1}: logs kept in {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
        rows.append(r)
        table.add_row(str(i + 1), str(r["deadlocks"]), str(r["5xx"]), str(r["cut"]), r["turns"], str(r["no_job"]),
                      str(r["jobs_limit"]), str(r["streams_limit"]), r["cancels"], r["jobs"],
                      f"{os.getloadavg()[0]:.1f}")
    for name, key in (("min", min), ("median", statistics.median), ("max", max)):
        cell = {k: f"{key([r[k] for r in rows]):g}" for k in ("deadlocks", "5xx", "cut", "unanswered", "no_job",
                                                               "jobs_limit", "streams_limit")}
        table.add_row(name, cell["deadlocks"], cell["5xx"], cell["cut"], f"{cell['unanswered']} unanswered",
                      cell["no_job"], cell["jobs_limit"], cell["streams_limit"], "", "", "")
    console.print(table)
    console.print(f"{os.cpu_count()} cores shared with other work; load average now {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
