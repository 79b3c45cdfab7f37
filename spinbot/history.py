"""Finished nodes from Postgres as spinbot.estimates runs, and a table refreshed off the request path.

A node's duration is the time between its last `running` event and its `completed` event (the Redis
stream ids are millisecond timestamps); its feature is read from the job's graph (params with
references resolved to the upstream outputs, and its own outputs). `device` and `peak_mb` are read from
the completed event when the executor puts them there (absent: unnamed device, no memory figure).
A node the node cache answered (`reused` on its completed event) ran nothing and is not a run.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import asyncpg

from spinbot.errors import outage
from spinbot.estimates import EMPTY, EstimateTable, Run, features_of
from spinbot.manifest import ServiceSpec

log = logging.getLogger(__name__)

#: Completed node events, newest first, with the start of their last attempt and the node's final state.
RUNS_SQL = """
WITH done AS (
  SELECT e.job_id, e.data->>'node' AS node, e.data->>'service' AS service, e.data->>'plane' AS plane,
         coalesce(e.data->>'device', '') AS device, (e.data->>'peak_mb')::float8 AS peak_mb,
         split_part(e.event_id, '-', 1)::bigint AS end_ms
  FROM job_events e
  WHERE e.type = 'node' AND e.data->>'status' = 'completed' AND NOT e.data ? 'reused'
  ORDER BY e.created_at DESC LIMIT $1)
SELECT d.job_id, d.node, d.service, d.plane, d.device, d.peak_mb, d.end_ms,
  (SELECT max(split_part(s.event_id, '-', 1)::bigint) FROM job_events s
    WHERE s.job_id = d.job_id AND s.type = 'node' AND s.data->>'node' = d.node
      AND s.data->>'status' = 'running' AND split_part(s.event_id, '-', 1)::bigint <= d.end_ms) AS start_ms
FROM done d
"""
GRAPHS_SQL = "SELECT id, graph FROM jobs WHERE id = ANY($1::text[])"


def _resolved(params: dict[str, Any], nodes: Mapping[str, dict[str, Any]]) -> dict[str, Any]:
    """Params with `$node` references replaced by the upstream node's output (None when missing)."""

    def one(v: Any) -> Any:
        if isinstance(v, dict) and "$node" in v:
            up = nodes.get(str(v["$node"])) or {}
            return (up.get("output") or {}).get(str(v.get("output")))
        return v

    return {k: [one(x) for x in v] if isinstance(v, list) else one(v) for k, v in params.items()}


def runs_from_rows(
    rows: Sequence[Mapping[str, Any]], graphs: Mapping[str, dict[str, Any]], specs: Mapping[str, ServiceSpec]
) -> list[Run]:
    """Rows of RUNS_SQL plus the jobs' graphs -> runs, oldest first; rows without a start are dropped."""
    out: list[Run] = []
    by_job: dict[str, dict[str, dict[str, Any]]] = {}
    for r in sorted(rows, key=lambda r: r["end_ms"]):
        spec = specs.get(r["service"])
        if spec is None or r["start_ms"] is None:
            continue
        nodes = by_job.get(r["job_id"])
        if nodes is None:
            graph = graphs.get(r["job_id"]) or {}
            nodes = by_job[r["job_id"]] = {str(n.get("id")): n for n in graph.get("nodes", []) if isinstance(n, dict)}
        node = nodes.get(r["node"]) or {}
        x = features_of(spec, _resolved(node.get("params") or {}, nodes), node.get("output"))
        seconds = (r["end_ms"] - r["start_ms"]) / 1000
        out.append(Run(r["service"], r["plane"] or "", r["device"], seconds, x, r["peak_mb"]))
    return out


async def load_runs(pool: asyncpg.Pool, specs: Mapping[str, ServiceSpec], *, limit: int = 5000) -> list[Run]:
    """The newest `limit` finished nodes as runs (two queries; off the request path)."""
    rows = [dict(r) for r in await pool.fetch(RUNS_SQL, limit)]
    jobs = sorted({r["job_id"] for r in rows})
    graphs = {r["id"]: r["graph"] for r in await pool.fetch(GRAPHS_SQL, jobs)} if jobs else {}
    return runs_from_rows(rows, graphs, specs)


class EstimatesCache:
    """The current EstimateTable; `table()` returns it at once and, when older than `every_s`, starts one
    background refresh from Postgres (`spawn` runs it: the app's task set). Failures keep the old table."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        specs: Callable[[], Mapping[str, ServiceSpec]],
        *,
        every_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.pool, self.specs, self.every_s, self.clock = pool, specs, every_s, clock
        self.current: EstimateTable = EMPTY
        self.loaded_at: float | None = None
        self._refreshing: asyncio.Future[EstimateTable] | None = None

    def table(self, spawn: Callable[[Any, str], Any] | None = None) -> EstimateTable:
        stale = self.loaded_at is None or self.clock() - self.loaded_at >= self.every_s
        if stale and (self._refreshing is None or self._refreshing.done()):
            coro = self.refresh()
            self._refreshing = spawn(coro, "estimates refresh") if spawn else asyncio.ensure_future(coro)
        return self.current

    async def refresh(self) -> EstimateTable:
        """Load the history and fit it now; the table stays as it was when Postgres fails."""
        self.loaded_at = self.clock()  # a failure waits a whole period before the next try
        specs = self.specs()
        try:
            runs = await load_runs(self.pool, specs)
        except Exception as e:  # whatever failed, the old table stays and the next period tries again
            if outage(e) is None:
                log.exception("estimates not refreshed")
            else:
                log.warning("estimates not refreshed (Postgres unavailable: %s: %s)", type(e).__name__, e)
            return self.current
        self.current = EstimateTable.fit(specs, runs)
        return self.current
