"""Recovery and the live sweep: re-issue unfinished jobs whose stream entry is dead, rebuild jobs Redis lost.

Every re-issue is one Lua script (lua/reissue.lua) that checks again, atomically, that the record still
names the same dead entry at the same version, so any number of executors may sweep at once.
"""

from __future__ import annotations

import logging
from typing import Any

import asyncpg
import redis.asyncio as aioredis

from spinbot import constants as C
from spinbot.graph import Graph
from spinbot.graphstate import GraphState
from spinbot.queue.interface import QueueCore
from spinbot.queue.record import TERMINAL_JOB, as_str, decode_hash, doc_with_states, id_tuple, state_from_hash

log = logging.getLogger(__name__)

POSTGRES_DOWN = (OSError, asyncpg.PostgresError, asyncpg.InterfaceError)
BATCH = 256  # jobs probed per pipelined round trip
ENDED_NODE = ("completed", "failed", "skipped", "cancelled")  # node events replayed onto a rebuilt job


class Recovery:
    """The sweep over one queue's jobs (JobQueue.recovery)."""

    def __init__(self, queue: QueueCore) -> None:
        self.queue = queue
        self.redis = queue.redis
        self.store = queue.store

    async def recover(self) -> list[str]:
        """Re-issue unfinished jobs whose stream entry is gone or can never be delivered; returns their ids.

        Run by every executor at start. Sources: the Redis set of active jobs and, with a store, every
        Postgres job not finished (a job that Redis lost entirely is rebuilt from its last Postgres
        snapshot). Jobs that Redis finished but Postgres still shows unfinished are synced to Postgres.
        """
        return await self.reconcile(postgres_grace_s=0.0)

    async def reconcile(self, *, postgres_grace_s: float | None = 60.0) -> list[str]:
        """One idempotent sweep: re-issue every unfinished job whose stream entry is dead; returns their ids.

        With a store, Postgres jobs not finished and created more than `postgres_grace_s` ago that
        Redis does not know are rebuilt (the grace keeps a submit in progress from being rebuilt);
        None skips Postgres.
        """
        await self.queue.ensure_groups()  # a destroyed group or a deleted stream comes back (from id 0)
        ids = set(await self.queue.list_active())
        pg_ids = await self._postgres_unfinished(postgres_grace_s)
        reissued: list[str] = []
        ordered = sorted(ids | pg_ids)
        for i in range(0, len(ordered), BATCH):
            for job_id in await self._dead_entries(ordered[i:i + BATCH], pg_ids):
                if await self.reconcile_job(job_id, in_postgres=job_id in pg_ids):
                    reissued.append(job_id)
        return reissued

    async def _postgres_unfinished(self, grace_s: float | None) -> set[str]:
        if self.store is None or grace_s is None:
            return set()
        try:
            rows = await self.store.pool.fetch(
                "SELECT id FROM jobs WHERE status IN ('queued','running')"
                " AND created_at <= now() - make_interval(secs => $1)",
                float(grace_s),
            )
        except POSTGRES_DOWN as e:
            log.warning("reconciliation without Postgres this time (%s): Redis' jobs only", e)
            return set()
        return {r["id"] for r in rows}

    async def _dead_entries(self, job_ids: list[str], pg_ids: set[str]) -> list[str]:
        """The jobs among these that may need repair: missing, finished but still indexed, or whose entry
        looks dead. Cheap pipelined reads; reconcile_job decides (and its script re-checks atomically)."""
        pipe = self.redis.pipeline(transaction=False)
        for job_id in job_ids:
            pipe.hmget(C.job_key(job_id), ["status", "entry", "stream"])
        heads: list[Any] = await pipe.execute()
        out: list[str] = []
        probe: list[tuple[str, str, str]] = []
        for job_id, (status, entry, stream) in zip(job_ids, heads, strict=True):
            if status is None or as_str(status) in TERMINAL_JOB or not entry or not stream:
                if status is not None or job_id in pg_ids:
                    out.append(job_id)
                else:
                    await self.redis.srem(C.ACTIVE_JOBS, C.job_key(job_id))  # an index entry for nothing
                continue
            probe.append((job_id, as_str(entry), as_str(stream)))
        if probe:
            out += await self._undeliverable(probe)
        return out

    async def _undeliverable(self, probe: list[tuple[str, str, str]]) -> list[str]:
        """Jobs whose entry is gone from its stream, or delivered yet pending for nobody."""
        last_delivered = await self._last_delivered()
        pipe = self.redis.pipeline(transaction=False)
        for _, entry, stream in probe:
            pipe.xrange(stream, entry, entry, count=1)
            pipe.xpending_range(stream, C.GROUP, min=entry, max=entry, count=1)
        replies: list[Any] = await pipe.execute(raise_on_error=False)
        out: list[str] = []
        for n, (job_id, entry, stream) in enumerate(probe):
            found, pending = replies[2 * n], replies[2 * n + 1]
            if isinstance(found, Exception):
                continue  # not a stream (or Redis trouble): nothing safe to decide now
            if not found:
                out.append(job_id)
            elif isinstance(pending, Exception) or pending:
                continue  # pending: its executor (or the one that reclaims it) has it
            elif id_tuple(entry) <= id_tuple(last_delivered.get(stream, "0-0")):
                out.append(job_id)  # in the stream, delivered, yet nobody's: its group lost it
        return out

    async def reconcile_job(self, job_id: str, *, in_postgres: bool = False) -> bool:
        """Repair one job: re-issue it if unfinished with a dead entry (True), rebuild it from Postgres if
        Redis lost it and `in_postgres`, drop it from the active index if finished."""
        raw = decode_hash(await self.redis.hgetall(C.job_key(job_id)))
        if not raw:
            if in_postgres and self.store is not None:
                try:
                    row = await self.store.get_job(job_id)
                except POSTGRES_DOWN as e:
                    log.warning("job=%s: Redis lost it and Postgres is unreachable (%s); next round", job_id, e)
                    return False
                if row and row.get("status") in ("queued", "running") and await self._rebuild(job_id, row):
                    return True
            await self.redis.srem(C.ACTIVE_JOBS, C.job_key(job_id))
            return False
        if raw.get("status") in TERMINAL_JOB:
            await self.redis.srem(C.ACTIVE_JOBS, C.job_key(job_id))
            if in_postgres:
                try:
                    await self.queue.sync_store(job_id)
                except POSTGRES_DOWN as e:
                    log.warning("job=%s finished; its Postgres sync failed (%s); next round", job_id, e)
            return False
        return await self.reissue(job_id, raw)

    async def _last_delivered(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for plane in C.PLANES:
            stream = C.plane_stream(plane)
            try:
                groups = await self.redis.xinfo_groups(stream)
            except aioredis.ResponseError:
                continue
            for g in groups:
                if as_str(g.get("name")) == C.GROUP:
                    out[stream] = as_str(g.get("last-delivered-id"))
        return out

    async def reissue(self, job_id: str, raw: dict[str, str]) -> bool:
        """Re-issue the job of this (decoded) record if the entry it names is dead; the script checks
        atomically, so a live entry or a record that moved on meanwhile is left alone (False)."""
        plane = raw.get("plane")
        if not plane:
            plane = GraphState(Graph.model_validate(state_from_hash(job_id, raw).graph)).first_plane()
        target = C.plane_stream(plane)
        old = raw.get("entry") or ""
        old_stream = raw.get("stream") or target
        new = await self.queue.scripts.reissue(
            keys=[target, C.job_key(job_id), old_stream, C.ACTIVE_JOBS],
            args=[old, job_id, raw.get("version") or "0", C.GROUP,
                  f"entry {old or '(none)'} of {old_stream} vanished"],
        )
        return bool(as_str(new))

    async def _rebuild(self, job_id: str, row: dict[str, Any]) -> bool:
        """Recreate a job Redis lost from Postgres' last snapshot with the node events recorded after it
        replayed (snapshots are periodic; every node event is kept), and enqueue it: a node that ended
        after the snapshot is not run again."""
        doc = row["graph"]
        if self.store is not None:
            ended = {nid: ev for nid, ev in (await self.store.last_node_events(job_id)).items()
                     if ev.get("status") in ENDED_NODE}
            doc = doc_with_states(doc, {nid: {k: ev.get(k) for k in ("status", "attempts", "output", "error")}
                                        for nid, ev in ended.items()})
        graph = Graph.model_validate(doc)
        state = GraphState(graph)
        plane = row.get("plane") or state.first_plane()
        progress = max(state.progress(), float(row.get("progress") or 0.0))
        return await self.queue.enqueue_new(job_id, graph, owner=row.get("owner", ""), pipeline=row.get("pipeline"),
                                            plane=plane, version=int(row.get("version") or 0), progress=progress,
                                            recovered=True)
