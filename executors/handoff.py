"""The end of a JobRun: hand off to the other plane, finish the job, or dead-letter it; each one atomic
commit (write + XADD + ack) through the run's Lease, with what the state machine decided."""

from __future__ import annotations

import logging
import time
from typing import Any

from executors.interface import RunAPI
from spinbot import constants as C
from spinbot import metrics as M
from spinbot.backoff import retry
from spinbot.graph import Node
from spinbot.graphstate import Finish, HandOff, Stuck
from spinbot.queue import DELTA_FIELD, Snapshot, doc_with_states, dumps, node_state, snapshot_interval

log = logging.getLogger(__name__)

MAX_DELTA_BYTES = 64 * 1024  # node states carried in a hand-off entry (and kept in the record's d:<version>)
POSTGRES_FINISH_TRIES = 3


async def hand_off_or_finish(run: RunAPI) -> None:
    """Nothing is ready or running on this plane any more: do what GraphState.next_step says."""
    state = run.state
    cancelled = run.cancel.is_set()
    run.unrecorded += state.finish_all("cancelled") if cancelled else state.skip_blocked()
    step = state.next_step(run.plane, cancelled=cancelled)
    if isinstance(step, HandOff):
        await hand_off(run, step.plane)
    elif isinstance(step, Finish):
        await finish(run, step.status, [state.by_id[k] for k in step.failed])
    else:
        assert isinstance(step, Stuck)
        run.unrecorded += state.finish_all("skipped")
        await finish(run, "failed", error={"code": "stuck", "message": f"nodes can never run: {', '.join(step.nodes)}"})


def document(run: RunAPI) -> dict[str, Any]:
    """The graph document with this run's node states (cheap: no model serialisation)."""
    assert run.parsed is not None
    return doc_with_states(run.parsed.doc, {n.id: node_state(n) for n in run.graph.nodes})


async def hand_off(run: RunAPI, target: str) -> None:
    """Enqueue on the other plane and ack here, atomically; node states stay in the record's fields,
    and the states this run changed travel as the entry's delta (and stay as the record's d:<version>)."""
    assert run.parsed is not None
    run.version += 1
    progress = run.job_progress()
    t0 = time.perf_counter()
    fields, events = run.node_writes(run.take_unrecorded())
    target_fields: dict[str, Any] = {"job": run.job_id, "version": run.version, "progress": repr(progress)}
    delta = dumps(run.changed)
    if len(delta) <= MAX_DELTA_BYTES:  # larger: the next executor reads the record instead
        target_fields["delta"] = fields[f"{DELTA_FIELD}{run.version}"] = delta
    await run.lease.commit(
        {**fields, "status": "running", "plane": target, "version": run.version, "progress": repr(progress)},
        [*events, ("job", {"status": "running", "progress": progress, "plane": target})],
        mode="handoff", target=C.plane_stream(target), target_fields=target_fields,
    )
    run.parsed.version = run.version
    M.HANDOFFS.labels(run.plane, target).inc()
    if log.isEnabledFor(logging.DEBUG):  # per hand-off: the node lines (INFO) already say what happened
        log.debug("handed off job=%s plane=%s -> %s version=%d (%.2f ms)", run.job_id, run.plane, target,
                  run.version, (time.perf_counter() - t0) * 1000)
    writer = run.ex.writer
    if writer is not None:
        snap = Snapshot(run.job_id, run.version, "running", target, progress)
        if run.version % snapshot_interval(len(run.graph.nodes), run.ex.settings.snapshot_every) == 0:
            snap = Snapshot(run.job_id, run.version, "running", target, progress, run.parsed.doc,
                            {n.id: node_state(n) for n in run.graph.nodes})
        writer.add(snap)


async def finish(run: RunAPI, status: str, failed: list[Node] | None = None,
                 error: dict[str, Any] | None = None) -> None:
    """End the job with `status`: Postgres first (so its record is terminal no later than Redis says so),
    then the record's final graph, the events and the ack in one commit."""
    run.version += 1
    if status == "failed" and error is None and failed:
        first = failed[0]
        msg = first.error.message if first.error else "failed"
        error = {"code": "node_failed", "message": f"node {first.id} ({first.service}) failed: {msg}",
                 "nodes": [n.id for n in failed]}
    progress = 1.0 if status == "completed" else run.job_progress()
    doc = document(run)
    await _store_terminal(run, status, progress, doc, error)
    event: dict[str, Any] = {"status": status, "progress": progress}
    if error:
        event["error"] = error
    _, events = run.node_writes(run.take_unrecorded())
    await run.lease.commit(
        {"status": status, "plane": "", "version": run.version, "graph": dumps(doc),
         "progress": repr(progress), "error": dumps(error) if error else ""},
        [*events, ("job", event)], mode="finish", clear_nodes=True,
    )
    M.JOBS.labels(status).inc()
    run.ex.graphs.drop(run.job_id)
    log.info("job %s job=%s plane=%s version=%d", status, run.job_id, run.plane, run.version)
    await sync_store_final(run)


async def poison(run: RunAPI, reason: str) -> None:
    """Fail the job with a clear error and move its entry to the dead-letter stream."""
    log.error("poison entry=%s job=%s plane=%s: %s", run.entry, run.job_id, run.plane, reason)
    error = {"code": "poison", "message": reason,
             "hint": "see the dead-letter stream and the executor logs; fix the task or the graph and resubmit"}
    run.version += 1
    await run.lease.commit(
        {"status": "failed", "error": dumps(error), "version": run.version, "plane": ""},
        [("job", {"status": "failed", "progress": 1.0, "error": error})],
        mode="dead", target=C.DEAD_LETTER_STREAM,
        target_fields={"stream": run.lease.stream, "entry": run.entry, "job": run.job_id, "reason": reason,
                       "deliveries": run.deliveries},
    )
    M.JOBS.labels("failed").inc()
    await sync_store_final(run)


async def _store_terminal(run: RunAPI, status: str, progress: float, doc: dict[str, Any],
                          error: dict[str, Any] | None) -> None:
    store = run.ex.store
    if store is None:
        return
    try:
        await retry(lambda: store.record_transition(run.job_id, status=status, progress=progress, plane=None,
                                                    version=run.version, graph=doc, error=error),
                    what=f"Postgres write of finished job={run.job_id} (check SPINBOT_DATABASE_URL)",
                    tries=POSTGRES_FINISH_TRIES, first_s=0.2, cap_s=1.0)
    except Exception as e:  # Redis goes terminal anyway; the final sync (and start-up repair) catch up
        log.error("Postgres unreachable while finishing job=%s (%s) after %d tries", run.job_id, e,
                  POSTGRES_FINISH_TRIES)


async def sync_store_final(run: RunAPI) -> None:
    """All events (the terminal one too) into Postgres; on failure a background retry, then start-up repair."""
    queue = run.ex.queue
    if run.ex.store is None:
        return
    try:
        await queue.sync_store(run.job_id)
    except Exception as e:
        log.error("Postgres sync of finished job=%s failed (%s); retrying in the background", run.job_id, e)
        run.ex.background(retry(lambda: queue.sync_store(run.job_id), what=f"Postgres sync of job={run.job_id}"),
                          f"job {run.job_id} final sync")
