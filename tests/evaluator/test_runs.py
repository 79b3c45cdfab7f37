"""Property: whatever the evaluator approves, the executors run to completion (diagnostic services, both planes)."""

from __future__ import annotations

from typing import Any

import redis.asyncio as aioredis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from evaluator import evaluate
from spinbot.capabilities import committed_manifest
from spinbot.graph import Graph
from spinbot.queue import JobQueue
from spinbot.settings import Settings
from spinbot.store import Store
from tests.runtime.conftest import InProcess, wait_terminal

MANIFEST = committed_manifest()


@st.composite
def diag_graphs(draw: st.DrawFn) -> dict[str, Any]:
    """Graphs of diag services with references, extra edges (some backwards: cycles) and some bad params."""
    nodes: list[dict[str, Any]] = []
    for i in range(draw(st.integers(1, 6))):
        earlier = [n["id"] for n in nodes]
        service = draw(st.sampled_from(["diag.echo", "diag.wait", "diag.fail"]))
        params: dict[str, Any] = {}
        if service == "diag.fail":
            params = {"mode": "transient", "times": draw(st.integers(0, 2))}
        else:
            if earlier and draw(st.booleans()):
                source = draw(st.sampled_from(earlier))
                out = "attempt" if nodes[earlier.index(source)]["service"] == "diag.fail" else "text"
                params["text"] = {"$node": source, "output": out}  # attempt is a number: a type mismatch
            else:
                params["text"] = draw(st.text(max_size=8))
            if service == "diag.wait":
                params |= {"seconds": draw(st.sampled_from([0, 0.01, 0.05, -1])), "steps": 2}
        nodes.append({"id": f"n{i}", "service": service, "plane": draw(st.sampled_from(["control", "gpu"])),
                      "params": params})  # fmt: skip
    ids = [n["id"] for n in nodes]
    edges = draw(st.lists(st.tuples(st.sampled_from(ids), st.sampled_from(ids)), max_size=4))
    return {"schema": "langgraph.v1", "workflowId": "prop-run", "nodes": nodes,
            "edges": [{"from": a, "to": b} for a, b in edges]}  # fmt: skip


def approved_graphs(limit: int = 12) -> tuple[list[Graph], int]:
    approved: list[Graph] = []
    seen = [0]

    @settings(max_examples=60, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(diag_graphs())
    def collect(doc: dict[str, Any]) -> None:
        seen[0] += 1
        verdict = evaluate(doc, MANIFEST)
        if verdict.ok and verdict.graph is not None and len(approved) < limit:
            approved.append(verdict.graph)

    collect()
    return approved, seen[0]


async def test_approved_graphs_run_to_completion(settings: Settings, store: Store, redis: aioredis.Redis) -> None:
    graphs, seen = approved_graphs()
    assert len(graphs) >= 5 and seen > len(graphs)  # the generator makes both kinds
    runner = InProcess(settings, store)
    try:
        await runner.both()
        await runner.ready()
        queue = JobQueue(redis, store)
        jobs = [await queue.submit(g, owner="property") for g in graphs]
        for job_id, graph in zip(jobs, graphs, strict=True):
            state = await wait_terminal(queue, job_id, timeout=60)
            assert state.status == "completed", (graph.to_json(), state.error)
            assert state.progress == 1.0
    finally:
        await runner.close()
