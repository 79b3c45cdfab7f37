"""The fenced commit (spinbot/queue/lease.py + lua/commit.lua) against a real Redis: what it writes arrives
exactly as sent, whatever the text, now that fields, events and hand-off fields travel as one JSON argument."""

from __future__ import annotations

from typing import Any

from spinbot import constants as C
from spinbot.graph import Graph
from spinbot.queue import JobQueue, decode_event, loads

AWKWARD = 'quote " backslash \\ newline \n tab \t nul \x00 snowman \u2603 line-sep \u2028 emoji \U0001f600 [1,{"a":2}]'


async def test_a_hand_off_commit_writes_fields_events_and_the_next_entry_as_sent(redis: Any) -> None:
    q = JobQueue(redis, None)
    await q.ensure_groups()
    graph = Graph.model_validate({"schema": "langgraph.v1", "workflowId": "w", "nodes": [
        {"id": "a", "service": "diag.echo", "plane": "control", "params": {"text": "x"}},
        {"id": "b", "service": "diag.echo", "plane": "gpu", "params": {"text": "y"}}]})
    job = await q.submit(graph, owner="t")
    consumer = q.consumer("control", "c1", claim_idle_ms=60_000)
    [claim] = await consumer.claim_new(1, 100)
    lease = consumer.lease(claim)

    entry, ids = await lease.commit(
        {"n:a": AWKWARD, "version": 7, "progress": 0.5, "empty": ""},
        [("log", {"node": "a", "message": AWKWARD}), ("node", {"node": "a", "status": "completed"})],
        mode="handoff", target=C.plane_stream("gpu"), target_fields={"job": job, "version": 7, "delta": AWKWARD})

    record = await redis.hgetall(C.job_key(job))
    assert record["n:a"] == AWKWARD and record["version"] == "7" and record["progress"] == "0.5"
    assert record["empty"] == "" and float(record["updated"]) > 0
    assert record["entry"] == entry and record["stream"] == C.plane_stream("gpu")
    events = [decode_event(eid, f) for eid, f in await redis.xrange(C.job_events_key(job))]
    assert [e.id for e in events[-2:]] == ids
    assert events[-2].type == "log" and events[-2].data["message"] == AWKWARD
    assert events[-1].type == "node" and events[-1].data["status"] == "completed"
    [(eid, fields)] = await redis.xrange(C.plane_stream("gpu"))
    assert eid == entry and fields == {"job": job, "version": "7", "delta": AWKWARD}
    assert await redis.xlen(C.plane_stream("control")) == 0  # acked and deleted in the same script
    assert loads(record["graph"])["workflowId"] == "w"
    assert lease.released
