"""spinbot.history: finished nodes read back from Postgres as runs, and the refreshed table."""

from __future__ import annotations

import json

import pytest

from spinbot.capabilities import committed_manifest
from spinbot.history import EstimatesCache, load_runs
from spinbot.store import Store

SPECS = committed_manifest().services


def graph(text: str) -> dict[str, object]:
    return {"schema": "langgraph.v1", "workflowId": "w", "nodes": [
        {"id": "say", "service": "tts.synthesize", "plane": "gpu", "status": "completed",
         "params": {"text": {"$node": "echo", "output": "text"}}, "output": {"duration_s": 2.0}},
        {"id": "echo", "service": "diag.echo", "plane": "gpu", "status": "completed", "params": {"text": text},
         "output": {"text": text}},
        {"id": "bad", "service": "tts.synthesize", "plane": "gpu", "status": "failed", "params": {"text": "x"}},
    ]}


async def test_runs_come_from_node_events_and_the_final_graph(store: Store) -> None:
    for i, chars in enumerate((100, 400, 900)):
        job, text = f"j{i}", "a" * chars
        await store.create_job(job, "alice", graph(text))
        await store.record_transition(job, status="completed", progress=1, plane=None, version=1, graph=graph(text))
        t0 = 1_000_000 + i * 100_000
        node = {"node": "say", "service": "tts.synthesize", "plane": "gpu"}
        await store.add_events(job, [
            (f"{t0}-0", "node", json.dumps({**node, "status": "running"})),
            (f"{t0 + 500}-0", "node", json.dumps({**node, "status": "running", "attempts": 2})),  # a retry
            (f"{t0 + 500 + chars * 10}-0", "node", json.dumps({**node, "status": "completed", "device": "H200",
                                                                "peak_mb": 300})),
            (f"{t0 + 1}-0", "node", json.dumps({"node": "bad", "service": "tts.synthesize", "plane": "gpu",
                                                 "status": "failed"})),
        ])
    runs = await load_runs(store.pool, SPECS)
    assert [(r.feature, r.seconds, r.device, r.peak_mb) for r in runs] == [
        (100.0, 1.0, "H200", 300.0), (400.0, 4.0, "H200", 300.0), (900.0, 9.0, "H200", 300.0)]
    cache = EstimatesCache(store.pool, lambda: SPECS)
    table = await cache.refresh()
    got = table.estimate(SPECS["tts.synthesize"], "gpu", 600, devices=["H200"])
    assert got.runs == 3 and got.seconds == pytest.approx(6.0, rel=0.5)
    assert cache.table() is table  # fresh: no second refresh


async def test_a_node_the_cache_answered_is_not_a_run(store: Store) -> None:
    """A reused node (spinbot.nodecache) ends ~10 ms after it starts: as a run it would pull the learned
    estimate of a real render down to the bound (a tenth of the declaration) after a few follow-ups."""
    node = {"node": "say", "service": "tts.synthesize", "plane": "gpu"}
    for i, reused in enumerate((None, {"job": "j0", "node": "say"}, {"job": "j0", "node": "say"})):
        job = f"j{i}"
        await store.create_job(job, "alice", graph("a" * 450))
        await store.record_transition(job, status="completed", progress=1, plane=None, version=1, graph=graph("a"))
        t0 = 1_000_000 + i * 100_000
        done = {**node, "status": "completed", **({"reused": reused} if reused else {})}
        await store.add_events(job, [(f"{t0}-0", "node", json.dumps({**node, "status": "running"})),
                                     (f"{t0 + (10 if reused else 3000)}-0", "node", json.dumps(done))])
    runs = await load_runs(store.pool, SPECS)
    assert [r.seconds for r in runs] == [3.0]
