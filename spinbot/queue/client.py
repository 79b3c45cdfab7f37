"""The producer's side and the readers': submit, inspect, follow, cancel, and the Postgres sync.

A submitter that follows its job gets a `Job` (JobQueue.run), as arq's `enqueue_job` answers with an
`arq.jobs.Job`: one handle for the job's id, its events, its state and its cancel.
"""

from __future__ import annotations

import contextlib
import logging
import time
import uuid
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis

from spinbot import constants as C
from spinbot.errors import TooManyJobs
from spinbot.graph import TERMINAL_NODE, Graph
from spinbot.graphstate import GraphState, validate_structure
from spinbot.queue.consumer import Consumer
from spinbot.queue.hub import ZERO, EventHub, is_terminal, parse_id
from spinbot.queue.record import (
    TERMINAL_JOB,
    Event,
    JobState,
    as_str,
    decode_event,
    decode_hash,
    doc_with_states,
    dumps,
    flat,
    loads,
    node_states,
    state_from_hash,
)
from spinbot.queue.recovery import Recovery
from spinbot.queue.scripts import Scripts
from spinbot.store import Store

log = logging.getLogger(__name__)

def cancelled_record(raw: dict[str, str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The record fields and the job event that cancel the job of this (decoded) record."""
    doc = doc_with_states(loads(raw["graph"]), node_states(raw))
    for n in doc["nodes"]:
        if n.get("status", "pending") not in TERMINAL_NODE:
            n["status"] = "cancelled"
    progress = GraphState(Graph.model_validate(doc)).progress()
    fields = {"status": "cancelled", "progress": repr(progress), "version": int(raw.get("version") or 0) + 1,
              "graph": dumps(doc), "updated": repr(time.time()), "plane": raw.get("plane", "")}
    return fields, {"status": "cancelled", "progress": progress}


def new_record(job_id: str, graph: Graph, *, owner: str, pipeline: str | None, plane: str, version: int = 0,
               progress: float | None = None) -> dict[str, Any]:
    """The fields of a fresh job record (status queued)."""
    now = repr(time.time())
    return {
        "id": job_id, "status": "queued", "progress": repr(progress or GraphState(graph).progress()),
        "plane": plane, "version": version, "owner": owner, "pipeline": pipeline or "",
        "graph": dumps(graph.to_json()), "error": "", "created": now, "updated": now, "cancel": "0",
    }


class JobQueue:
    """Submit, inspect, cancel and follow jobs; executors claim through a Consumer (consumer.py).

    `hub`: what `follow` reads live events through; by default a hub whose blocking reads share `redis`'s
    pool (an API passes one with a pool of its own, conversation.services). It starts nothing until a job
    is followed; whoever follows jobs stops it (`hub.stop()`) when done.
    """

    def __init__(self, redis: aioredis.Redis, store: Store | None = None, *, hub: EventHub | None = None) -> None:
        self.redis = redis
        self.store = store
        self.hub = hub or EventHub(redis)
        self.scripts = Scripts.register(redis)
        self.recovery = Recovery(self)  # the sweep: recover(), reconcile(), reconcile_job()

    # -- submit

    async def submit(self, graph: Graph, *, owner: str, pipeline: str | None = None,
                     max_unfinished: int | None = None) -> str:
        """Validate, record in Postgres, enqueue on the plane of the first ready node; returns the job id.

        With `max_unfinished`, the job is enqueued only if `owner` has fewer unfinished jobs than that,
        counted and enqueued in one Redis script (exact across any number of API processes).
        Raises InvalidGraph for a structural error (spinbot.graphstate.validate_structure), TooManyJobs
        at the limit (nothing is left behind in Redis or Postgres)."""
        validate_structure(graph)
        job_id = uuid.uuid4().hex
        plane = GraphState(graph).first_plane()
        if self.store is not None:
            await self.store.create_job(job_id, owner, graph.to_json(), pipeline=pipeline)
        try:
            await self.enqueue_new(job_id, graph, owner=owner, pipeline=pipeline, plane=plane,
                                   max_unfinished=max_unfinished)
        except BaseException:
            # Not accepted: the Postgres row must not be re-issued later by an executor's recovery.
            if self.store is not None:
                with contextlib.suppress(Exception):
                    await self.store.pool.execute("DELETE FROM jobs WHERE id=$1 AND status='queued'", job_id)
            raise
        return job_id

    async def run(self, graph: Graph, *, owner: str, pipeline: str | None = None,
                  max_unfinished: int | None = None) -> Job:
        """`submit`, answered with the `Job` to follow it by: its events, its state, its cancel (same errors)."""
        return Job(self, await self.submit(graph, owner=owner, pipeline=pipeline, max_unfinished=max_unfinished))

    async def enqueue_new(self, job_id: str, graph: Graph, *, owner: str, pipeline: str | None, plane: str,
                          version: int = 0, progress: float | None = None, recovered: bool = False,
                          max_unfinished: int | None = None) -> bool:
        """Write a new job record and its first entry atomically; False if the record exists already.
        Raises TooManyJobs when `owner` has `max_unfinished` unfinished jobs (None: no limit)."""
        fields = new_record(job_id, graph, owner=owner, pipeline=pipeline, plane=plane, version=version,
                            progress=progress)
        event: dict[str, Any] = {"status": "queued", "progress": float(fields["progress"]), "plane": plane}
        if recovered:
            event["recovered"] = True
        out = await self.scripts.submit(
            keys=[C.plane_stream(plane), C.job_key(job_id), C.job_events_key(job_id), C.JOBS_INDEX, C.ACTIVE_JOBS,
                  C.owner_jobs_key(owner)],
            args=[job_id, fields["created"], C.EVENTS_MAXLEN, len(fields), *flat(fields), dumps(event),
                  max(0, max_unfinished or 0)],
        )
        if out and int(out[0]) == -1:
            assert max_unfinished is not None
            raise TooManyJobs(int(out[1]), max_unfinished)
        return bool(out and int(out[0]) == 1)

    async def ensure_groups(self) -> None:
        """Create each plane's consumer group (and stream) if missing."""
        for plane in C.PLANES:
            try:
                await self.redis.xgroup_create(C.plane_stream(plane), C.GROUP, id="0", mkstream=True)
            except aioredis.ResponseError as e:
                if "BUSYGROUP" not in str(e):
                    raise

    # -- read

    async def get(self, job_id: str) -> JobState | None:
        raw = decode_hash(await self.redis.hgetall(C.job_key(job_id)))
        if "graph" not in raw:
            return None
        return state_from_hash(job_id, raw)

    async def live_fields(self, job_ids: list[str], fields: list[str]) -> list[list[str | None]]:
        """These fields of each job's record (None where absent), one round trip for them all."""
        if not job_ids:
            return []
        async with self.redis.pipeline(transaction=False) as pipe:
            for job_id in job_ids:
                pipe.hmget(C.job_key(job_id), fields)
            replies: list[list[Any]] = await pipe.execute()
        return [[as_str(v) if v is not None else None for v in reply] for reply in replies]

    async def archived_events(self, job_id: str, after: str = "0-0") -> list[Event]:
        """Events after `after` that Redis no longer holds (trimmed or pruned) but Postgres kept."""
        if self.store is None:
            return []
        first: Any = await self.redis.xrange(C.job_events_key(job_id), count=1)
        before = as_str(first[0][0]) if first else None
        rows = await self.store.events_between(job_id, after or "0-0", before)
        return [Event(r["event_id"], r["type"], r["data"]) for r in rows]

    async def read_events(
        self, job_id: str, after: str = "0-0", block_ms: int | None = None, count: int = 100
    ) -> list[Event]:
        """Events after id `after` (exclusive); with block_ms, wait that long for the first one."""
        res: Any = await self.redis.xread({C.job_events_key(job_id): after or "0-0"}, count=count, block=block_ms)
        return [decode_event(eid, fields) for _, entries in res or [] for eid, fields in entries]

    async def recent_events(self, job_id: str, count: int = 50) -> list[Event]:
        """The job's last `count` events still in its Redis stream, oldest first ([] once Redis no longer has them:
        Postgres keeps them, Store.events)."""
        entries: Any = await self.redis.xrevrange(C.job_events_key(job_id), count=count)
        return [decode_event(eid, fields) for eid, fields in reversed(entries or [])]

    async def follow(self, job_id: str, after: str = ZERO, *, batch: int = 500,
                     idle_s: float | None = None) -> AsyncGenerator[Event | None, None]:
        """Every event of a job after stream id `after`, in order, once each, ending with the terminal `job` event:
        what Postgres archived, then the stream itself, then live entries from `self.hub`.

        With idle_s (seconds), None is yielded when nothing happened for that long (time for a keep-alive): a quiet
        stream yields None every idle_s, and within 2 x idle_s after an event.
        Redis and Postgres errors as their clients raise them. Close it (`aclose`) when leaving early.
        """
        sub = await self.hub.subscribe(job_id, idle_s)
        last = after
        try:
            for ev in await self.archived_events(job_id, last):  # what Redis trimmed or pruned, from Postgres
                last = ev.id
                yield ev
                if is_terminal(ev):
                    return
            while True:  # catch up from the stream itself
                got = await self.read_events(job_id, last, count=batch)
                for ev in got:
                    last = ev.id
                    yield ev
                    if is_terminal(ev):
                        return
                if len(got) < batch:
                    break
            state = await self.get(job_id)
            if state is None or state.terminal:
                # Ended meanwhile: what it wrote after our catch-up is in the stream now; then nothing more.
                for ev in await self.read_events(job_id, last, count=batch):
                    yield ev
                return
            while True:  # live, from the hub
                got = await sub.take()
                if not got:  # idle_s passed with nothing (one shared timer per idle_s: see hub.KeepAlive)
                    yield None
                    continue
                for ev in got:
                    if parse_id(ev.id) <= parse_id(last):
                        continue
                    last = ev.id
                    yield ev
                    if is_terminal(ev):
                        return
        finally:
            self.hub.unsubscribe(sub)

    async def list_active(self) -> list[str]:
        keys = await self.redis.smembers(C.ACTIVE_JOBS)
        prefix = C.job_key("")
        return sorted(as_str(k)[len(prefix):] for k in keys)

    # -- cancel

    async def cancel(self, job_id: str) -> bool:
        """Ask for a job to stop; True if it was not finished yet. Running nodes stop cooperatively."""
        key = C.job_key(job_id)
        raw = decode_hash(await self.redis.hgetall(key))
        if not raw or raw.get("status") in TERMINAL_JOB:
            return False
        await self.redis.hset(key, "cancel", "1")
        await self.redis.publish(C.CANCEL_CHANNEL, job_id)
        await self._cancel_if_idle(job_id, raw)
        return True

    async def _cancel_if_idle(self, job_id: str, raw: dict[str, str]) -> None:
        """No executor holds the job: cancel it here (an executor holding it does it itself)."""
        entry, stream = raw.get("entry"), raw.get("stream")
        if not entry or not stream:
            return
        fields, event = cancelled_record(raw)
        done = await self.scripts.cancel_idle(
            keys=[stream, C.job_key(job_id), C.job_events_key(job_id), C.ACTIVE_JOBS],
            args=[C.GROUP, entry, C.EVENTS_MAXLEN, len(fields), *flat(fields), dumps(event)],
        )
        if int(done) == 1 and self.store is not None:
            try:  # Redis holds the truth and the answer; the record catches up later if Postgres fails now
                await self.sync_store(job_id)
            except Exception as e:
                log.warning("job=%s cancelled; its Postgres record could not be written now (%s): the "
                            "executors' reconciliation sweep writes it (SPINBOT_RECONCILE_S)", job_id, e)

    def consumer(self, plane: str, name: str, *, claim_idle_ms: int) -> Consumer:
        """The executors' side of `plane`'s stream, as consumer `name`."""
        return Consumer(self, plane, name, claim_idle_ms=claim_idle_ms)

    # -- the durable record

    async def sync_store(self, job_id: str) -> None:
        """Bring Postgres up to the Redis record: the job's state, a snapshot of its version, new events."""
        if self.store is None:
            return
        raw = decode_hash(await self.redis.hgetall(C.job_key(job_id)))
        if not raw:
            return
        st = state_from_hash(job_id, raw)
        await self.store.record_transition(
            job_id, status=st.status, progress=st.progress, plane=st.plane, version=st.version,
            graph=st.graph, error=st.error,
        )
        await self.sync_events(job_id, raw.get("synced") or "0-0")

    async def sync_events(self, job_id: str, after: str, *, batch: int = 500) -> str:
        """Copy the events after `after` to Postgres (idempotent by Redis id); returns the last id copied.

        Stops at the first batch that is not full: a job still running adds events all the time, and
        chasing them one round trip per event or two costs more than the next sync picking them up."""
        assert self.store is not None
        key = C.job_events_key(job_id)
        while True:
            res: Any = await self.redis.xread({key: after or "0-0"}, count=batch)
            rows = [(as_str(eid), f.get("type", ""), f.get("data") or "{}")
                    for _, entries in res or [] for eid, raw in entries for f in (decode_hash(raw),)]
            if not rows:
                return after
            await self.store.add_events(job_id, rows)
            after = rows[-1][0]
            await self.scripts.mark_synced(keys=[C.job_key(job_id)], args=[after])
            if len(rows) < batch:
                return after

    async def synced_after(self, job_id: str) -> str:
        """The last event id of this job already copied to Postgres."""
        return as_str(await self.redis.hget(C.job_key(job_id), "synced") or "0-0")


@dataclass(frozen=True, slots=True)
class Job:
    """A submitted job as its submitter follows it (JobQueue.run): `id`, and the queue calls about that job."""

    queue: JobQueue
    id: str

    def events(self, after: str = ZERO, *, idle_s: float | None = None) -> AsyncGenerator[Event | None, None]:
        """JobQueue.follow: every event after `after`, ending with the terminal `job` event."""
        return self.queue.follow(self.id, after, idle_s=idle_s)

    async def state(self) -> JobState | None:
        """JobQueue.get: the live state; None once Redis no longer holds the job."""
        return await self.queue.get(self.id)

    async def cancel(self) -> bool:
        """JobQueue.cancel: True if it was not finished yet."""
        return await self.queue.cancel(self.id)
