"""The executor core on real Redis and Postgres, executors in-process."""

from __future__ import annotations

import asyncio
import hashlib
from typing import Any

from pydantic import BaseModel

from spinbot.graph import node_ref
from spinbot.queue import JobQueue
from spinbot.registry import service
from spinbot.store import Store
from spinbot.task import TaskContext
from tests.runtime.conftest import InProcess, all_events, graph, wait_terminal


def echo(id: str, plane: str, **params: object) -> dict[str, object]:
    return {"id": id, "service": "diag.echo", "plane": plane, "params": params}


async def test_hybrid_graph_alternating_planes_completes_with_outputs(
    inproc: InProcess, queue: JobQueue, store: Store
) -> None:
    await inproc.both()
    g = graph([
        echo("a", "control", text="hello"),
        echo("b", "gpu", text=node_ref("a", "text"), data={"n": 1}),
        echo("c", "control", text=node_ref("b", "text"), data=[node_ref("b", "data"), node_ref("a", "text")]),
        echo("d", "gpu", data=node_ref("c", "data")),
    ])
    job = await queue.submit(g, owner="t")
    st = await wait_terminal(queue, job)
    assert st.status == "completed", st.error
    nodes = {n["id"]: n for n in st.graph["nodes"]}
    assert nodes["d"]["output"] == {"text": "", "data": [{"n": 1}, "hello"]}
    assert all(n["status"] == "completed" and n["attempts"] == 1 for n in nodes.values())
    assert st.progress == 1.0 and st.version == 4  # three hand-offs and the finish
    events = await all_events(queue, job)
    planes = [e.data.get("plane") for e in events if e.type == "job" and e.data["status"] == "running"]
    assert planes == ["control", "gpu", "control", "gpu"]
    assert events[-1].type == "job" and events[-1].data["status"] == "completed"
    row = await store.get_job(job)
    assert row and row["status"] == "completed" and row["version"] == 4

    async def recorded() -> tuple[int, int]:
        snaps = await store.pool.fetchval("SELECT count(*) FROM graph_snapshots WHERE job_id=$1", job)
        return len(await store.events(job, limit=1000)), snaps

    # Every event, but full graphs only at submit and at the end: a running job's graph is snapshotted
    # every max(SPINBOT_SNAPSHOT_EVERY, nodes) transitions (spinbot.queue.writer.snapshot_interval).
    for _ in range(100):  # the last events and snapshots reach Postgres a moment after the finish
        if await recorded() == (len(events), 2):
            break
        await asyncio.sleep(0.05)
    assert await recorded() == (len(events), 2)


class WriteParams(BaseModel):
    text: str


@service("test.write", planes=["gpu"], description="writes its text to an artifact", params=WriteParams,
         inputs={"text": "text"}, outputs={"file": "any"})
async def write_service(ctx: TaskContext, p: WriteParams) -> dict[str, Any]:
    path = ctx.workdir / "out.txt"
    path.write_text(p.text)
    return {"file": await ctx.put_artifact("out.txt", path)}


async def test_artifacts_are_stored_announced_and_recorded(
    inproc: InProcess, queue: JobQueue, store: Store
) -> None:
    await inproc.start("control")
    await inproc.start("gpu", services=[write_service])
    g = graph([echo("a", "control", text="hello artifact"),
               {"id": "w", "service": "test.write", "plane": "gpu", "params": {"text": node_ref("a", "text")}}])
    job = await queue.submit(g, owner="t")
    st = await wait_terminal(queue, job)
    assert st.status == "completed"
    desc = next(n for n in st.graph["nodes"] if n["id"] == "w")["output"]["file"]
    assert desc["key"] == f"jobs/{job}/w/out.txt" and desc["size"] == len("hello artifact")
    assert desc["sha256"] == hashlib.sha256(b"hello artifact").hexdigest()
    [event] = [e for e in await all_events(queue, job) if e.type == "artifact"]
    assert event.data["name"] == "out.txt" and event.data["key"] == desc["key"]
    for _ in range(50):  # recorded by the executor in the background
        rows = await store.artifacts(job)
        if rows:
            break
        await asyncio.sleep(0.05)
    assert rows and rows[0]["sha256"] == desc["sha256"] and rows[0]["node_id"] == "w"
    assert not any((inproc.settings.data_dir / "work").rglob("out.txt"))  # the work directory was cleaned
