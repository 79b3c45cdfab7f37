"""1,000 concurrent job event streams on one API process: memory per idle stream, delivery latency.

    .venv/bin/python bench/sse.py [--streams 1000] [--rounds 5]

Starts private Redis and Postgres (or uses SPINBOT_REDIS_URL / SPINBOT_DATABASE_URL), runs the API as
its own process (`spinbot api`), creates one queued job per stream, opens every stream
(GET /api/jobs/{id}/events) over plain sockets, and measures:
- the API process's resident memory before and after the streams are open and idle, per stream;
- delivery latency: events are appended to the jobs' Redis event streams exactly as executors do
  (XADD type/data), one per stream every --spread seconds, carrying their send time
  (CLOCK_MONOTONIC, shared by processes on Linux); each client notes when its event arrives.
  Targets: <= 50 KB per idle stream, p99 <= 50 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx  # noqa: E402
import redis.asyncio as aioredis  # noqa: E402

from spinbot import constants as C  # noqa: E402
from spinbot.embedded import free_port, servers  # noqa: E402
from spinbot.graph import Graph  # noqa: E402
from spinbot.jobs import JobQueue, dumps  # noqa: E402
from spinbot.store import Store  # noqa: E402


def cpu_s(pid: int) -> float:
    """User + system CPU seconds a process has used."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


class Stream:
    """One SSE client on a raw socket: counts events and records when marked ones arrive."""

    def __init__(self, port: int, job_id: str) -> None:
        self.port, self.job_id = port, job_id
        self.events = 0
        self.latencies: list[float] = []
        self.ready = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    async def run(self) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        writer.write(f"GET /api/jobs/{self.job_id}/events HTTP/1.1\r\nHost: bench\r\n"
                     "Accept: text/event-stream\r\n\r\n".encode())
        await writer.drain()
        head = await reader.readuntil(b"\r\n\r\n")
        if b" 200 " not in head.split(b"\r\n", 1)[0]:
            raise RuntimeError(head.decode(errors="replace"))
        try:
            while True:
                line = await reader.readline()
                if not line:
                    return
                if line.startswith(b"data:"):
                    now = time.monotonic()
                    self.events += 1
                    self.ready.set()
                    data = json.loads(line[5:].strip()) if b"{" in line else {}
                    sent = data.get("sent")
                    if sent is not None:
                        self.latencies.append((now - float(sent)) * 1000)
        finally:
            writer.close()


async def create_jobs(redis_url: str, database_url: str, n: int) -> list[str]:
    redis = aioredis.Redis.from_url(redis_url, decode_responses=True)
    for attempt in range(50):  # a fresh Postgres may still be starting up
        try:
            store = await Store.connect(database_url)
            break
        except Exception:
            if attempt == 49:
                raise
            await asyncio.sleep(0.2)
    q = JobQueue(redis, store)
    graph = Graph.model_validate({"schema": "langgraph.v1", "workflowId": "bench", "nodes": [
        {"id": "w", "service": "diag.wait", "plane": "control", "params": {"seconds": 1}}]})
    ids = [await q.submit(graph, owner="local") for _ in range(n)]
    await store.close()
    await redis.aclose()
    return ids


def start_api(redis_url: str, database_url: str, data_dir: Path, port: int, streams: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "SPINBOT_REDIS_URL": redis_url, "SPINBOT_DATABASE_URL": database_url,
           "SPINBOT_DATA_DIR": str(data_dir), "SPINBOT_PORT": str(port), "SPINBOT_HOST": "127.0.0.1",
           "SPINBOT_MAX_STREAMS_PER_KEY": str(streams + 10), "SPINBOT_API_KEYS": ""}
    log = (data_dir.parent / "api.log").open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "spinbot.cli", "api"], env=env, stdout=log, stderr=log)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code in (200, 503):
                return proc
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError("the API did not start: " + (data_dir.parent / "api.log").read_text())


async def open_streams(port: int, jobs: list[str]) -> list[Stream]:
    streams = [Stream(port, j) for j in jobs]
    for i in range(0, len(streams), 50):  # open in waves, like real clients arriving
        batch = streams[i:i + 50]
        for s in batch:
            s.task = asyncio.create_task(s.run())
        try:
            await asyncio.wait_for(asyncio.gather(*(s.ready.wait() for s in batch)), 60)
        except TimeoutError:
            failed = [s.task for s in batch if s.task and s.task.done()]
            raise RuntimeError(f"streams {i}..{i + len(batch)} did not open: "
                               f"{[t.exception() for t in failed][:3]}") from None
    return streams


async def publish(redis_url: str, jobs: list[str], rounds: int, spread_s: float) -> None:
    """Each round sends one event to every stream, spread evenly over `spread_s`."""
    redis = aioredis.Redis.from_url(redis_url, decode_responses=True)
    gap = spread_s / len(jobs)
    for r in range(rounds):
        start = time.monotonic()
        for i, job in enumerate(jobs):
            due = start + i * gap
            if (delay := due - time.monotonic()) > 0:
                await asyncio.sleep(delay)
            data = {"node": "w", "message": f"round {r}", "sent": time.monotonic()}
            await redis.xadd(C.job_events_key(job), {"type": "log", "data": dumps(data)},
                             maxlen=C.EVENTS_MAXLEN, approximate=True)
        await asyncio.sleep(0.5)
    await redis.aclose()


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


async def run(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="spinbot-bench-") as tmp, \
            servers(Path(tmp), os.environ.get("SPINBOT_REDIS_URL"), os.environ.get("SPINBOT_DATABASE_URL")) as (
            redis_url, database_url):
        jobs = await create_jobs(redis_url, database_url, args.streams + 20)
        warm, jobs = jobs[:20], jobs[20:]
        port = free_port()
        api = start_api(redis_url, database_url, Path(tmp) / "data", port, args.streams)
        try:
            # Warm up: open and close a few streams so one-time allocations are in the baseline.
            for s in await open_streams(port, warm):
                assert s.task
                s.task.cancel()
            await asyncio.sleep(1.0)
            before = rss_kb(api.pid)
            streams = await open_streams(port, jobs)
            await asyncio.sleep(2.0)  # idle
            gc.collect()
            after = rss_kb(api.pid)
            t0, cpu0 = time.monotonic(), cpu_s(api.pid)
            await publish(redis_url, jobs, args.rounds, args.spread)
            await asyncio.sleep(1.0)
            elapsed, api_cpu = time.monotonic() - t0, cpu_s(api.pid) - cpu0
            lat = [x for s in streams for x in s.latencies]
            expected = args.streams * args.rounds
            peak = rss_kb(api.pid)
            for s in streams:
                assert s.task
                s.task.cancel()
        finally:
            api.terminate()
            api.wait(20)
    per_stream = (after - before) / args.streams
    rate = expected / (args.rounds * args.spread)
    rows = [
        ("streams open", f"{args.streams}"),
        ("API RSS before / idle / under load", f"{before / 1024:.1f} / {after / 1024:.1f} / {peak / 1024:.1f} MB"),
        ("memory per idle stream", f"{per_stream:.1f} KB (target <= 50 KB)"),
        ("events sent / delivered", f"{expected} / {len(lat)} in {elapsed:.1f} s (~{rate:.0f} events/s offered)"),
        ("API CPU per delivered event", f"{api_cpu / max(1, len(lat)) * 1000:.2f} ms "
                                        f"({api_cpu / elapsed * 100:.0f}% of one core while publishing)"),
        ("delivery latency p50", f"{statistics.median(lat):.2f} ms"),
        ("delivery latency p99", f"{pct(lat, 99):.2f} ms (target <= 50 ms)"),
        ("delivery latency max", f"{max(lat):.2f} ms"),
        ("machine load avg (1 min) / cores", f"{os.getloadavg()[0]:.1f} / {os.cpu_count()}"),
    ]
    width = max(len(k) for k, _ in rows)
    print(f"| {'measure'.ljust(width)} | value |")
    print(f"|{'-' * (width + 2)}|-------|")
    for k, v in rows:
        print(f"| {k.ljust(width)} | {v} |")
    if len(lat) != expected:
        raise SystemExit(f"lost events: {expected - len(lat)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--streams", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--spread", type=float, default=5.0, help="seconds over which each round is sent")
    try:
        import uvloop  # the API runs on uvloop too (uvicorn's default when installed)

        uvloop.run(run(parser.parse_args()))
    except ImportError:
        asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
