"""1,000 and 10,000 concurrent job event streams on one API process: memory per idle stream, delivery latency.

    .venv/bin/python bench/sse.py [--streams 1000 10000] [--rounds 5]

Starts private Redis and Postgres (or uses SPINBOT_REDIS_URL / SPINBOT_DATABASE_URL), runs the API as
its own process (`spinbot api`), creates one queued job per stream, opens every stream
(GET /api/jobs/{id}/events) over plain sockets from reader processes of their own (one client
process with 10,000 sockets was itself the bottleneck), and measures:
- the API process's resident memory before and after the streams are open and idle, per stream;
- delivery latency: events are appended to the jobs' Redis event streams exactly as executors do
  (XADD type/data), one per stream every --spread seconds, carrying their send time
  (CLOCK_MONOTONIC, shared by processes on Linux); each client notes when its event arrives.
  Targets: <= 50 KB per idle stream, p99 <= 50 ms;
- the API's garbage-collector pauses from opening the streams to the last event (timed in the API by
  gc.callbacks: spinbot_gc_pause_seconds and spinbot_gc_pause_longest_seconds on /metrics): how many
  over 20 ms, how many full collections, the longest pause since the API started. Target: none over 20 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx  # noqa: E402
import redis.asyncio as aioredis  # noqa: E402

from bench.api_process import start_api  # noqa: E402
from spinbot import constants as C  # noqa: E402
from spinbot.embedded import free_port, servers  # noqa: E402
from spinbot.graph import Graph  # noqa: E402
from spinbot.queue import JobQueue, dumps  # noqa: E402
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

    def __init__(self, port: int, job_id: str, counter: Any = None) -> None:
        self.port, self.job_id = port, job_id
        self.counter = counter  # a multiprocessing.Value counting marked events across reader processes
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
                        if self.counter is not None:
                            with self.counter.get_lock():
                                self.counter.value += 1
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


async def open_streams(port: int, jobs: list[str], counter: Any = None) -> list[Stream]:
    streams = [Stream(port, j, counter) for j in jobs]
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


def gc_readings(port: int) -> tuple[dict[tuple[str, float], float], dict[str, float]]:
    """The API's garbage-collector pauses so far: (generation, bucket upper bound in s) -> count, cumulative
    (spinbot_gc_pause_seconds), and generation -> the longest pause in s (spinbot_gc_pause_longest_seconds)."""
    from prometheus_client.parser import text_string_to_metric_families

    buckets: dict[tuple[str, float], float] = {}
    longest: dict[str, float] = {}
    for family in text_string_to_metric_families(httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=30).text):
        for sample in family.samples:
            if family.name == "spinbot_gc_pause_seconds" and sample.name.endswith("_bucket"):
                buckets[sample.labels["generation"], float(sample.labels["le"])] = sample.value
            elif family.name == "spinbot_gc_pause_longest_seconds":
                longest[sample.labels["generation"]] = sample.value
    return buckets, longest


def gc_pauses(before: dict[tuple[str, float], float], after: dict[tuple[str, float], float],
              longest: dict[str, float]) -> str:
    """'pauses over 20 ms / all pauses (over 20 ms by generation), full collections, the longest' between two
    gc_readings."""
    diff = {k: v - before.get(k, 0) for k, v in after.items()}
    total = {g: diff.get((g, float("inf")), 0) for g in ("0", "1", "2")}
    over = {g: total[g] - diff.get((g, 0.02), 0) for g in total}
    by_gen = ", ".join(f"gen{g} {n:.0f}" for g, n in over.items() if n)
    return (f"{sum(over.values()):.0f} / {sum(total.values()):.0f}{f' ({by_gen})' if by_gen else ''}, "
            f"{total['2']:.0f} full (longest {max(longest.values(), default=0) * 1000:.0f} ms)")


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def reader(port: int, jobs: list[str], ready: Any, stop: Any, counter: Any, out: Any) -> None:
    """A process of its own holding some of the streams, so the clients are not what limits delivery."""
    async def main() -> None:
        streams = await open_streams(port, jobs, counter)
        ready.set()
        await asyncio.to_thread(stop.wait)
        out.put([x for s in streams for x in s.latencies])
        for s in streams:
            assert s.task
            s.task.cancel()

    run_loop(main())


class Readers:
    """Reader processes (one per 2,500 streams, at most 4) and the publisher's view of them."""

    def __init__(self, port: int, jobs: list[str]) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.stop, self.counter, self.out = ctx.Event(), ctx.Value("i", 0), ctx.Queue()
        parts = max(1, min(4, -(-len(jobs) // 2500)))
        self.ready = [ctx.Event() for _ in range(parts)]
        self.procs = [ctx.Process(target=reader, daemon=True,
                                  args=(port, jobs[i::parts], self.ready[i], self.stop, self.counter, self.out))
                      for i in range(parts)]
        for p in self.procs:
            p.start()

    async def opened(self) -> None:
        for ev in self.ready:
            if not await asyncio.to_thread(ev.wait, 300):
                raise RuntimeError("the streams did not open")

    def latencies(self) -> list[float]:
        self.stop.set()
        got = [x for _ in self.procs for x in self.out.get(timeout=60)]
        for p in self.procs:
            p.join(10)
        return got


async def measure(args: argparse.Namespace, n: int) -> dict[str, str]:
    """One API process with `n` idle streams, then `args.rounds` rounds of one event per stream."""
    with tempfile.TemporaryDirectory(prefix="spinbot-bench-") as tmp, \
            servers(Path(tmp), os.environ.get("SPINBOT_REDIS_URL"), os.environ.get("SPINBOT_DATABASE_URL")) as (
            redis_url, database_url):
        jobs = await create_jobs(redis_url, database_url, n + 20)
        warm, jobs = jobs[:20], jobs[20:]
        port = free_port()
        api = start_api(redis_url, database_url, Path(tmp) / "data", port, MAX_STREAMS_PER_KEY=str(n + 10))
        try:
            # Warm up: open and close a few streams so one-time allocations are in the baseline.
            for s in await open_streams(port, warm):
                assert s.task
                s.task.cancel()
            await asyncio.sleep(1.0)
            before, (gc_before, _) = rss_kb(api.pid), await asyncio.to_thread(gc_readings, port)
            readers = Readers(port, jobs)
            await readers.opened()
            await asyncio.sleep(2.0)  # idle
            gc.collect()
            after = rss_kb(api.pid)
            t0, cpu0 = time.monotonic(), cpu_s(api.pid)
            await publish(redis_url, jobs, args.rounds, args.spread)
            expected = n * args.rounds
            for _ in range(100):  # up to 10 s more for the last events (a late one counts with its latency)
                if readers.counter.value >= expected:
                    break
                await asyncio.sleep(0.1)
            elapsed, api_cpu = time.monotonic() - t0, cpu_s(api.pid) - cpu0
            peak = rss_kb(api.pid)
            lat = readers.latencies()
            pauses = gc_pauses(gc_before, *await asyncio.to_thread(gc_readings, port))
        finally:
            api.terminate()
            api.wait(20)
    return {
        "API RSS before / idle / under load": f"{before / 1024:.0f} / {after / 1024:.0f} / {peak / 1024:.0f} MB",
        "memory per idle stream (<= 50 KB)": f"{(after - before) / n:.1f} KB",
        "events delivered / sent": f"{len(lat)} / {expected} in {elapsed:.1f} s "
                                   f"(~{expected / (args.rounds * args.spread):.0f}/s offered)",
        "API CPU per delivered event": f"{api_cpu / max(1, len(lat)) * 1000:.2f} ms "
                                       f"({api_cpu / elapsed * 100:.0f}% of a core)",
        "delivery p50 (of those delivered)": f"{statistics.median(lat):.1f} ms",
        "delivery p99 (<= 50 ms)": f"{pct(lat, 99):.1f} ms",
        "delivery max": f"{max(lat):.1f} ms",
        "API GC pauses > 20 ms / all while streams open, full ones (longest since start)": pauses,
        "load avg (1 min) / cores": f"{os.getloadavg()[0]:.1f} / {os.cpu_count()}",
    }


async def run(args: argparse.Namespace) -> None:
    results = {n: await measure(args, n) for n in args.streams}
    rows = [("streams open", *(str(n) for n in results))]
    rows += [(k, *(r[k] for r in results.values())) for k in next(iter(results.values()))]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for i, row in enumerate(rows):
        print("| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |")
        if i == 0:
            print("|" + "|".join("-" * (w + 2) for w in widths) + "|")


def run_loop(coro: Any) -> None:
    try:
        import uvloop  # the API runs on uvloop too (uvicorn's default when installed)

        uvloop.run(coro)
    except ImportError:
        asyncio.run(coro)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--streams", type=int, nargs="+", default=[1000, 10000], help="one API run per count")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--spread", type=float, default=5.0, help="seconds over which each round is sent")
    run_loop(run(parser.parse_args()))


if __name__ == "__main__":
    main()
