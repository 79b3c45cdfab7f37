"""The durable record in Postgres (asyncpg): jobs, graph snapshots, events, artifacts.

Many processes write it at once (APIs, executors of both planes). Two rules keep them out of each other's
way: a transaction that writes several rows locks them in one order (job rows before snapshot rows,
each by job id, then version), and every transaction runs through `in_transaction`, which runs it again
when Postgres aborts it for a deadlock or a serialization failure.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from importlib import resources
from types import TracebackType
from typing import Any, TypeVar

import asyncpg

from spinbot.artifacts import ArtifactInfo
from spinbot.backoff import retry
from spinbot.errors import PoolTimeout

log = logging.getLogger(__name__)
T = TypeVar("T")

#: Aborts that mean "this transaction lost a race, run it again": deadlock_detected (40P01),
#: serialization_failure (40001).
CONFLICTS = (asyncpg.DeadlockDetectedError, asyncpg.SerializationError)
CONFLICT_TRIES = 6  # 50 ms, 100 ms, ... 1 s apart: about 2 s in all before the error is raised


def is_conflict(exc: BaseException) -> bool:
    """Whether Postgres aborted a transaction for a deadlock or a serialization failure (worth running again)."""
    return isinstance(exc, CONFLICTS)


async def in_transaction(pool: asyncpg.Pool, work: Callable[[asyncpg.Connection], Awaitable[T]], *,
                         what: str) -> T:
    """`await work(conn)` in one transaction on a connection of `pool`, run again (at most CONFLICT_TRIES
    times in all) when Postgres aborts it for a deadlock or a serialization failure; returns what work
    returns. Other errors, and a conflict on the last try, are raised. `what` names it in the log."""

    async def once() -> T:
        async with pool.acquire() as conn, conn.transaction():
            return await work(conn)

    return await retry(once, what=what, tries=CONFLICT_TRIES, first_s=0.05, cap_s=1.0, retry_if=is_conflict)

MIGRATION_LOCK = 0x5B1B07  # advisory lock id: one process migrates at a time
MIGRATION_TIMEOUT_S = 3600.0  # a migration may rewrite a large table: the pool's command timeout does not apply


async def _init_connection(conn: asyncpg.Connection) -> None:
    for typ in ("json", "jsonb"):
        await conn.set_type_codec(typ, encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


def _migrations() -> list[tuple[int, str, str]]:
    files = sorted(
        (f for f in resources.files("spinbot.migrations").iterdir() if f.name.endswith(".sql")), key=lambda f: f.name
    )
    return [(int(f.name.split("_", 1)[0]), f.name, f.read_text()) for f in files]


@dataclass(frozen=True)
class PgLimits:
    """How long anything may wait on Postgres, in seconds (settings pg_*): a statement (server-side
    statement_timeout; the client gives up `command_margin_s` later, for a server that no longer answers),
    a lock (lock_timeout), a free connection of the pool (acquire_s). Past them the caller gets an error
    that spinbot.errors.outage() reads as a Postgres outage (the API answers 503 + Retry-After)."""

    statement_s: float = 15.0
    lock_s: float = 3.0
    acquire_s: float = 5.0
    command_margin_s: float = 2.0

    @classmethod
    def from_settings(cls, settings: Any) -> PgLimits:
        return cls(statement_s=settings.pg_statement_timeout_s, lock_s=settings.pg_lock_timeout_s,
                   acquire_s=settings.pg_acquire_timeout_s)

    def server_settings(self) -> dict[str, str]:
        return {"statement_timeout": str(int(self.statement_s * 1000)), "lock_timeout": str(int(self.lock_s * 1000))}


class _Acquire:
    """asyncpg's PoolAcquireContext with the pool's acquire timeout, which raises PoolTimeout when it expires."""

    def __init__(self, pool: BoundedPool, timeout: float | None) -> None:
        self._pool = pool
        self._ctx = asyncpg.Pool.acquire(pool, timeout=timeout)
        self._timeout = timeout

    def _busy(self) -> PoolTimeout:
        return PoolTimeout(f"no Postgres connection came free within {self._timeout:g} s (all "
                           f"{self._pool.get_max_size()} of this process' pool are busy)",
                           hint="retry shortly; if it persists, look for long queries or locks (pg_stat_activity)")

    async def __aenter__(self) -> Any:
        try:
            return await self._ctx.__aenter__()
        except TimeoutError as e:
            raise self._busy() from e

    async def __aexit__(self, et: type[BaseException] | None, e: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self._ctx.__aexit__(et, e, tb)

    def __await__(self) -> Any:
        return self._acquired().__await__()

    async def _acquired(self) -> Any:
        try:
            return await self._ctx
        except TimeoutError as e:
            raise self._busy() from e


class BoundedPool(asyncpg.Pool):  # type: ignore[misc]
    """An asyncpg pool whose acquire() (and so fetch/execute/...) waits at most `acquire_s` for a connection."""

    def __init__(self, *args: Any, acquire_s: float | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.acquire_s = acquire_s

    def acquire(self, *, timeout: float | None = None) -> Any:
        return _Acquire(self, self.acquire_s if timeout is None else timeout)


#: /health's probe waits at most this long for a table's lock (an ALTER, a LOCK TABLE, a VACUUM FULL)
PROBE_LOCK_S = 0.5
PROBE_ACQUIRE_S = 1.0  # ... and for a free connection of the pool


class Store:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    @classmethod
    async def connect(cls, url: str, *, min_size: int = 1, max_size: int = 10, limits: PgLimits | None = None) -> Store:
        """A pool with `limits` (default PgLimits()) on every statement, lock wait and checkout; migrated."""
        limits = limits or PgLimits()
        pool = BoundedPool(url, min_size=min_size, max_size=max_size, init=_init_connection,
                           acquire_s=limits.acquire_s, command_timeout=limits.statement_s + limits.command_margin_s,
                           server_settings=limits.server_settings(), max_queries=50000,
                           max_inactive_connection_lifetime=300.0, loop=None,
                           connection_class=asyncpg.Connection, record_class=asyncpg.Record)
        await pool
        store = cls(pool)
        try:
            await store.migrate()
        except BaseException:
            await pool.close()
            raise
        return store

    async def close(self) -> None:
        await self.pool.close()

    async def check(self) -> dict[str, Any]:
        """A bounded probe for /health: a connection from the pool (PoolTimeout when none comes free), then
        a read of every table of the schema that fails after PROBE_LOCK_S on a locked one (LockNotAvailable
        naming the table). Returns {"pool": {"size", "idle", "max"}}."""
        async with self.pool.acquire(timeout=PROBE_ACQUIRE_S) as conn, conn.transaction(readonly=True):
            await conn.execute(f"SET LOCAL lock_timeout = {int(PROBE_LOCK_S * 1000)}")
            tables = await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")
            for t in tables:
                try:
                    await conn.execute('SELECT 1 FROM "{}" LIMIT 0'.format(t["tablename"].replace('"', '""')))
                except asyncpg.exceptions.LockNotAvailableError as e:
                    raise type(e)(f"table {t['tablename']} is locked (no lock within {PROBE_LOCK_S:g} s): {e}") from e
        return {"pool": {"size": self.pool.get_size(), "idle": self.pool.get_idle_size(),
                         "max": self.pool.get_max_size()}}

    async def migrate(self) -> list[str]:
        """Apply the versioned SQL migrations not yet applied; returns their names."""
        applied: list[str] = []
        async with self.pool.acquire() as conn, conn.transaction():
            # a migration may rewrite a large table, and waits for another process' migration: no limits here
            await conn.execute("SET LOCAL statement_timeout = 0; SET LOCAL lock_timeout = 0")
            await conn.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK, timeout=MIGRATION_TIMEOUT_S)
            await conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"
            )
            done = {r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations")}
            for version, name, sql in _migrations():
                if version in done:
                    continue
                await conn.execute(sql, timeout=MIGRATION_TIMEOUT_S)
                await conn.execute("INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", version, name)
                applied.append(name)
                log.info("applied migration %s", name)
        return applied

    # -- writes

    async def create_job(self, job_id: str, owner: str, graph: dict[str, Any], *, pipeline: str | None = None) -> None:
        async def work(conn: asyncpg.Connection) -> None:
            await conn.execute(
                "INSERT INTO jobs (id, owner, workflow_id, status, goal, pipeline, graph)"
                " VALUES ($1, $2, $3, 'queued', $4, $5, $6)",
                job_id, owner, graph["workflowId"], graph.get("context", {}).get("goal", ""), pipeline, graph,
            )
            await conn.execute(
                "INSERT INTO graph_snapshots (job_id, version, status, graph) VALUES ($1, 0, 'queued', $2)",
                job_id, graph,
            )

        await in_transaction(self.pool, work, what=f"Postgres insert of job={job_id}")

    async def record_transition(
        self,
        job_id: str,
        *,
        status: str,
        progress: float,
        plane: str | None,
        version: int,
        graph: dict[str, Any],
        error: dict[str, Any] | None = None,
    ) -> None:
        """The job's latest state plus a snapshot of this version (idempotent per version)."""
        finished = status in ("completed", "failed", "cancelled")

        async def work(conn: asyncpg.Connection) -> None:  # the job row, then its snapshot: the one lock order
            await conn.execute(
                "UPDATE jobs SET status=$2, progress=$3, plane=$4, version=$5, graph=$6, error=$7,"
                " updated_at=now(), finished_at=CASE WHEN $8 THEN now() ELSE finished_at END"
                " WHERE id=$1 AND version <= $5",
                job_id, status, progress, plane, version, graph, error, finished,
            )
            await conn.execute(
                "INSERT INTO graph_snapshots (job_id, version, status, plane, graph) VALUES ($1, $2, $3, $4, $5)"
                " ON CONFLICT (job_id, version) DO NOTHING",
                job_id, version, status, plane, graph,
            )

        await in_transaction(self.pool, work, what=f"Postgres write of job={job_id} version {version}")

    async def add_events(self, job_id: str, events: list[tuple[str, str, str]]) -> None:
        """(redis event id, type, data as JSON text) rows; replaying the same ids is a no-op.

        The JSON goes over as the text Redis holds (cast to jsonb by Postgres): no decode and re-encode.
        """
        if not events:
            return
        rows = [(job_id, eid, typ, data) for eid, typ, data in events]

        async def work(conn: asyncpg.Connection) -> None:
            await conn.executemany(
                "INSERT INTO job_events (job_id, event_id, type, data) VALUES ($1, $2, $3, $4::text::jsonb)"
                " ON CONFLICT DO NOTHING",
                rows,
            )

        await in_transaction(self.pool, work, what=f"Postgres insert of {len(rows)} event(s) of job={job_id}")

    async def record_snapshots(self, rows: list[tuple[str, int, str, str | None, float, str | None]]) -> None:
        """Transitions of running jobs, (job, version, status, plane, progress, graph JSON text or None):
        a graph snapshot for each row with a graph, and each job's row brought up to its newest version
        (its graph column only when that version has one); idempotent per version.

        Rows are locked in the store's one order (job rows by id, then snapshots by job and version), so
        writers of overlapping batches wait for each other instead of deadlocking."""
        latest: dict[str, tuple[str, int, str, str | None, float, str | None]] = {}
        for r in rows:
            if r[0] not in latest or r[1] > latest[r[0]][1]:
                latest[r[0]] = r
        updates = [(job, status, progress, plane, version, graph)
                   for job, version, status, plane, progress, graph in sorted(latest.values(), key=lambda r: r[0])]
        snapshots = sorted({(job, version): (job, version, status, plane, graph)
                            for job, version, status, plane, _, graph in rows if graph is not None}.values(),
                           key=lambda r: (r[0], r[1]))

        async def work(conn: asyncpg.Connection) -> None:
            await conn.executemany(
                "UPDATE jobs SET status=$2, progress=$3, plane=$4, version=$5,"
                " graph=coalesce($6::text::jsonb, graph), updated_at=now() WHERE id=$1 AND version < $5",
                updates,
            )
            if snapshots:
                await conn.executemany(
                    "INSERT INTO graph_snapshots (job_id, version, status, plane, graph)"
                    " VALUES ($1, $2, $3, $4, $5::text::jsonb) ON CONFLICT (job_id, version) DO NOTHING",
                    snapshots,
                )

        await in_transaction(self.pool, work, what=f"Postgres write of {len(updates)} job transition(s)")

    async def add_artifact(self, job_id: str, node_id: str, name: str, info: ArtifactInfo) -> None:
        await self.pool.execute(
            "INSERT INTO artifacts (key, job_id, node_id, name, content_type, size, sha256)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (key) DO UPDATE SET"
            " content_type=EXCLUDED.content_type, size=EXCLUDED.size, sha256=EXCLUDED.sha256, created_at=now()",
            info.key,
            job_id,
            node_id,
            name,
            info.content_type,
            info.size,
            info.sha256,
        )

    # -- reads

    async def object_owner(self, key: str) -> str | None:
        """The API-key owner of a stored object (a job's artifact or an upload); None if unrecorded."""
        return await self.pool.fetchval(
            "SELECT j.owner FROM artifacts a JOIN jobs j ON j.id=a.job_id WHERE a.key=$1"
            " UNION ALL SELECT owner FROM uploads WHERE key=$1 LIMIT 1",
            key,
        )

    async def get_job(self, job_id: str, owner: str | None = None) -> dict[str, Any] | None:
        row = await self.pool.fetchrow(
            "SELECT * FROM jobs WHERE id=$1 AND ($2::text IS NULL OR owner=$2)", job_id, owner
        )
        return dict(row) if row else None

    async def list_jobs(
        self, owner: str | None, *, limit: int = 20, before: datetime | None = None
    ) -> list[dict[str, Any]]:
        rows = await self.pool.fetch(
            "SELECT id, owner, workflow_id, status, progress, plane, version, goal, pipeline, error,"
            " created_at, updated_at, finished_at,"
            # the weighted share of completed nodes: what a failed or cancelled job shows as its progress
            " (SELECT sum(CASE WHEN n->>'status' = 'completed' THEN coalesce((n->>'progressWeight')::float8, 1)"
            "   ELSE 0 END) / nullif(sum(coalesce((n->>'progressWeight')::float8, 1)), 0)"
            "  FROM jsonb_array_elements(graph->'nodes') AS n) AS completed_share FROM jobs"
            " WHERE ($1::text IS NULL OR owner=$1) AND ($2::timestamptz IS NULL OR created_at < $2)"
            " ORDER BY created_at DESC, id DESC LIMIT $3",
            owner,
            before,
            limit,
        )
        return [dict(r) for r in rows]

    async def unfinished_jobs(self) -> list[dict[str, Any]]:
        rows = await self.pool.fetch(
            "SELECT id, owner, graph, version, plane FROM jobs WHERE status IN ('queued','running')"
        )
        return [dict(r) for r in rows]

    async def events(self, job_id: str, *, limit: int = 100) -> list[dict[str, Any]]:
        rows = await self.pool.fetch(
            "SELECT event_id, type, data, created_at FROM job_events WHERE job_id=$1"
            " ORDER BY created_at DESC, event_id DESC LIMIT $2",
            job_id,
            limit,
        )
        return [dict(r) for r in reversed(rows)]

    async def last_node_events(self, job_id: str) -> dict[str, dict[str, Any]]:
        """node id -> the data of its latest `node` event (status, attempts, output or error), in stream order."""
        rows = await self.pool.fetch(
            "SELECT DISTINCT ON (data->>'node') data FROM job_events WHERE job_id=$1 AND type='node'"
            " ORDER BY data->>'node', split_part(event_id, '-', 1)::bigint DESC,"
            " split_part(event_id, '-', 2)::bigint DESC",
            job_id,
        )  # fmt: skip
        return {r["data"]["node"]: r["data"] for r in rows if isinstance(r["data"], dict) and "node" in r["data"]}

    async def events_between(self, job_id: str, after: str, before: str | None) -> list[dict[str, Any]]:
        """Archived events with stream ids strictly between `after` and `before` (None: no bound), in order."""
        a_ms, _, a_seq = after.partition("-")
        b_ms, _, b_seq = (before or "").partition("-")
        rows = await self.pool.fetch(
            "SELECT event_id, type, data FROM ("
            "  SELECT event_id, type, data, split_part(event_id, '-', 1)::bigint AS ms,"
            "         split_part(event_id, '-', 2)::bigint AS seq FROM job_events WHERE job_id=$1) e"
            " WHERE (ms, seq) > ($2, $3) AND ($4::bigint IS NULL OR (ms, seq) < ($4, $5))"
            " ORDER BY ms, seq",
            job_id, int(a_ms), int(a_seq or 0), int(b_ms) if before else None, int(b_seq or 0),
        )  # fmt: skip
        return [dict(r) for r in rows]

    async def artifacts(self, job_id: str) -> list[dict[str, Any]]:
        rows = await self.pool.fetch(
            "SELECT key, node_id, name, content_type, size, sha256, created_at FROM artifacts"
            " WHERE job_id=$1 ORDER BY created_at",
            job_id,
        )
        return [dict(r) for r in rows]
