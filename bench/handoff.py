"""Hand-off benchmark: Spinbot's two executors vs plain LangGraph vs a Celery chain, same graphs, same run.

    .venv/bin/python bench/handoff.py [--chain 200] [--fanout 300]
    .venv/bin/python bench/handoff.py --scaling [--sizes 10,100,500] [--executors 1,2,3] [--fanout 3000]
    .venv/bin/python bench/handoff.py --cost [--chain 100] [--runs 3] [--per-plane 1,2]

Graphs: a chain of N diag.echo nodes alternating planes (every step is a cross-plane hand-off) and a
wide fan-out (one root, M independent echo nodes, one join). Spinbot runs them through two executor
subprocesses (`spinbot executor control|gpu`) over Redis Streams with Postgres recording; LangGraph
runs the same shapes in-process (StateGraph); Celery runs the chain as a chain of tasks routed to two
queues served by two worker subprocesses (solo pool) on the same Redis, and the fan-out as a group.
--scaling: bytes and time per node as graphs and executors per plane grow (bench/scaling.py).
--cost: the chain alone, --runs times, with 1 and 2 executor processes per plane and with Celery in each
run: nodes/s, CPU per node (executors + Redis + Postgres, or Celery's workers + Redis, from /proc and
INFO cpu, over the chain and the 0.5 s after it in which the record writers finish), Redis bytes per node.
Private Redis/Postgres are started when SPINBOT_REDIS_URL / SPINBOT_DATABASE_URL are unset. Celery is a
bench-only extra: `.venv/bin/pip install -e ".[bench]"`.

Measured figures: bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import operator
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Annotated, Any, TypedDict

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import redis.asyncio as aioredis  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from bench.scaling import pct, scaling  # noqa: E402
from spinbot import constants as C  # noqa: E402
from spinbot.backoff import retry  # noqa: E402
from spinbot.capabilities import live_manifests  # noqa: E402
from spinbot.embedded import servers  # noqa: E402
from spinbot.graph import Graph, node_ref  # noqa: E402
from spinbot.queue import TERMINAL_JOB, JobQueue  # noqa: E402
from spinbot.redis_setup import executor_client  # noqa: E402
from spinbot.store import Store  # noqa: E402

PLANES = ("control", "gpu")


def ms(v: float) -> str:
    return f"{v * 1000:.2f}"


# ---- graphs ---------------------------------------------------------------------------------------


def chain_graph(n: int) -> Graph:
    nodes = [{"id": "n0", "service": "diag.echo", "plane": "control", "params": {"text": "x"}}]
    for i in range(1, n):
        nodes.append({"id": f"n{i}", "service": "diag.echo", "plane": PLANES[i % 2],
                      "params": {"text": node_ref(f"n{i - 1}", "text")}})
    return Graph.model_validate({"schema": "langgraph.v1", "workflowId": "bench-chain", "nodes": nodes})


def fanout_graph(m: int) -> Graph:
    nodes: list[dict[str, Any]] = [{"id": "root", "service": "diag.echo", "plane": "control", "params": {"text": "r"}}]
    nodes += [{"id": f"f{i}", "service": "diag.echo", "plane": "gpu",
               "params": {"text": node_ref("root", "text"), "data": i}} for i in range(m)]
    nodes.append({"id": "join", "service": "diag.echo", "plane": "control",
                  "params": {"data": [node_ref(f"f{i}", "data") for i in range(m)]}})
    return Graph.model_validate({"schema": "langgraph.v1", "workflowId": "bench-fanout", "nodes": nodes})


# ---- Spinbot ----------------------------------------------------------------------------------------


@contextlib.contextmanager
def executors(redis_url: str, database_url: str, data_dir: Path,
              per_plane: int = 1) -> Iterator[list[subprocess.Popen[bytes]]]:
    env = dict(os.environ, SPINBOT_REDIS_URL=redis_url, SPINBOT_DATABASE_URL=database_url,
               SPINBOT_DATA_DIR=str(data_dir), PYTHONUNBUFFERED="1")
    procs = []
    for plane in PLANES:
        for i in range(per_plane):
            with (data_dir / f"executor-{plane}-{i}.log").open("wb") as log:
                procs.append(subprocess.Popen([sys.executable, "-m", "shell.cli", "executor", plane], cwd=ROOT,
                                              env=env, stdout=log, stderr=subprocess.STDOUT))
    try:
        yield procs
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                p.kill()


async def wait_serving(redis: aioredis.Redis, per_plane: int = 1, timeout: float = 90) -> None:  # noqa: ASYNC109
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        planes: list[str] = [m.plane for m in await live_manifests(redis)]
        if all(planes.count(p) >= per_plane for p in PLANES):
            return
        await asyncio.sleep(0.2)
    raise SystemExit("executors did not start; see their logs in the data directory")


async def run_job(q: JobQueue, graph: Graph) -> tuple[str, float]:
    """Submit and wait (polling the record's status, so the client does not wake on every event)."""
    t0 = time.perf_counter()
    job = await q.submit(graph, owner="bench")
    while (status := await q.redis.hget(C.job_key(job), "status")) not in TERMINAL_JOB:  # noqa: ASYNC110
        await asyncio.sleep(0.05)
    wall = time.perf_counter() - t0
    if status != "completed":
        st = await q.get(job)
        raise SystemExit(f"bench job {job} ended {status}: {st.error if st else ''}")
    return job, wall


async def node_times(q: JobQueue, job: str) -> dict[str, dict[str, float]]:
    """node -> {status: ts} from the job's events (ts: the executor's clock at the write)."""
    out: dict[str, dict[str, float]] = {}
    after = "0-0"
    while batch := await q.read_events(job, after, count=5000):
        after = batch[-1].id
        for ev in batch:
            if ev.type == "node":
                out.setdefault(ev.data["node"], {})[ev.data["status"]] = ev.data["ts"]
    return out


async def measure(q: JobQueue, n: int, m: int) -> dict[str, Any]:
    """Run the chain and the fan-out through whatever executors serve the queue; timings from events."""
    await run_job(q, chain_graph(6))  # warm-up: scripts loaded, connections open
    job, wall = await run_job(q, chain_graph(n))
    t = await node_times(q, job)
    starts = [t[f"n{i}"]["running"] for i in range(n)]
    per_node = [b - a for a, b in zip(starts, starts[1:], strict=False)]
    handoff = [t[f"n{i + 1}"]["running"] - t[f"n{i}"]["completed"] for i in range(n - 1)]
    fjob, fwall = await run_job(q, fanout_graph(m))
    ft = await node_times(q, fjob)
    fan = [ft[f"f{i}"] for i in range(m)]
    span = max(x["completed"] for x in fan) - min(x["running"] for x in fan)
    return {"job": job, "per_node": per_node, "handoff": handoff, "chain_wall": wall, "chain_rate": n / wall,
            "fanout_rate": m / span, "fanout_wall": fwall}


@contextlib.asynccontextmanager
async def connected(redis_url: str, database_url: str) -> AsyncIterator[tuple[Any, Any, JobQueue]]:
    """(Redis client, Store, JobQueue with its groups made), closed on exit."""
    client = aioredis.Redis.from_url(redis_url, decode_responses=True)
    store = await connect_store(database_url)
    q = JobQueue(client, store)
    await q.ensure_groups()
    try:
        yield client, store, q
    finally:
        await client.aclose()
        await store.close()


async def spinbot_bench(redis_url: str, database_url: str, data_dir: Path, n: int, m: int) -> dict[str, Any]:
    """Two executor processes, as deployed."""
    async with connected(redis_url, database_url) as (client, store, q):
        with executors(redis_url, database_url, data_dir):
            await wait_serving(client)
            out = await measure(q, n, m)
            pg = await postgres_write_times(q, store, out["job"])
    return {**out, **pg}


async def spinbot_one_process(redis_url: str, database_url: str, data_dir: Path, n: int, m: int) -> dict[str, Any]:
    """The same two executors as tasks in this process: the executor code's cost without OS wake-ups."""
    from executors.core import Executor
    from executors.manifests import registry
    from spinbot.artifacts import LocalStore
    from spinbot.settings import Settings

    settings = Settings(redis_url=redis_url, database_url=database_url, data_dir=data_dir)
    client = aioredis.Redis.from_url(redis_url, decode_responses=True)
    store = await connect_store(database_url)
    q = JobQueue(client, store)
    runners = []
    try:
        for plane in PLANES:
            ex = Executor(settings, plane, registry(plane), executor_client(redis_url),  # type: ignore[arg-type]
                          store, LocalStore(settings.artifacts_dir))
            runners.append((ex, asyncio.create_task(ex.run())))
        for ex, _ in runners:
            await asyncio.wait_for(ex.started.wait(), 60)
        return await measure(q, n, m)
    finally:
        for ex, _ in runners:
            ex.stop()
        await asyncio.gather(*(t for _, t in runners), return_exceptions=True)
        for ex, _ in runners:
            await ex.redis.aclose()
        await client.aclose()
        await store.close()


async def connect_store(url: str) -> Store:
    """A freshly started Postgres may still be starting up: retried for about 20 s."""
    return await retry(lambda: Store.connect(url), what=f"Postgres at {url}", tries=100, first_s=0.2, cap_s=0.2)


async def postgres_write_times(q: JobQueue, store: Store, job: str) -> dict[str, Any]:
    """The durable record's costs, measured apart from the hot path: one transition, one event sync."""
    st = await q.get(job)
    assert st is not None
    transition = []
    for v in range(30):
        t0 = time.perf_counter()
        await store.record_transition(job, status=st.status, progress=st.progress, plane=None,
                                      version=st.version + 1 + v, graph=st.graph, error=None)
        transition.append(time.perf_counter() - t0)
    await store.pool.execute("DELETE FROM job_events WHERE job_id=$1", job)
    t0 = time.perf_counter()
    await q.sync_events(job, "0-0")  # what the executors' writer does, here for the whole job at once
    sync = time.perf_counter() - t0
    count = await store.pool.fetchval("SELECT count(*) FROM job_events WHERE job_id=$1", job)
    return {"pg_transition": transition, "pg_events": count, "pg_events_s": sync}


# ---- the cost of a node: CPU of every process involved ------------------------------------------------


def cpu_s(pid: int, children: bool = False) -> float:
    """User + system CPU seconds a process has used (with `children`: plus its waited-for children's)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12]) + (int(fields[13]) + int(fields[14]) if children else 0)
    return ticks / os.sysconf("SC_CLK_TCK")


class Meters:
    """CPU seconds of the given processes, of Redis (INFO cpu) and of Postgres (its postmaster, every child
    alive now and every child that exited), and the bytes Redis received."""

    def __init__(self, redis: aioredis.Redis, store: Store | None, pids: list[int]) -> None:
        self.redis, self.store, self.pids = redis, store, pids
        self.postmaster: int | None = None

    async def read(self) -> dict[str, float]:
        cpu = await self.redis.info("cpu")
        stats = await self.redis.info("stats")
        out = {"workers": sum(cpu_s(p) for p in self.pids),
               "redis": float(cpu["used_cpu_sys"]) + float(cpu["used_cpu_user"]),
               "redis_b": float(stats["total_net_input_bytes"]), "postgres": 0.0}
        if self.store is not None:
            if self.postmaster is None:
                self.postmaster = parent_pid(await self.store.pool.fetchval("SELECT pg_backend_pid()"))
            out["postgres"] = family_cpu_s(self.postmaster)
        return out


def parent_pid(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def family_cpu_s(pid: int) -> float:
    """CPU seconds of a process, its children alive now and those that exited (Postgres' backends)."""
    kids = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return cpu_s(pid, children=True) + sum(cpu_s(int(k)) for k in kids if Path(f"/proc/{k}").exists())


async def spinbot_cost(redis_url: str, database_url: str, data_dir: Path, n: int, per_plane: int) -> dict[str, Any]:
    """One chain through `per_plane` executor processes per plane: nodes/s and CPU per node."""
    async with connected(redis_url, database_url) as (client, store, q):
        with executors(redis_url, database_url, data_dir, per_plane) as procs:
            await wait_serving(client, per_plane)
            await run_job(q, chain_graph(6))  # warm-up: scripts loaded, connections open
            await asyncio.sleep(1.0)
            meters = Meters(client, store, [p.pid for p in procs])
            before = await meters.read()
            _, wall = await run_job(q, chain_graph(n))
            await asyncio.sleep(0.5)  # the record writers' last batch (they write every 0.2 s)
            after = await meters.read()
    per = {k: (after[k] - before[k]) / n for k in after}
    return {"rate": n / wall, **per}


def celery_cost(redis_url: str, workdir: Path, n: int) -> dict[str, Any]:
    """The same chain through Celery: nodes/s and CPU per node (workers + Redis)."""
    import redis as syncredis

    out = celery_bench(redis_url, workdir, n, 0, meter=syncredis.Redis.from_url(redis_url))
    return {"rate": out["chain_rate"], **{k: v / n for k, v in out["cpu"].items()}}


async def cost(console: Console, redis_url: str, database_url: str, work: Path, n: int, runs: int,
               per_plane: list[int]) -> None:
    rows: dict[str, list[dict[str, Any]]] = {}
    for _ in range(runs):
        for k in per_plane:
            r = await spinbot_cost(redis_url, database_url, work / "data", n, k)
            rows.setdefault(f"spinbot, {k} executor process{'es' if k > 1 else ''} per plane", []).append(r)
        rows.setdefault("Celery, 2 solo workers", []).append(await asyncio.to_thread(celery_cost, redis_url, work, n))
    celery = rows["Celery, 2 solo workers"]
    t = Table(title=f"the cost of a node: a chain of {n} diag.echo alternating planes; "
                    f"min / median / max of {runs} runs")
    for col in ("system", "nodes/s", "CPU ms/node, all", "workers", "Redis", "Postgres", "Redis B/node",
                "Celery's ms/node ÷ this"):
        t.add_column(col, justify="left" if col == "system" else "right")

    def mmm(values: list[float], fmt: str = "{:.2f}") -> str:
        v = sorted(values)
        return " / ".join(fmt.format(x) for x in (v[0], v[len(v) // 2], v[-1]))

    for name, rs in rows.items():
        total = [r["workers"] + r["redis"] + r["postgres"] for r in rs]
        ratio = [c["rate"] and r["rate"] / c["rate"] for r, c in zip(rs, celery, strict=True)]
        t.add_row(name, mmm([r["rate"] for r in rs], "{:.0f}"), mmm([x * 1000 for x in total]),
                  mmm([r["workers"] * 1000 for r in rs]), mmm([r["redis"] * 1000 for r in rs]),
                  mmm([r["postgres"] * 1000 for r in rs]), mmm([r["redis_b"] for r in rs], "{:.0f}"),
                  mmm(ratio, "{:.1f}x"))
    console.print(t)
    console.print(f"load average now {os.getloadavg()[0]:.2f} / {os.getloadavg()[1]:.2f} (1 / 5 min) "
                  f"on {os.cpu_count()} cores")


# ---- plain LangGraph ---------------------------------------------------------------------------------


class LGState(TypedDict):
    outputs: Annotated[dict[str, Any], lambda a, b: {**a, **b}]
    starts: Annotated[list[float], operator.add]


def langgraph_bench(n: int, m: int) -> dict[str, Any]:
    from langgraph.graph import END, START, StateGraph

    def echo_node(nid: str, src: str | None) -> Any:
        def run(state: LGState) -> dict[str, Any]:
            t = time.perf_counter()
            text = state["outputs"][src]["text"] if src else "x"
            return {"outputs": {nid: {"text": text, "data": None}}, "starts": [t]}

        return run

    t0 = time.perf_counter()
    g = StateGraph(LGState)
    for i in range(n):
        g.add_node(f"n{i}", echo_node(f"n{i}", f"n{i - 1}" if i else None))
    g.add_edge(START, "n0")
    for i in range(1, n):
        g.add_edge(f"n{i - 1}", f"n{i}")
    g.add_edge(f"n{n - 1}", END)
    app = g.compile()
    compile_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    res = app.invoke({"outputs": {}, "starts": []}, {"recursion_limit": n + 10})
    wall = time.perf_counter() - t0
    starts = res["starts"]
    per_node = [b - a for a, b in zip(starts, starts[1:], strict=False)]

    f = StateGraph(LGState)
    f.add_node("root", echo_node("root", None))
    f.add_edge(START, "root")
    for i in range(m):
        f.add_node(f"f{i}", echo_node(f"f{i}", "root"))
        f.add_edge("root", f"f{i}")
        f.add_edge(f"f{i}", "join")
    f.add_node("join", echo_node("join", None))
    f.add_edge("join", END)
    t0 = time.perf_counter()
    fapp = f.compile()
    fcompile = time.perf_counter() - t0
    t0 = time.perf_counter()
    fapp.invoke({"outputs": {}, "starts": []})
    fwall = time.perf_counter() - t0
    # What running "the ready part" with LangGraph would add per claim: build + compile a small graph.
    claim = []
    for _ in range(20):
        t0 = time.perf_counter()
        s = StateGraph(LGState)
        s.add_node("x", echo_node("x", None))
        s.add_edge(START, "x")
        s.add_edge("x", END)
        s.compile().invoke({"outputs": {}, "starts": []})
        claim.append(time.perf_counter() - t0)
    return {"per_node": per_node, "chain_wall": wall, "chain_rate": n / wall, "fanout_rate": (m + 2) / fwall,
            "compile_chain": compile_s, "compile_fanout": fcompile, "per_claim": claim}


# ---- Celery ----------------------------------------------------------------------------------------

CELERY_APP = '''
import time
from celery import Celery
app = Celery("bench", broker="{broker}", backend="{broker}")
app.conf.update(task_acks_late=True, worker_prefetch_multiplier=1, result_expires=600,
                broker_connection_retry_on_startup=True, worker_hijack_root_logger=False)

@app.task(name="bench.echo")
def echo(starts, text="x"):
    return [*starts, time.time()]

@app.task(name="bench.echo_text")
def echo_text(text):
    return text
'''


def celery_bench(redis_url: str, workdir: Path, n: int, m: int, meter: Any = None) -> dict[str, Any]:
    """Celery's chain of `n` and group of `m` (0: none); with `meter` (a sync Redis client), also the CPU
    seconds the chain took: {"workers", "redis", "postgres": 0, "redis_b"} under "cpu". Exits with what to
    install when Celery is missing (the `bench` extra)."""
    try:
        from celery import chain, group
    except ImportError:
        sys.exit("the Celery comparison needs the bench extra: .venv/bin/pip install -e '.[bench]'")

    broker = redis_url.rsplit("/", 1)[0] + "/1"  # same Redis server, its own database
    (workdir / "bench_celery_app.py").write_text(CELERY_APP.format(broker=broker))
    sys.path.insert(0, str(workdir))
    import bench_celery_app as capp  # type: ignore[import-not-found]

    env = dict(os.environ, PYTHONPATH=str(workdir))
    workers = []
    for plane in PLANES:
        with (workdir / f"celery-{plane}.log").open("wb") as log:
            workers.append(subprocess.Popen(
                [sys.executable, "-m", "celery", "-A", "bench_celery_app", "worker", "--pool=solo",
                 "-Q", plane, "-n", f"{plane}@bench", "--without-gossip", "--without-mingle",
                 "--without-heartbeat", "-l", "WARNING"], cwd=workdir, env=env, stdout=log, stderr=subprocess.STDOUT))
    try:
        warm = chain(capp.echo.s([]).set(queue="control"), capp.echo.s().set(queue="gpu")).apply_async()
        warm.get(timeout=120)
        sig = [capp.echo.s([]).set(queue="control")] + [capp.echo.s().set(queue=PLANES[i % 2]) for i in range(1, n)]
        if meter is not None:  # the cost: text in, text out, as diag.echo (not a growing list of timestamps)
            sig = [capp.echo_text.s("x").set(queue="control")] + [
                capp.echo_text.s().set(queue=PLANES[i % 2]) for i in range(1, n)]

        def read() -> dict[str, float]:
            cpu, stats = meter.info("cpu"), meter.info("stats")
            return {"workers": sum(cpu_s(w.pid) for w in workers), "postgres": 0.0,
                    "redis": float(cpu["used_cpu_sys"]) + float(cpu["used_cpu_user"]),
                    "redis_b": float(stats["total_net_input_bytes"])}

        time.sleep(1.0)
        before = read() if meter is not None else {}
        t0 = time.perf_counter()
        starts = chain(*sig).apply_async().get(timeout=300)
        wall = time.perf_counter() - t0
        time.sleep(0.5)  # as for Spinbot's record writers: the same idle time in the window
        used = {k: v - before[k] for k, v in read().items()} if meter is not None else {}
        per_node = [b - a for a, b in zip(starts, starts[1:], strict=False)] if meter is None else []
        t0 = time.perf_counter()
        if m:
            group(capp.echo.s([]).set(queue="gpu") for _ in range(m)).apply_async().get(timeout=300)
        fwall = time.perf_counter() - t0
    finally:
        for w in workers:
            w.terminate()
        for w in workers:
            try:
                w.wait(15)
            except subprocess.TimeoutExpired:
                w.kill()
    return {"per_node": per_node, "chain_wall": wall, "chain_rate": n / wall, "fanout_rate": m / fwall, "cpu": used}


# ---- report ----------------------------------------------------------------------------------------


def report(console: Console, n: int, m: int, sb: dict[str, Any], one: dict[str, Any], lg: dict[str, Any],
           ce: dict[str, Any]) -> None:
    t = Table(title=f"hand-off benchmark: chain of {n} diag.echo alternating planes, fan-out of {m}")
    for col in ("system", "per-node p50 ms", "per-node p99 ms", "hand-off p50 ms", "hand-off p99 ms",
                "chain nodes/s", "fan-out nodes/s"):
        t.add_column(col, justify="right" if col != "system" else "left")
    for name, r in (("spinbot: 2 executor processes, Redis Streams + Postgres", sb),
                    ("spinbot: the same 2 executors as tasks in one process", one)):
        t.add_row(name, ms(pct(r["per_node"], 50)), ms(pct(r["per_node"], 99)), ms(pct(r["handoff"], 50)),
                  ms(pct(r["handoff"], 99)), f"{r['chain_rate']:.0f}", f"{r['fanout_rate']:.0f}")
    t.add_row("plain LangGraph StateGraph, in-process, no durability", ms(pct(lg["per_node"], 50)),
              ms(pct(lg["per_node"], 99)), "-", "-", f"{lg['chain_rate']:.0f}", f"{lg['fanout_rate']:.0f}")
    t.add_row("Celery chain/group, 2 solo workers, same Redis", ms(pct(ce["per_node"], 50)),
              ms(pct(ce["per_node"], 99)), "= per-node", "= per-node", f"{ce['chain_rate']:.0f}",
              f"{ce['fanout_rate']:.0f}")
    console.print(t)
    pg = sb["pg_transition"]
    console.print(f"Postgres write (off the hot path): one transition (job row + graph snapshot) "
                  f"p50 {ms(pct(pg, 50))} ms, p99 {ms(pct(pg, 99))} ms; "
                  f"{sb['pg_events']} events synced in {ms(sb['pg_events_s'])} ms")
    console.print(f"LangGraph compile: chain {ms(lg['compile_chain'])} ms, fan-out {ms(lg['compile_fanout'])} ms; "
                  f"build+compile+invoke of a one-node graph (the per-claim cost of running the ready part "
                  f"with LangGraph) p50 {ms(pct(lg['per_claim'], 50))} ms")
    ok = pct(sb["handoff"], 50) <= 0.002 and pct(sb["handoff"], 99) <= 0.010 and sb["fanout_rate"] >= 300
    console.print(f"targets (hand-off p50 <= 2 ms, p99 <= 10 ms, >= 300 no-op nodes/s): "
                  f"{'[green]met[/]' if ok else '[red]not met[/]'}; load average now {os.getloadavg()[0]:.1f} "
                  f"on {os.cpu_count()} cores")


async def main_async(args: argparse.Namespace) -> None:
    console = Console(width=170)
    with tempfile.TemporaryDirectory(prefix="spinbot-bench-") as tmp:
        work = Path(tmp)
        (work / "data").mkdir()
        with servers(work, os.environ.get("SPINBOT_REDIS_URL"), os.environ.get("SPINBOT_DATABASE_URL")) as (r, d):
            console.print(f"Redis {r}, Postgres {d.rsplit('@', 1)[-1]}")
            if args.cost:
                await cost(console, r, d, work, args.chain, args.runs, [int(x) for x in args.per_plane.split(",")])
                return
            if args.scaling:
                sizes, ks = [int(x) for x in args.sizes.split(",")], [int(x) for x in args.executors.split(",")]
                await scaling(console, r, d, work / "data", sizes, ks, args.fanout)
                return
            sb = await spinbot_bench(r, d, work / "data", args.chain, args.fanout)
            one = await spinbot_one_process(r, d, work / "data", args.chain, args.fanout)
            lg = langgraph_bench(args.chain, args.fanout)
            ce = await asyncio.to_thread(celery_bench, r, work, args.chain, args.fanout)
            report(console, args.chain, args.fanout, sb, one, lg, ce)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--chain", type=int, default=200, help="nodes in the alternating chain")
    ap.add_argument("--fanout", type=int, default=300, help="independent nodes in the fan-out")
    ap.add_argument("--scaling", action="store_true", help="cost per node by graph size and executors per plane")
    ap.add_argument("--cost", action="store_true", help="nodes/s and CPU per chain node, vs Celery, --runs times")
    ap.add_argument("--runs", type=int, default=3, help="--cost: runs (the table shows min / median / max)")
    ap.add_argument("--per-plane", default="1,2", help="--cost: executor processes per plane")
    ap.add_argument("--sizes", default="10,100,500", help="--scaling: chain lengths")
    ap.add_argument("--executors", default="1,2,3", help="--scaling: executors per plane")
    asyncio.run(main_async(ap.parse_args()))


if __name__ == "__main__":
    main()
