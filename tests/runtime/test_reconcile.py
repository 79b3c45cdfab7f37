"""Stream entries that vanish while executors run: every unfinished job is re-issued within a bound.

One GPU executor (one job slot) runs job A (`diag.wait`) while job B waits behind it in the GPU
stream; then the entries go away in each way Redis allows (XTRIM, XDEL, DEL of the stream, the
consumer group destroyed, destroyed and recreated past the entries). Both jobs must complete, A's
progress must never go back, and the continuous reconciliation (not an executor restart) does it.
"""

from __future__ import annotations

import asyncio
import logging
import subprocess
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import pytest
import redis.asyncio as aioredis
from pydantic import BaseModel

from spinbot import constants as C
from spinbot.errors import TransientError
from spinbot.manifest import RetryPolicy
from spinbot.queue import Event, JobQueue
from spinbot.registry import service
from spinbot.task import TaskContext
from tests.runtime.conftest import InProcess, all_events, graph, wait_terminal

log = logging.getLogger(__name__)

Spawn = Callable[..., subprocess.Popen[bytes]]

GPU = C.plane_stream("gpu")
RECONCILE_S = 1.0


def wait_node(id: str, seconds: float, steps: int = 10) -> dict[str, Any]:
    return {"id": id, "service": "diag.wait", "plane": "gpu", "params": {"seconds": seconds, "steps": steps}}


async def until(check: Callable[[], Awaitable[bool]], timeout: float, what: str) -> None:  # noqa: ASYNC109
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await check():
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"not within {timeout} s: {what}")


def job_progress(events: Iterable[Event]) -> list[float]:
    """The job-level progress every event reported, in order."""
    out: list[float] = []
    for e in events:
        if e.type == "progress" and "job_progress" in e.data:
            out.append(float(e.data["job_progress"]))
        elif e.type == "job" and "progress" in e.data:
            out.append(float(e.data["progress"]))
    return out


def assert_monotonic(values: list[float]) -> None:
    drops = [(a, b) for a, b in zip(values, values[1:], strict=False) if b < a]
    assert not drops, f"job progress went back: {drops} in {values}"


async def a_runs_b_waits(queue: JobQueue, redis: aioredis.Redis, a_seconds: float = 3.0) -> tuple[str, str]:
    """Job A running on the only GPU slot with some progress made, job B queued behind it."""
    a = await queue.submit(graph([wait_node("a", a_seconds)]), owner="t")

    async def a_under_way() -> bool:
        st = await queue.get(a)
        return bool(st and st.status == "running" and st.progress >= 0.3)

    await until(a_under_way, 30, "job A running with progress >= 0.3")
    b = await queue.submit(graph([wait_node("b", 0.2, steps=2)]), owner="t")
    pending = await redis.xpending_range(GPU, C.GROUP, "-", "+", 10)
    assert [p["message_id"] for p in pending] == [(await queue.get(a)).entry]  # type: ignore[union-attr]
    assert (await queue.get(b)).status == "queued"  # type: ignore[union-attr]
    return a, b


async def xtrim(redis: aioredis.Redis, a: str, b: str) -> None:
    await redis.xtrim(GPU, maxlen=0)


async def xdel_running(redis: aioredis.Redis, a: str, b: str) -> None:
    await redis.xdel(GPU, str(await redis.hget(C.job_key(a), "entry")))


async def xdel_queued(redis: aioredis.Redis, a: str, b: str) -> None:
    await redis.xdel(GPU, str(await redis.hget(C.job_key(b), "entry")))


async def del_stream(redis: aioredis.Redis, a: str, b: str) -> None:
    await redis.delete(GPU)


async def destroy_group(redis: aioredis.Redis, a: str, b: str) -> None:
    await redis.xgroup_destroy(GPU, C.GROUP)


async def recreate_group_past_entries(redis: aioredis.Redis, a: str, b: str) -> None:
    """Destroyed and recreated at `$`: both entries stay in the stream, delivered to nobody, never to be."""
    pipe = redis.pipeline(transaction=True)
    pipe.xgroup_destroy(GPU, C.GROUP)
    pipe.xgroup_create(GPU, C.GROUP, id="$")
    await pipe.execute()


DISRUPTIONS = {
    "xtrim": (xtrim, True),  # (how, does A's running node start again)
    "xdel-running": (xdel_running, True),
    "xdel-queued": (xdel_queued, False),
    "del-stream": (del_stream, True),
    "destroy-group": (destroy_group, True),
    "recreate-group-past-entries": (recreate_group_past_entries, True),
}


@pytest.mark.parametrize("name", list(DISRUPTIONS))
async def test_vanished_entries_are_reissued_while_executors_run(
    name: str, inproc: InProcess, queue: JobQueue, redis: aioredis.Redis
) -> None:
    disrupt, a_reruns = DISRUPTIONS[name]
    await inproc.start("control", reconcile_s=RECONCILE_S)
    await inproc.start("gpu", reconcile_s=RECONCILE_S, gpu_slots=1)
    await inproc.ready()
    a, b = await a_runs_b_waits(queue, redis)
    t0 = time.monotonic()
    await disrupt(redis, a, b)
    # bound: A re-issued within a claim heartbeat, B within RECONCILE_S; then A (3 s) and B run in turn
    sa = await wait_terminal(queue, a, timeout=30)
    sb = await wait_terminal(queue, b, timeout=30)
    took = time.monotonic() - t0
    log.warning("%s: both jobs completed %.2f s after the disruption", name, took)
    assert sa.status == sb.status == "completed", (sa, sb)
    assert [n["attempts"] for n in sa.graph["nodes"]] == [2 if a_reruns else 1]
    assert [n["attempts"] for n in sb.graph["nodes"]] == [1]
    events = await all_events(queue, a)
    assert_monotonic(job_progress(events))
    if a_reruns:  # the re-run says why
        assert any(e.type == "log" and "re-issued" in e.data.get("message", "") for e in events) or any(
            e.type == "log" and "resumed" in e.data.get("message", "") for e in events
        ), events
    # nothing left behind: no entries, nothing pending, no active jobs, the group is there
    assert await redis.xlen(GPU) == 0
    assert not await redis.xpending_range(GPU, C.GROUP, "-", "+", 10)
    assert not await queue.list_active()


async def test_xtrim_while_a_runs_and_b_queues_within_the_bound(
    inproc: InProcess, queue: JobQueue, redis: aioredis.Redis
) -> None:
    """The field report: XTRIM MAXLEN 0 with A running and B queued; both complete without a restart,
    B re-issued within RECONCILE_S and A's run picked up again at once."""
    await inproc.start("gpu", reconcile_s=RECONCILE_S, gpu_slots=1)
    await inproc.ready()
    a, b = await a_runs_b_waits(queue, redis, a_seconds=2.0)
    await redis.xtrim(GPU, maxlen=0)
    t0 = time.monotonic()

    async def both_reissued() -> bool:
        entries = {as_id(x) for x in await redis.hmget(C.job_key(a), ["entry"])}
        entries |= {as_id(x) for x in await redis.hmget(C.job_key(b), ["entry"])}
        live = {eid for eid, _ in await redis.xrange(GPU)}
        pending = {p["message_id"] for p in await redis.xpending_range(GPU, C.GROUP, "-", "+", 10)}
        return entries <= live | pending

    await until(both_reissued, RECONCILE_S * 3 + 10, "both jobs re-issued")
    reissued_after = time.monotonic() - t0
    assert (await wait_terminal(queue, a, timeout=30)).status == "completed"
    assert (await wait_terminal(queue, b, timeout=30)).status == "completed"
    log.warning("re-issued %.2f s, completed %.2f s after XTRIM", reissued_after, time.monotonic() - t0)
    assert reissued_after < RECONCILE_S * 3 + 10


def as_id(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


async def test_concurrent_sweeps_reissue_each_job_once(queue: JobQueue, redis: aioredis.Redis) -> None:
    """Sweeps are idempotent: many at once re-issue each lost job exactly once; live entries stay."""
    lost = [await queue.submit(graph([wait_node(f"n{i}", 0.1)]), owner="t") for i in range(5)]
    await redis.xtrim(GPU, maxlen=0)
    kept = await queue.submit(graph([wait_node("k", 0.1)]), owner="t")
    kept_entry = (await queue.get(kept)).entry  # type: ignore[union-attr]
    results = await asyncio.gather(*(JobQueue(redis, queue.store).recovery.reconcile() for _ in range(6)))
    assert sorted(j for r in results for j in r) == sorted(lost)
    entries = await redis.xrange(GPU)
    assert sorted(f["job"] for _, f in entries) == sorted([*lost, kept])
    assert all(f.get("reissued") for _, f in entries if f["job"] != kept)
    assert (await queue.get(kept)).entry == kept_entry  # type: ignore[union-attr]
    for job in lost:
        st = await queue.get(job)
        assert st and st.entry in {eid for eid, _ in entries} and st.status == "queued"
    assert await queue.recovery.reconcile() == []  # a second round finds nothing


async def test_reissue_never_touches_a_live_or_finished_job(queue: JobQueue, redis: aioredis.Redis) -> None:
    """Pending (claimed) and undelivered entries are alive; a finished job is never re-issued."""
    pending_job = await queue.submit(graph([wait_node("p", 0.1)]), owner="t")
    await redis.xreadgroup(C.GROUP, "someone", {GPU: ">"}, count=1)
    queued_job = await queue.submit(graph([wait_node("q", 0.1)]), owner="t")
    before = {j: (await queue.get(j)).entry for j in (pending_job, queued_job)}  # type: ignore[union-attr]
    assert await queue.recovery.reconcile() == []
    assert {j: (await queue.get(j)).entry for j in before} == before  # type: ignore[union-attr]
    # delivered but acknowledged without finishing the job: nobody holds it, nobody will be given it
    await redis.xack(GPU, C.GROUP, before[pending_job])
    assert await queue.recovery.reconcile() == [pending_job]
    # a job that finishes while a sweep looks at it: the script sees the finish and leaves it
    await redis.hset(C.job_key(queued_job), mapping={"status": "completed", "entry": "", "stream": ""})
    raw = {k: v for k, v in (await redis.hgetall(C.job_key(queued_job))).items()}
    assert not await queue.recovery.reissue(queued_job, {**raw, "status": "running"})
    assert await redis.xlen(GPU) == 2  # the re-issued entry and the finished job's (untouched) one


async def test_progress_never_goes_back_when_a_node_reruns_after_a_crash(
    spawn: Spawn, inproc: InProcess, queue: JobQueue, redis: aioredis.Redis
) -> None:
    """kill -9 of the executor running A at >= 30 %: another takes the entry over, A's node runs again,
    and the job's progress events never go back below what they had reached."""
    proc = spawn("gpu")
    a = await queue.submit(graph([wait_node("a", 3.0, steps=12), wait_node("z", 0.2, steps=2)], [("a", "z")]),
                           owner="t")

    async def under_way() -> bool:
        st = await queue.get(a)
        return bool(st and st.progress >= 0.2)

    await until(under_way, 60, "job A under way in the subprocess executor")
    proc.kill()
    proc.wait(10)
    reached = (await queue.get(a)).progress  # type: ignore[union-attr]
    await inproc.start("gpu", reconcile_s=RECONCILE_S)
    st = await wait_terminal(queue, a, timeout=60)
    assert st.status == "completed"
    assert [n["attempts"] for n in st.graph["nodes"]] == [2, 1]
    values = job_progress(await all_events(queue, a))
    assert reached in values and values[-1] == 1.0
    assert_monotonic(values)


class FlakyParams(BaseModel):
    pass


@service("test.flaky_progress", planes=["gpu"], description="reports 80 % then fails once, transiently",
         params=FlakyParams, retry=RetryPolicy(max_attempts=2, backoff_s=0.01), cacheable=False)
async def flaky_progress(ctx: TaskContext, p: FlakyParams) -> dict[str, Any]:
    await ctx.progress(0.8, "most of the way")
    if ctx.attempt == 1:
        raise TransientError("the first attempt fails after its progress report")
    return {}


async def test_progress_never_goes_back_when_a_node_is_retried(inproc: InProcess, queue: JobQueue) -> None:
    """A transient failure after progress: the retry restarts the node's own progress, not the job's."""
    await inproc.start("gpu", services=[flaky_progress], reconcile_s=RECONCILE_S)
    job = await queue.submit(graph([{"id": "f", "service": "test.flaky_progress", "plane": "gpu", "params": {}}]),
                             owner="t")
    st = await wait_terminal(queue, job)
    assert st.status == "completed" and st.graph["nodes"][0]["attempts"] == 2
    values = job_progress(await all_events(queue, job))
    assert 0.8 in values
    assert_monotonic(values)


@pytest.mark.parametrize("plane", ["control", "gpu"])
async def test_executors_recreate_a_destroyed_group_even_when_idle(
    plane: str, inproc: InProcess, queue: JobQueue, redis: aioredis.Redis
) -> None:
    """The group (and the stream) vanish while nothing runs: the next job submitted still runs."""
    await inproc.start("control", reconcile_s=RECONCILE_S)
    await inproc.start("gpu", reconcile_s=RECONCILE_S)
    await inproc.ready()
    stream = C.plane_stream(plane)
    await redis.delete(stream)

    async def group_back() -> bool:
        try:
            return any(g["name"] == C.GROUP for g in await redis.xinfo_groups(stream))
        except aioredis.ResponseError:
            return False

    await until(group_back, RECONCILE_S * 3 + 10, f"the {plane} group recreated")
    job = await queue.submit(graph([{"id": "e", "service": "diag.echo", "plane": plane, "params": {"text": "x"}}]),
                             owner="t")
    assert (await wait_terminal(queue, job)).status == "completed"
