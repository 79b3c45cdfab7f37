"""Concurrency, failure, retries, timeouts, cancellation and bad input, executors in-process."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from pydantic import BaseModel

from spinbot.graph import node_ref
from spinbot.manifest import RetryPolicy
from spinbot.queue import Event, JobQueue
from spinbot.registry import service
from spinbot.task import TaskContext
from tests.runtime.conftest import InProcess, all_events, graph, wait_terminal


def node(id: str, plane: str, svc: str = "diag.echo", **params: Any) -> dict[str, Any]:
    return {"id": id, "service": svc, "plane": plane, "params": params}


def nodes_of(graph_doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {n["id"]: n for n in graph_doc["nodes"]}


def ms(event_id: str) -> int:
    return int(event_id.split("-")[0])


def spans(events: list[Event]) -> dict[str, tuple[int, int]]:
    """node -> (first running event ms, completed event ms) from the event ids' timestamps."""
    start: dict[str, int] = {}
    end: dict[str, int] = {}
    for e in events:
        if e.type == "node" and e.data["status"] == "running":
            start.setdefault(e.data["node"], ms(e.id))
        elif e.type == "node" and e.data["status"] == "completed":
            end[e.data["node"]] = ms(e.id)
    return {n: (start[n], end[n]) for n in end}


async def test_independent_branches_overlap(inproc: InProcess, queue: JobQueue) -> None:
    await inproc.both()
    g = graph([
        node("w1", "gpu", "diag.wait", seconds=0.6, steps=3, text="one"),
        node("w2", "gpu", "diag.wait", seconds=0.6, steps=3, text="two"),
        node("w3", "gpu", "diag.wait", seconds=0.6, steps=3, text="three"),
        node("join", "control", data=[node_ref("w1", "text"), node_ref("w2", "text"), node_ref("w3", "text")]),
    ])
    t0 = time.monotonic()
    job = await queue.submit(g, owner="t")
    st = await wait_terminal(queue, job)
    wall = time.monotonic() - t0
    assert st.status == "completed"
    assert nodes_of(st.graph)["join"]["output"]["data"] == ["one", "two", "three"]
    s = spans(await all_events(queue, job))
    latest_start = max(s[n][0] for n in ("w1", "w2", "w3"))
    earliest_end = min(s[n][1] for n in ("w1", "w2", "w3"))
    assert latest_start < earliest_end, s  # all three ran at the same time
    assert wall < 1.5, wall  # serially it would take 1.8 s
    progress = [e for e in await all_events(queue, job) if e.type == "progress"]
    assert progress and all(0 < e.data["progress"] <= 1 and "job_progress" in e.data for e in progress)


async def test_failure_skips_dependants_and_fails_the_job(inproc: InProcess, queue: JobQueue) -> None:
    await inproc.both()
    g = graph([
        node("bad", "control", "diag.fail", mode="permanent", message="broken on purpose"),
        node("after", "gpu", text=node_ref("bad", "attempt")),
        node("later", "control"),
        node("free", "gpu", text="independent"),
    ], edges=[("after", "later")])
    job = await queue.submit(g, owner="t")
    st = await wait_terminal(queue, job)
    n = nodes_of(st.graph)
    assert st.status == "failed"
    assert (n["bad"]["status"], n["after"]["status"], n["later"]["status"], n["free"]["status"]) == (
        "failed", "skipped", "skipped", "completed")
    assert n["bad"]["error"]["message"] == "broken on purpose" and n["bad"]["attempts"] == 1  # permanent: no retry
    assert st.error and "bad" in st.error["message"] and "broken on purpose" in st.error["message"]


async def test_transient_errors_are_retried_with_attempts_counted(inproc: InProcess, queue: JobQueue) -> None:
    await inproc.both()
    job = await queue.submit(graph([node("f", "gpu", "diag.fail", mode="transient", times=2)]), owner="t")
    st = await wait_terminal(queue, job)
    f = nodes_of(st.graph)["f"]
    assert st.status == "completed" and f["attempts"] == 3 and f["output"] == {"attempt": 3}
    logs = [e for e in await all_events(queue, job) if e.type == "log"]
    assert len(logs) == 2 and "retrying" in logs[0].data["message"]

    job = await queue.submit(graph([node("f", "gpu", "diag.fail", mode="transient", times=5)]), owner="t")
    st = await wait_terminal(queue, job)
    f = nodes_of(st.graph)["f"]
    assert st.status == "failed" and f["attempts"] == 3 and f["error"]["transient"] is True


class SleepParams(BaseModel):
    seconds: float = 5.0


@service("test.sleep", planes=["gpu"], description="sleeps, ignoring cancellation", params=SleepParams,
         timeout_s=0.2, retry=RetryPolicy(max_attempts=2, backoff_s=0.01), cacheable=False)
async def sleep_service(ctx: TaskContext, p: SleepParams) -> dict[str, Any]:
    await asyncio.sleep(p.seconds)
    return {}


@service("test.stubborn", planes=["gpu"], description="sleeps, ignoring cancellation", params=SleepParams,
         timeout_s=60, retry=RetryPolicy(max_attempts=1), cacheable=False)
async def stubborn_service(ctx: TaskContext, p: SleepParams) -> dict[str, Any]:
    await asyncio.sleep(p.seconds)
    return {}


async def test_node_timeout_fails_after_its_retries(inproc: InProcess, queue: JobQueue) -> None:
    await inproc.start("gpu", services=[sleep_service])
    t0 = time.monotonic()
    job = await queue.submit(graph([node("s", "gpu", "test.sleep")]), owner="t")
    st = await wait_terminal(queue, job)
    s = nodes_of(st.graph)["s"]
    assert st.status == "failed" and s["attempts"] == 2 and s["error"]["code"] == "timeout"
    assert "0.2 s" in s["error"]["message"] and time.monotonic() - t0 < 2.0


async def test_cancel_stops_running_nodes_within_two_seconds(inproc: InProcess, queue: JobQueue) -> None:
    await inproc.start("control")
    g = graph([
        node("long", "gpu", "diag.wait", seconds=60, steps=600),
        node("ignores", "gpu", "test.stubborn", seconds=60),
        node("next", "control", text=node_ref("long", "text")),
    ])
    await inproc.start("gpu", services=[stubborn_service])
    job = await queue.submit(g, owner="t")
    after = "0-0"
    while True:  # until the long node is running
        events = await queue.read_events(job, after, block_ms=5000)
        assert events, "no events"
        after = events[-1].id
        if any(e.type == "node" and e.data["node"] == "long" and e.data["status"] == "running" for e in events):
            break
    t0 = time.monotonic()
    assert await queue.cancel(job)
    st = await wait_terminal(queue, job, timeout=5)
    assert time.monotonic() - t0 < 2.0
    n = nodes_of(st.graph)
    assert st.status == "cancelled"
    assert n["long"]["status"] == n["ignores"]["status"] == n["next"]["status"] == "cancelled"
    assert not await queue.cancel(job)  # already finished


async def test_cancel_of_a_queued_job_needs_no_executor(queue: JobQueue, store: Any) -> None:
    job = await queue.submit(graph([node("a", "gpu")]), owner="t")
    assert await queue.cancel(job)
    st = await queue.get(job)
    assert st and st.status == "cancelled" and nodes_of(st.graph)["a"]["status"] == "cancelled"
    row = await store.get_job(job)
    assert row["status"] == "cancelled"
    assert not await queue.redis.xlen("spinbot:plane:gpu")


async def test_bad_params_and_missing_outputs_fail_clearly(inproc: InProcess, queue: JobQueue) -> None:
    await inproc.both()
    g = graph([
        node("w", "control", "diag.wait", seconds=-1),
        node("a", "control", text="x"),
        node("b", "gpu", text=node_ref("a", "nope")),
        node("u", "gpu", "diag.unknown"),
    ])
    job = await queue.submit(g, owner="t")
    st = await wait_terminal(queue, job)
    n = nodes_of(st.graph)
    assert st.status == "failed"
    assert "invalid params for diag.wait on node w: seconds:" in n["w"]["error"]["message"]
    assert n["b"]["error"]["message"] == "node b references output 'nope' of node 'a', which has outputs: data, text"
    assert n["u"]["error"]["code"] == "unknown_service" and "diag.echo" in n["u"]["error"]["hint"]


class GpuParams(BaseModel):
    seconds: float = 0.3


@service("test.gpu3g", planes=["gpu"], description="holds 3 GB of device memory", params=GpuParams,
         gpu=True, memory_mb=3000, retry=RetryPolicy(max_attempts=1), cacheable=False)
async def gpu3g(ctx: TaskContext, p: GpuParams) -> dict[str, Any]:
    start = time.monotonic()
    await asyncio.sleep(p.seconds)
    HELD[ctx.node_id] = (start, time.monotonic())
    return {}


HELD: dict[str, tuple[float, float]] = {}  # node -> when test.gpu3g held its memory


@service("test.gpu8g", planes=["gpu"], description="needs 8 GB of device memory", params=GpuParams,
         gpu=True, memory_mb=8000, retry=RetryPolicy(max_attempts=1))
async def gpu8g(ctx: TaskContext, p: GpuParams) -> dict[str, Any]:
    return {}


async def test_gpu_nodes_are_admitted_by_declared_memory(inproc: InProcess, queue: JobQueue) -> None:
    """4 GB device, 2 slots: two 3 GB nodes never overlap, a CPU node does; an 8 GB node fails clearly."""
    await inproc.start("gpu", services=[gpu3g, gpu8g], gpu_memory_mb=4096, gpu_slots=2)
    g = graph([
        node("g1", "gpu", "test.gpu3g"),
        node("g2", "gpu", "test.gpu3g"),
        node("cpu", "gpu", "diag.wait", seconds=0.3, steps=1),
        node("huge", "gpu", "test.gpu8g"),
    ])
    job = await queue.submit(g, owner="t")
    st = await wait_terminal(queue, job)
    n = nodes_of(st.graph)
    assert n["huge"]["status"] == "failed"
    assert n["huge"]["error"]["message"] == "test.gpu8g needs 8000 MB of device memory, this executor has 4096 MB"
    (s1, e1), (s2, e2) = sorted((HELD["g1"], HELD["g2"]))
    assert s2 >= e1  # admitted one after the other
    events = await all_events(queue, job)
    cpu_start = next(e.data["ts"] for e in events if e.type == "node" and e.data["node"] == "cpu")
    assert cpu_start < e1 - time.monotonic() + time.time()  # not held back by GPU admission


async def test_a_saturated_gpu_executor_leaves_work_to_another(inproc: InProcess, queue: JobQueue) -> None:
    """One GPU slot each: the second job goes to the second executor instead of queueing behind the first."""
    jobs = [await queue.submit(graph([node(f"j{i}", "gpu", "test.gpu3g", seconds=1.0)]), owner="t")
            for i in range(2)]  # both waiting before any executor reads: one read could take both
    for _ in range(2):
        await inproc.start("gpu", services=[gpu3g], gpu_memory_mb=4096, gpu_slots=1)
    for job in jobs:
        assert (await wait_terminal(queue, job)).status == "completed"
    (s1, e1), (s2, e2) = sorted((HELD["j0"], HELD["j1"]))
    assert s2 < e1  # they ran at the same time, on the two executors
