"""Job admission against the size of the Redis keyspace, and 200 jobs posted at once.

    .venv/bin/python bench/admission.py [--keys 1000 100000] [--burst 200]

Starts private Redis and Postgres (or uses SPINBOT_REDIS_URL / SPINBOT_DATABASE_URL), publishes both
planes' live manifests (no executor runs: admitted jobs wait in the queue), fills Redis with unrelated
keys, runs the API as its own process (`spinbot api`) and measures, for each keyspace size:
- reading the merged live manifest (what every submission, chat turn, /health and evaluate does), next
  to what the SCAN of the keyspace it replaced costs on the same Redis;
- POST /api/jobs one at a time (admission latency: parse, evaluate, enqueue, record);
- `--burst` POST /api/jobs sent at once over as many connections: admitted jobs per second, and the API
  process's CPU time per admitted job (on a shared machine, jobs/s is bounded by the CPU the API gets).
Targets: admission cost independent of the number of keys; >= 200 jobs/s for 200 posted at once.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx  # noqa: E402
import redis.asyncio as aioredis  # noqa: E402

from bench.api_process import start_api  # noqa: E402
from executors.manifests import registry  # noqa: E402
from spinbot.capabilities import live_manifest, publish  # noqa: E402
from spinbot.embedded import free_port, servers  # noqa: E402

GRAPH = {"graph": {"schema": "langgraph.v1", "workflowId": "bench", "nodes": [
    {"id": "e", "service": "diag.echo", "plane": "control", "params": {"text": "hi"}}]}}


def cpu_s(pid: int) -> float:
    """User + system CPU seconds a process has used."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


async def fill(redis: aioredis.Redis, keys: int) -> None:
    """`keys` unrelated keys (what a busy Redis holds: job records, event streams, other apps' keys)."""
    await redis.flushdb()
    for start in range(0, keys, 10_000):
        await redis.mset({f"bench:other:{i}": "x" for i in range(start, min(keys, start + 10_000))})
    for plane in ("control", "gpu"):
        await publish(redis, registry(plane).manifest(executor=f"bench-{plane}"), ttl_s=3600)  # type: ignore[arg-type]


async def timed(fn: object, n: int) -> float:
    """Median ms of n awaits of fn()."""
    runs = []
    for _ in range(n):
        t = time.perf_counter()
        await fn()  # type: ignore[operator]
        runs.append((time.perf_counter() - t) * 1000)
    return statistics.median(runs)


async def post_jobs(url: str, n: int, concurrent: bool) -> tuple[float, list[float]]:
    """(seconds for all, each POST's ms); every answer must be 201/202."""
    limits = httpx.Limits(max_connections=n if concurrent else 1)
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as client:
        async def one() -> float:
            t = time.perf_counter()
            r = await client.post("/api/jobs", json=GRAPH)
            if r.status_code not in (200, 201, 202):
                raise SystemExit(f"POST /api/jobs: {r.status_code} {r.text[:300]}")
            return (time.perf_counter() - t) * 1000

        await one()  # a warm connection and a warm code path
        started = time.perf_counter()
        if concurrent:
            each = list(await asyncio.gather(*(one() for _ in range(n))))
        else:
            each = [await one() for _ in range(n)]
        return time.perf_counter() - started, each


async def measure(args: argparse.Namespace, keys: int, redis_url: str, database_url: str, tmp: Path) -> list[str]:
    redis = aioredis.Redis.from_url(redis_url, decode_responses=True)
    await fill(redis, keys)
    read_ms = await timed(lambda: live_manifest(redis), 50)
    scan_ms = await timed(lambda: _scan(redis), 5)
    await redis.aclose()
    port = free_port()
    api = start_api(redis_url, database_url, tmp / f"data-{keys}", port,
                    MAX_JOBS_PER_KEY=str(args.burst * 20))
    try:
        url = f"http://127.0.0.1:{port}"
        _, one_by_one = await post_jobs(url, 50, concurrent=False)
        cpu0 = cpu_s(api.pid)
        took, burst = await post_jobs(url, args.burst, concurrent=True)
        api_cpu = cpu_s(api.pid) - cpu0
    finally:
        api.terminate()
        api.wait(20)
    return [f"{keys:,}", f"{read_ms:.2f} ms", f"{scan_ms:.1f} ms", f"{statistics.median(one_by_one):.1f} ms",
            f"{args.burst / took:.0f} jobs/s", f"{statistics.median(burst):.0f} / {pct(burst, 99):.0f} ms",
            f"{api_cpu / args.burst * 1000:.1f} ms"]


async def _scan(redis: aioredis.Redis) -> None:
    """What the live manifest cost before: a SCAN of the whole keyspace for manifest keys."""
    _ = [k async for k in redis.scan_iter(match="spinbot:manifest:*", count=100)]


async def run(args: argparse.Namespace) -> None:
    rows = [["keys in Redis", "live manifest read", "(SCAN it replaced)", "POST /api/jobs p50, one at a time",
             f"{args.burst} POSTs at once", "their p50 / p99", "API CPU per job in the burst"]]
    with tempfile.TemporaryDirectory(prefix="spinbot-bench-") as tmp, \
            servers(Path(tmp), os.environ.get("SPINBOT_REDIS_URL"), os.environ.get("SPINBOT_DATABASE_URL")) as (
            redis_url, database_url):
        for keys in args.keys:
            rows.append(await measure(args, keys, redis_url, database_url, Path(tmp)))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for i, row in enumerate(rows):
        print("| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |")
        if i == 0:
            print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    print(f"machine: load avg (1 min) {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--keys", type=int, nargs="+", default=[1000, 100_000])
    parser.add_argument("--burst", type=int, default=200)
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
