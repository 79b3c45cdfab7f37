"""Executor logic on the in-memory StubQueue: hand-offs, deltas, failures, retries, cancels, fencing (no Redis)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from executors.core import Executor
from executors.manifests import registry
from spinbot import constants as C
from spinbot.artifacts import LocalStore
from spinbot.errors import LostClaim
from spinbot.graph import Graph, node_ref
from spinbot.queue.stub import StubQueue
from spinbot.settings import Settings


def graph(nodes: list[dict[str, Any]], edges: list[tuple[str, str]] = ()) -> Graph:  # type: ignore[assignment]
    return Graph.model_validate({"schema": "langgraph.v1", "workflowId": "stub", "nodes": nodes,
                                 "edges": [{"from": a, "to": b} for a, b in edges]})


def echo(id: str, plane: str, **params: Any) -> dict[str, Any]:
    return {"id": id, "service": "diag.echo", "plane": plane, "params": params}


@pytest.fixture
def q() -> StubQueue:
    return StubQueue()


@pytest.fixture
def make(q: StubQueue, tmp_path: Path) -> Any:
    settings = Settings(data_dir=tmp_path / "data", redis_url=None, database_url=None)

    def build(plane: str, name: str = "") -> Executor:
        return Executor(settings, plane, registry(plane), None, None,  # type: ignore[arg-type]
                        LocalStore(settings.artifacts_dir), executor_id=name or f"{plane}-1", queue=q)

    return build


async def drive(*executors: Executor, rounds: int = 50) -> None:
    """Claim and serve on every executor until no stream holds anything."""
    for _ in range(rounds):
        served = 0
        for ex in executors:
            served += await ex.claim_once(8, block_ms=0)
            await ex.settle()
        if not served:
            return


async def test_a_chain_alternating_planes_completes_and_outputs_flow(q: StubQueue, make: Any) -> None:
    job = await q.submit(graph([echo("a", "control", text="hi"), echo("b", "gpu", text=node_ref("a", "text")),
                                echo("c", "control", text=node_ref("b", "text"))]), owner="t")
    await drive(make("control"), make("gpu"))
    st = await q.get(job)
    assert st is not None and st.status == "completed" and st.version == 3 and st.progress == 1.0
    assert [n["output"]["text"] for n in st.graph["nodes"]] == ["hi", "hi", "hi"]
    planes = [e.data["plane"] for e in q.events[job] if e.type == "job" and e.data["status"] == "running"]
    assert planes == ["control", "gpu", "control"]
    assert not any(k.startswith(("n:", "d:")) for k in q.records[job])  # the finish folds them into `graph`


async def test_two_executors_per_plane_catch_up_from_the_record_deltas(q: StubQueue, make: Any) -> None:
    """Consecutive hops land on different executors of a plane: each applies the deltas it missed."""
    nodes = [echo(f"n{i}", ("control", "gpu")[i % 2], text=node_ref(f"n{i - 1}", "text") if i else "x")
             for i in range(8)]
    job = await q.submit(graph(nodes), owner="t")
    c1, c2, g1, g2 = make("control", "c1"), make("control", "c2"), make("gpu", "g1"), make("gpu", "g2")
    full_loads = 0
    for ex in (c1, c2, g1, g2):
        load = ex.consumer.read_record

        async def counted(job_id: str, load: Any = load) -> dict[str, str]:
            nonlocal full_loads
            full_loads += 1
            return await load(job_id)

        ex.consumer.read_record = counted  # type: ignore[method-assign]
    for hop in range(8):  # c1 g1 c2 g2 c1 g1 c2 g2
        ex = [c1, g1, c2, g2][hop % 4]
        assert await ex.claim_once(1, block_ms=0) == 1
        await ex.settle()
    st = await q.get(job)
    assert st is not None and st.status == "completed", st
    assert full_loads == 4  # each executor read the whole record once; later hops applied deltas


async def test_a_failure_skips_downstream_on_every_plane(q: StubQueue, make: Any) -> None:
    job = await q.submit(graph([
        {"id": "f", "service": "diag.fail", "plane": "gpu", "params": {"mode": "permanent"}},
        echo("x", "control"), echo("y", "gpu")], [("f", "x"), ("x", "y")]), owner="t")
    await drive(make("control"), make("gpu"))
    st = await q.get(job)
    assert st is not None and st.status == "failed" and st.error and st.error["code"] == "node_failed"
    assert [n["status"] for n in st.graph["nodes"]] == ["failed", "skipped", "skipped"]


async def test_transient_failures_are_retried_by_the_middleware(q: StubQueue, make: Any) -> None:
    job = await q.submit(graph([{"id": "f", "service": "diag.fail", "plane": "control",
                                 "params": {"mode": "transient", "times": 2}}]), owner="t")
    await drive(make("control"))
    st = await q.get(job)
    assert st is not None and st.status == "completed"
    assert st.graph["nodes"][0]["attempts"] == 3 and st.graph["nodes"][0]["output"] == {"attempt": 3}


async def test_cancel_of_a_waiting_job_and_of_a_held_one(q: StubQueue, make: Any) -> None:
    idle = await q.submit(graph([echo("a", "gpu")]), owner="t")
    assert await q.cancel(idle)
    st = await q.get(idle)
    assert st is not None and st.status == "cancelled" and not q.streams[C.plane_stream("gpu")].entries

    held = await q.submit(graph([echo("a", "control"), echo("b", "gpu")], [("a", "b")]), owner="t")
    control = make("control")
    await control.claim_once(1, block_ms=0)
    await control.settle()
    gpu = make("gpu")
    assert await gpu.claim_once(1, block_ms=0) == 1  # claimed; its run has not started yet
    assert await q.cancel(held)  # the gpu executor holds it: it cancels the job itself
    await gpu.settle()
    st = await q.get(held)
    assert st is not None and st.status == "cancelled"
    assert [n["status"] for n in st.graph["nodes"]] == ["completed", "cancelled"]


async def test_a_lease_whose_entry_was_taken_over_writes_nothing(q: StubQueue, make: Any) -> None:
    job = await q.submit(graph([echo("a", "gpu")]), owner="t")
    old, new = make("gpu", "old").consumer, make("gpu", "new").consumer
    claim = (await old.claim_new(1, 0))[0]
    await old.release([claim.entry])  # as if its executor died: idle at once
    taken = (await new.autoclaim(1))[0]
    assert taken.deliveries == 2
    with pytest.raises(LostClaim):
        await old.lease(claim).commit({"status": "failed"})
    await new.lease(taken).commit({"status": "completed"}, mode="finish")
    st = await q.get(job)
    assert st is not None and st.status == "completed" and st.entry is None
    assert await old.heartbeat([claim.entry]) == [(claim.entry, "gone")]
