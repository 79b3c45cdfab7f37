"""How the runtime's cost grows: chains of N nodes with K executors per plane (in one process).

    .venv/bin/python bench/handoff.py --scaling [--sizes 10,100,500] [--executors 1,2,3] [--fanout 3000]

For each (K, N): bytes written to Redis (INFO total_net_input_bytes: every command's bytes, all
clients) and to Postgres (WAL bytes, pg_current_wal_insert_lsn) per node, wall ms per node, hand-off
p50/p99 (a node's `completed` event to the next node's `running`, executors' clocks), nodes/s; then a
fan-out of M independent nodes with 2 executors per plane. The executors run as asyncio tasks of this
process (the same code as `spinbot executor`, no OS wake-ups between them); private Redis/Postgres
unless SPINBOT_REDIS_URL / SPINBOT_DATABASE_URL are set.
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis
from rich.console import Console
from rich.table import Table

from executors.core import Executor
from executors.manifests import registry
from spinbot import collector
from spinbot import constants as C
from spinbot.artifacts import LocalStore
from spinbot.graph import Graph, node_ref
from spinbot.queue import TERMINAL_JOB, JobQueue
from spinbot.redis_setup import executor_client
from spinbot.settings import Settings
from spinbot.store import Store

PLANES = ("control", "gpu")


def chain(n: int) -> Graph:
    nodes = [{"id": f"n{i}", "service": "diag.echo", "plane": PLANES[i % 2],
              "params": {"text": node_ref(f"n{i - 1}", "text") if i else "x"}} for i in range(n)]
    return Graph.model_validate({"schema": "langgraph.v1", "workflowId": "scaling-chain", "nodes": nodes})


def fanout(m: int) -> Graph:
    nodes: list[dict[str, Any]] = [{"id": "root", "service": "diag.echo", "plane": "control", "params": {"text": "r"}}]
    nodes += [{"id": f"f{i}", "service": "diag.echo", "plane": "gpu",
               "params": {"text": node_ref("root", "text"), "data": i}} for i in range(m)]
    return Graph.model_validate({"schema": "langgraph.v1", "workflowId": "scaling-fanout", "nodes": nodes})


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))] if ordered else float("nan")


class Plant:
    """K executors per plane as tasks of this process, and the meters."""

    def __init__(self, redis_url: str, database_url: str, data_dir: Path, k: int) -> None:
        # fan-out: up to 3,000 nodes each way; the API's limits do not apply to a queue-level submit
        self.settings = Settings(redis_url=redis_url, database_url=database_url, data_dir=data_dir,
                                 concurrency=64, max_graph_nodes=10_000)
        self.redis_url, self.k = redis_url, k
        self.executors: list[Executor] = []
        self.tasks: list[asyncio.Task[None]] = []

    async def __aenter__(self) -> Plant:
        self.client = aioredis.Redis.from_url(self.redis_url, decode_responses=True)
        self.store = await Store.connect(str(self.settings.database_url))
        self.q = JobQueue(self.client, self.store)
        for plane in PLANES:
            for _ in range(self.k):
                ex = Executor(self.settings, plane, registry(plane),  # type: ignore[arg-type]
                              executor_client(self.redis_url), self.store,
                              LocalStore(self.settings.artifacts_dir))
                self.executors.append(ex)
                self.tasks.append(asyncio.create_task(ex.run()))
        for ex in self.executors:
            await asyncio.wait_for(ex.started.wait(), 120)
        collector.settle()  # as `spinbot executor` does after start-up: shorter collector pauses
        return self

    async def __aexit__(self, *exc: object) -> None:
        for ex in self.executors:
            ex.stop()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        for ex in self.executors:
            await ex.redis.aclose()
        await self.client.aclose()
        await self.store.close()

    async def meters(self) -> tuple[int, int]:
        """(bytes Redis received so far, WAL bytes Postgres wrote so far)."""
        info = await self.client.info("stats")
        wal = await self.store.pool.fetchval("SELECT pg_wal_lsn_diff(pg_current_wal_insert_lsn(), '0/0')::bigint")
        return int(info["total_net_input_bytes"]), int(wal)

    async def run(self, graph: Graph) -> tuple[str, float]:
        t0 = time.perf_counter()
        job = await self.q.submit(graph, owner="bench")
        while (status := await self.client.hget(C.job_key(job), "status")) not in TERMINAL_JOB:  # noqa: ASYNC110
            await asyncio.sleep(0.01)
        if status != "completed":
            raise SystemExit(f"bench job {job} ended {status}")
        return job, time.perf_counter() - t0

    async def settled(self) -> None:
        """Until the Postgres writers are idle and the finishing syncs are done."""
        for ex in self.executors:
            await ex.settle()
            if ex.writer is not None:
                await ex.writer.flushed(30)
        await asyncio.sleep(0.3)

    async def events(self, job: str) -> dict[str, dict[str, float]]:
        out: dict[str, dict[str, float]] = {}
        after = "0-0"
        while batch := await self.q.read_events(job, after, count=5000):
            after = batch[-1].id
            for ev in batch:
                if ev.type == "node":
                    out.setdefault(ev.data["node"], {})[ev.data["status"]] = ev.data["ts"]
        return out


async def chain_row(plant: Plant, n: int) -> dict[str, Any]:
    await plant.settled()
    r0, w0 = await plant.meters()
    job, wall = await plant.run(chain(n))
    await plant.settled()
    r1, w1 = await plant.meters()
    t = await plant.events(job)
    handoff = [t[f"n{i + 1}"]["running"] - t[f"n{i}"]["completed"] for i in range(n - 1)]
    snaps = await plant.store.pool.fetchval("SELECT count(*) FROM graph_snapshots WHERE job_id=$1", job)
    return {"redis_b": (r1 - r0) / n, "pg_b": (w1 - w0) / n, "ms_node": wall / n * 1000, "rate": n / wall,
            "p50": pct(handoff, 50) * 1000, "p99": pct(handoff, 99) * 1000, "snapshots": snaps}


async def fanout_row(plant: Plant, m: int) -> float:
    job, _ = await plant.run(fanout(m))
    t = await plant.events(job)
    fan = [t[f"f{i}"] for i in range(m)]
    return m / (max(x["completed"] for x in fan) - min(x["running"] for x in fan))


async def scaling(console: Console, redis_url: str, database_url: str, data_dir: Path, sizes: list[int],
                  ks: list[int], m: int) -> None:
    table = Table(title="cost per node: chains of diag.echo alternating planes, K executors per plane, one process")
    for col in ("K", "nodes", "Redis B/node", "Postgres WAL B/node", "snapshots", "ms/node", "nodes/s",
                "hand-off p50 ms", "hand-off p99 ms"):
        table.add_column(col, justify="right")
    fan_rate = None
    for k in ks:
        async with Plant(redis_url, database_url, data_dir, k) as plant:
            await plant.run(chain(6))  # warm-up: scripts loaded, caches filled
            for n in sizes:
                r = await chain_row(plant, n)
                table.add_row(str(k), str(n), f"{r['redis_b']:.0f}", f"{r['pg_b']:.0f}", str(r["snapshots"]),
                              f"{r['ms_node']:.2f}", f"{r['rate']:.0f}", f"{r['p50']:.2f}", f"{r['p99']:.2f}")
            if k == 2 and m:
                fan_rate = await fanout_row(plant, m)
    console.print(table)
    if fan_rate is not None:
        console.print(f"fan-out of {m} no-op nodes, 2 executors per plane: {fan_rate:.0f} nodes/s")
    console.print(f"load average now {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores (other work shares them)")
