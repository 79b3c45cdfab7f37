"""Jobs on Redis: the job record, its event stream, the plane streams, and fenced writes by executors.

Layout (names in spinbot.constants):
- job_key(id): a hash. `graph` is the graph as of the last transition; `n:<node>` fields hold node
  states written since (each node completion is one small write, not a rewrite of the graph);
  `entry`/`stream` name the plane-stream entry that currently carries the job.
- job_events_key(id): the job's event stream (type, data JSON); its ids are what clients resume from.
- plane_stream(plane): entries {job, version}; a consumer group per stream (constants.GROUP).

Every executor write goes through one Lua script that first checks that the writer still owns the
job's stream entry (XPENDING names its consumer), so an executor whose job was taken over cannot
clobber it; hand-off (XADD to the next plane) and ack (XACK+XDEL) are in that same script.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from dataclasses import dataclass
from typing import Any, NamedTuple

import asyncpg
import orjson
import redis.asyncio as aioredis

from spinbot import constants as C
from spinbot.errors import InvalidGraph, LostClaim
from spinbot.graph import TERMINAL_NODE, Graph, Node, NodeRef, iter_refs
from spinbot.store import Store

log = logging.getLogger(__name__)

TERMINAL_JOB = frozenset({"completed", "failed", "cancelled"})
POSTGRES_DOWN = (OSError, asyncpg.PostgresError, asyncpg.InterfaceError)
NODE_FIELD = "n:"


class Event(NamedTuple):
    id: str
    type: str
    data: dict[str, Any]


@dataclass(frozen=True)
class JobState:
    id: str
    status: str
    progress: float
    plane: str | None
    version: int
    owner: str
    graph: dict[str, Any]
    error: dict[str, Any] | None
    created: float
    updated: float
    pipeline: str | None = None
    cancel_requested: bool = False
    entry: str | None = None
    stream: str | None = None

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL_JOB


def dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


def as_str(value: Any) -> str:
    """A Redis reply value (bytes or str) as str."""
    return value.decode() if isinstance(value, bytes) else str(value)


def _decode_hash(raw: dict[Any, Any]) -> dict[str, str]:
    return {as_str(k): as_str(v) for k, v in raw.items()}


def decode_event(eid: Any, fields: dict[Any, Any]) -> Event:
    """An entry of a job's event stream as an Event."""
    f = _decode_hash(fields)
    return Event(as_str(eid), f.get("type", ""), orjson.loads(f.get("data") or "{}"))


def overlay_nodes(graph: dict[str, Any], fields: dict[str, str]) -> dict[str, Any]:
    """The graph with the node states written since its last transition applied."""
    updates = {k[len(NODE_FIELD):]: orjson.loads(v) for k, v in fields.items() if k.startswith(NODE_FIELD)}
    if updates:
        for node in graph.get("nodes", []):
            upd = updates.get(node.get("id"))
            if upd:
                for key in ("output", "error"):
                    node.pop(key, None)
                node.update({k: v for k, v in upd.items() if v is not None})
    return graph


def node_state(node: Node) -> dict[str, Any]:
    """What a node-state field holds: the parts of a node an executor changes."""
    return {
        "status": node.status,
        "attempts": node.attempts,
        "output": node.output,
        "error": node.error.model_dump(mode="json", exclude_none=True) if node.error else None,
    }


def state_from_hash(job_id: str, fields: dict[str, str]) -> JobState:
    graph = overlay_nodes(orjson.loads(fields["graph"]), fields)
    error = fields.get("error")
    return JobState(
        id=job_id,
        status=fields.get("status", "queued"),
        progress=float(fields.get("progress") or 0.0),
        plane=fields.get("plane") or None,
        version=int(fields.get("version") or 0),
        owner=fields.get("owner", ""),
        graph=graph,
        error=orjson.loads(error) if error else None,
        created=float(fields.get("created") or 0.0),
        updated=float(fields.get("updated") or 0.0),
        pipeline=fields.get("pipeline") or None,
        cancel_requested=fields.get("cancel") == "1",
        entry=fields.get("entry") or None,
        stream=fields.get("stream") or None,
    )


# ---- graph checks --------------------------------------------------------------------------------


def validate_structure(graph: Graph) -> None:
    """Unique ids, edges and references to existing nodes, no cycles; InvalidGraph otherwise."""
    ids = [n.id for n in graph.nodes]
    dupes = sorted({i for i in ids if ids.count(i) > 1})
    if dupes:
        raise InvalidGraph(f"duplicate node ids: {', '.join(dupes)}", hint="give every node a unique id")
    known = set(ids)
    for e in graph.edges:
        for end in (e.source, e.target):
            if end not in known:
                raise InvalidGraph(f"edge {e.source} -> {e.target} names unknown node {end!r}")
    attachments = {a.id for a in graph.context.attachments}
    for n in graph.nodes:
        for param, ref in iter_refs(n.params):
            if isinstance(ref, NodeRef):
                if ref.node not in known:
                    raise InvalidGraph(f"node {n.id} param {param!r} references unknown node {ref.node!r}")
                if ref.node == n.id:
                    raise InvalidGraph(f"node {n.id} param {param!r} references its own output")
            elif ref.attachment not in attachments:
                raise InvalidGraph(
                    f"node {n.id} param {param!r} references unknown attachment {ref.attachment!r}",
                    hint=f"attachments in context: {', '.join(sorted(attachments)) or 'none'}",
                )
    _check_acyclic(graph)


def _check_acyclic(graph: Graph) -> None:
    preds = graph.predecessors()
    done: set[str] = set()
    while len(done) < len(preds):
        step = {n for n, ps in preds.items() if n not in done and ps <= done}
        if not step:
            cycle = sorted(set(preds) - done)
            raise InvalidGraph(f"the graph has a cycle among nodes: {', '.join(cycle)}")
        done |= step


def ready_nodes(graph: Graph, preds: dict[str, set[str]] | None = None) -> list[Node]:
    """Nodes not yet finished whose predecessors all completed (a 'running' node from a crash reruns)."""
    preds = preds if preds is not None else graph.predecessors()
    done = {n.id for n in graph.nodes if n.status == "completed"}
    return [n for n in graph.nodes if n.status in ("pending", "running") and preds[n.id] <= done]


# ---- Lua -----------------------------------------------------------------------------------------

# KEYS: source stream, job, events, target stream (or ""-ish placeholder), active set
# ARGV: group, consumer, entry, mode, maxlen, nfields, fields..., ndel_prefix("1"/"0"),
#       nevents, (type, data)..., ntarget, target fields...
# mode: update | handoff | finish | dead
_COMMIT = """
local group, consumer, entry, mode, maxlen = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
if redis.call('HGET', KEYS[2], 'entry') ~= entry or redis.call('HGET', KEYS[2], 'stream') ~= KEYS[1] then
  return {0}
end
local ok, p = pcall(redis.call, 'XPENDING', KEYS[1], group, entry, entry, 1)
if not ok or #p == 0 or p[1][2] ~= consumer then return {0} end  -- not ok: the stream or group is gone
local i = 6
local nf = tonumber(ARGV[i]); i = i + 1
if ARGV[i] == '1' then
  local keys = redis.call('HKEYS', KEYS[2])
  for _, k in ipairs(keys) do
    if string.sub(k, 1, 2) == 'n:' then redis.call('HDEL', KEYS[2], k) end
  end
end
i = i + 1
if nf > 0 then
  local f = {}
  for j = 1, nf * 2 do f[j] = ARGV[i + j - 1] end
  redis.call('HSET', KEYS[2], unpack(f))
  i = i + nf * 2
end
local out = {1, '', redis.call('HGET', KEYS[2], 'cancel') or '0'}
local ne = tonumber(ARGV[i]); i = i + 1
for j = 1, ne do
  out[#out + 1] = redis.call('XADD', KEYS[3], 'MAXLEN', '~', maxlen, '*', 'type', ARGV[i], 'data', ARGV[i + 1])
  i = i + 2
end
local nt = tonumber(ARGV[i]); i = i + 1
if mode == 'handoff' or mode == 'dead' then
  local t = {}
  for j = 1, nt * 2 do t[j] = ARGV[i + j - 1] end
  out[2] = redis.call('XADD', KEYS[4], '*', unpack(t))
end
if mode == 'handoff' then
  redis.call('HSET', KEYS[2], 'entry', out[2], 'stream', KEYS[4])
end
if mode ~= 'update' then
  redis.call('XACK', KEYS[1], group, entry)
  redis.call('XDEL', KEYS[1], entry)
end
if mode == 'finish' or mode == 'dead' then
  redis.call('HSET', KEYS[2], 'entry', '', 'stream', '')
  redis.call('SREM', KEYS[5], KEYS[2])
end
return out
"""

# KEYS: plane stream, job, events, index, active. ARGV: job id, created, maxlen, nfields, fields..., event data
_SUBMIT = """
if redis.call('EXISTS', KEYS[2]) == 1 then return {0} end
local entry = redis.call('XADD', KEYS[1], '*', 'job', ARGV[1], 'version', '0')
local nf = tonumber(ARGV[4])
local f = {}
for j = 1, nf * 2 do f[j] = ARGV[4 + j] end
redis.call('HSET', KEYS[2], 'entry', entry, 'stream', KEYS[1], unpack(f))
local ev = redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[3], '*', 'type', 'job', 'data', ARGV[5 + nf * 2])
redis.call('ZADD', KEYS[4], ARGV[2], ARGV[1])
redis.call('SADD', KEYS[5], KEYS[2])
return {1, entry, ev}
"""

# Cancel a job whose entry nobody holds: remove the undelivered entry and finish the job, atomically.
# KEYS: stream, job, events, active. ARGV: group, entry, maxlen, nfields, fields..., event data
_CANCEL_IDLE = """
if redis.call('HGET', KEYS[2], 'entry') ~= ARGV[2] or redis.call('HGET', KEYS[2], 'stream') ~= KEYS[1] then
  return 0
end
local ok, p = pcall(redis.call, 'XPENDING', KEYS[1], ARGV[1], ARGV[2], ARGV[2], 1)
if ok and #p > 0 then return 0 end
redis.call('XDEL', KEYS[1], ARGV[2])
local keys = redis.call('HKEYS', KEYS[2])
for _, k in ipairs(keys) do
  if string.sub(k, 1, 2) == 'n:' then redis.call('HDEL', KEYS[2], k) end
end
local nf = tonumber(ARGV[4])
local f = {}
for j = 1, nf * 2 do f[j] = ARGV[4 + j] end
redis.call('HSET', KEYS[2], 'entry', '', 'stream', '', unpack(f))
redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[3], '*', 'type', 'job', 'data', ARGV[5 + nf * 2])
redis.call('SREM', KEYS[4], KEYS[2])
return 1
"""

# Re-issue a job whose stream entry is dead, atomically re-checking that it is: the record still
# names that entry at that version (so two sweepers, or a sweeper and the job's executor, cannot both
# re-issue it), the job is unfinished, and the entry is gone from its stream, or is in it but neither
# pending nor still to be delivered (its group lost it). A stream without the group is left alone:
# the executors recreate the group from id 0, and the entry is then delivered as usual.
# KEYS: target stream, job, old stream (or target), active. ARGV: expected entry, job id, version, group, reason
_REISSUE = """
local old, group = ARGV[1], ARGV[4]
if (redis.call('HGET', KEYS[2], 'entry') or '') ~= old then return '' end
if (redis.call('HGET', KEYS[2], 'version') or '0') ~= ARGV[3] then return '' end
local status = redis.call('HGET', KEYS[2], 'status')
if status == false or status == 'completed' or status == 'failed' or status == 'cancelled' then return '' end
if old ~= '' and #redis.call('XRANGE', KEYS[3], old, old) > 0 then
  local ok, p = pcall(redis.call, 'XPENDING', KEYS[3], group, old, old, 1)
  if not ok or #p > 0 then return '' end
  local last = nil
  for _, g in ipairs(redis.call('XINFO', 'GROUPS', KEYS[3])) do
    local name, id = nil, nil
    for j = 1, #g, 2 do
      if g[j] == 'name' then name = g[j + 1] elseif g[j] == 'last-delivered-id' then id = g[j + 1] end
    end
    if name == group then last = id end
  end
  if last == nil then return '' end
  local oms, oseq = string.match(old, '(%d+)-(%d+)')
  local lms, lseq = string.match(last, '(%d+)-(%d+)')
  oms, oseq, lms, lseq = tonumber(oms), tonumber(oseq), tonumber(lms), tonumber(lseq)
  if oms > lms or (oms == lms and oseq > lseq) then return '' end  -- still to be delivered
end
if old ~= '' then
  redis.call('XDEL', KEYS[3], old)
  pcall(redis.call, 'XACK', KEYS[3], group, old)
end
local entry = redis.call('XADD', KEYS[1], '*', 'job', ARGV[2], 'version', ARGV[3], 'reissued', ARGV[5])
redis.call('HSET', KEYS[2], 'entry', entry, 'stream', KEYS[1])
redis.call('SADD', KEYS[4], KEYS[2])
return entry
"""

# Keep own claims alive: XCLAIM JUSTID resets the idle time without counting a delivery. An entry
# that is no longer in its stream is not XCLAIMed (Redis 7 would drop it from the pending list).
# KEYS: stream. ARGV: group, consumer, ids... Returns (id, reason) pairs for the ids no longer ours:
# gone (not in the stream), nogroup (the stream's group is gone), unclaimed (nobody's), stolen.
_HEARTBEAT = """
local lost = {}
for i = 3, #ARGV do
  local id, reason = ARGV[i], nil
  if #redis.call('XRANGE', KEYS[1], id, id) == 0 then
    reason = 'gone'
  else
    local ok, p = pcall(redis.call, 'XPENDING', KEYS[1], ARGV[1], id, id, 1)
    if not ok then reason = 'nogroup'
    elseif #p == 0 then reason = 'unclaimed'
    elseif p[1][2] ~= ARGV[2] then reason = 'stolen'
    end
  end
  if reason then
    lost[#lost + 1] = id
    lost[#lost + 1] = reason
  else
    redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, id, 'JUSTID')
  end
end
return lost
"""


# The last event copied to Postgres; never recreates a record that was pruned meanwhile.
_MARK_SYNCED = """
if redis.call('EXISTS', KEYS[1]) == 1 then redis.call('HSET', KEYS[1], 'synced', ARGV[1]) end
return 1
"""


def _flat(pairs: dict[str, Any]) -> list[Any]:
    out: list[Any] = []
    for k, v in pairs.items():
        out += [k, v]
    return out


@dataclass
class Lease:
    """An executor's hold on one job through the stream entry it claimed; every write is fenced by it."""

    queue: JobQueue
    job_id: str
    stream: str
    entry: str
    consumer: str
    deliveries: int = 1
    released: bool = False  # handed off, finished or dead-lettered: the entry is acked and gone
    releasing: bool = False  # a hand-off/finish commit is in flight: the entry may vanish by our own hand
    cancel_requested: bool = False  # the record's cancel flag as of the last commit

    async def commit(
        self,
        fields: dict[str, Any] | None = None,
        events: list[tuple[str, dict[str, Any]]] | None = None,
        *,
        mode: str = "update",
        target: str | None = None,
        target_fields: dict[str, Any] | None = None,
        clear_nodes: bool = False,
    ) -> tuple[str, list[str]]:
        """Apply fields + events (+ hand-off/ack) if this lease still owns the job; LostClaim otherwise."""
        fields = dict(fields or {})
        fields.setdefault("updated", repr(time.time()))
        events = events or []
        args: list[Any] = [C.GROUP, self.consumer, self.entry, mode, C.EVENTS_MAXLEN, len(fields)]
        args.append("1" if clear_nodes else "0")
        args += _flat(fields)
        args.append(len(events))
        now = round(time.time(), 6)
        for typ, data in events:
            args += [typ, dumps({**data, "ts": now})]
        tf = target_fields or {}
        args.append(len(tf))
        args += _flat(tf)
        keys = [self.stream, C.job_key(self.job_id), C.job_events_key(self.job_id), target or self.stream,
                C.ACTIVE_JOBS]
        if mode != "update":
            self.releasing = True
        try:
            out = await self.queue._commit(keys=keys, args=args)
        finally:
            self.releasing = False
        if not out or int(out[0]) != 1:
            raise LostClaim(f"job {self.job_id}: entry {self.entry} on {self.stream} is no longer ours")
        if mode != "update":
            self.released = True
        self.cancel_requested = as_str(out[2]) == "1"
        return as_str(out[1]), [as_str(x) for x in out[3:]]


class JobQueue:
    """Submit, inspect, cancel and follow jobs; the executors' side of the protocol is in Lease."""

    def __init__(self, redis: aioredis.Redis, store: Store | None = None) -> None:
        self.redis = redis
        self.store = store
        self._commit = redis.register_script(_COMMIT)
        self._submit = redis.register_script(_SUBMIT)
        self._cancel_idle = redis.register_script(_CANCEL_IDLE)
        self._reissue = redis.register_script(_REISSUE)
        self._heartbeat = redis.register_script(_HEARTBEAT)
        self._mark_synced = redis.register_script(_MARK_SYNCED)

    # -- submit

    async def submit(self, graph: Graph, *, owner: str, pipeline: str | None = None) -> str:
        """Validate, record in Postgres, enqueue on the plane of the first ready node; returns the job id."""
        validate_structure(graph)
        job_id = uuid.uuid4().hex
        ready = ready_nodes(graph)
        plane = ready[0].plane if ready else graph.nodes[0].plane
        doc = graph.to_json()
        if self.store is not None:
            await self.store.create_job(job_id, owner, doc, pipeline=pipeline)
        now = time.time()
        fields = {
            "id": job_id, "status": "queued", "progress": repr(graph.progress()), "plane": plane,
            "version": 0, "owner": owner, "pipeline": pipeline or "", "graph": dumps(doc), "error": "",
            "created": repr(now), "updated": repr(now), "cancel": "0",
        }
        event = {"status": "queued", "progress": graph.progress(), "plane": plane}
        try:
            await self._submit(
                keys=[C.plane_stream(plane), C.job_key(job_id), C.job_events_key(job_id), C.JOBS_INDEX,
                      C.ACTIVE_JOBS],
                args=[job_id, repr(now), C.EVENTS_MAXLEN, len(fields), *_flat(fields), dumps(event)],
            )
        except BaseException:
            # Not accepted: the Postgres row must not be re-issued later by an executor's recovery.
            if self.store is not None:
                with contextlib.suppress(Exception):
                    await self.store.pool.execute("DELETE FROM jobs WHERE id=$1 AND status='queued'", job_id)
            raise
        return job_id

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
        raw = _decode_hash(await self.redis.hgetall(C.job_key(job_id)))
        if "graph" not in raw:
            return None
        return state_from_hash(job_id, raw)

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

    async def list_active(self) -> list[str]:
        keys = await self.redis.smembers(C.ACTIVE_JOBS)
        prefix = C.job_key("")
        return sorted(as_str(k)[len(prefix):] for k in keys)

    # -- cancel

    async def cancel(self, job_id: str) -> bool:
        """Ask for a job to stop; True if it was not finished yet. Running nodes stop cooperatively."""
        key = C.job_key(job_id)
        raw = _decode_hash(await self.redis.hgetall(key))
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
        graph = Graph.model_validate(overlay_nodes(orjson.loads(raw["graph"]), raw))
        for n in graph.nodes:
            if n.status not in TERMINAL_NODE:
                n.status = "cancelled"
        version = int(raw.get("version") or 0) + 1
        doc = graph.to_json()
        fields = {"status": "cancelled", "progress": repr(graph.progress()), "version": version,
                  "graph": dumps(doc), "updated": repr(time.time()), "plane": raw.get("plane", "")}
        event = {"status": "cancelled", "progress": graph.progress()}
        done = await self._cancel_idle(
            keys=[stream, C.job_key(job_id), C.job_events_key(job_id), C.ACTIVE_JOBS],
            args=[C.GROUP, entry, C.EVENTS_MAXLEN, len(fields), *_flat(fields), dumps(event)],
        )
        if int(done) == 1 and self.store is not None:
            await self.sync_store(job_id)

    # -- the durable record

    async def sync_store(self, job_id: str) -> None:
        """Bring Postgres up to the Redis record: the job's state, a snapshot of its version, new events."""
        if self.store is None:
            return
        key = C.job_key(job_id)
        raw = _decode_hash(await self.redis.hgetall(key))
        if not raw:
            return
        st = state_from_hash(job_id, raw)
        await self.store.record_transition(
            job_id, status=st.status, progress=st.progress, plane=st.plane, version=st.version,
            graph=st.graph, error=st.error,
        )
        await self.sync_events(job_id, raw.get("synced") or "0-0")

    async def sync_events(self, job_id: str, after: str) -> str:
        """Copy events after `after` to Postgres (idempotent by Redis id); returns the last id copied."""
        assert self.store is not None
        key = C.job_events_key(job_id)
        while True:
            res: Any = await self.redis.xread({key: after or "0-0"}, count=200)
            rows = [(as_str(eid), f.get("type", ""), f.get("data") or "{}")
                    for _, entries in res or [] for eid, raw in entries for f in (_decode_hash(raw),)]
            if not rows:
                return after
            await self.store.add_events(job_id, rows)
            after = rows[-1][0]
            await self._mark_synced(keys=[C.job_key(job_id)], args=[after])

    # -- recovery and reconciliation

    async def recover(self) -> list[str]:
        """Re-issue unfinished jobs whose stream entry is gone or can never be delivered; returns their ids.

        Run by every executor at start. Sources: the Redis set of active jobs and, with a store, every
        Postgres job not finished (a job that Redis lost entirely is rebuilt from its last Postgres
        snapshot). Jobs that Redis finished but Postgres still shows unfinished are synced to Postgres.
        """
        return await self.reconcile(postgres_grace_s=0.0)

    async def reconcile(self, *, postgres_grace_s: float | None = 60.0) -> list[str]:
        """One idempotent sweep: re-issue every unfinished job whose stream entry is dead; returns their ids.

        Safe to run from any number of executors at once: each re-issue is one Lua script that checks
        again, atomically, that the record still names the same dead entry at the same version.
        With a store, Postgres jobs not finished and created more than `postgres_grace_s` ago that
        Redis does not know are rebuilt (the grace keeps a submit in progress from being rebuilt);
        None skips Postgres.
        """
        await self.ensure_groups()  # a destroyed group or a deleted stream comes back (from id 0)
        ids = set(await self.list_active())
        pg_ids: set[str] = set()
        if self.store is not None and postgres_grace_s is not None:
            try:
                rows = await self.store.pool.fetch(
                    "SELECT id FROM jobs WHERE status IN ('queued','running')"
                    " AND created_at <= now() - make_interval(secs => $1)",
                    float(postgres_grace_s),
                )
                pg_ids = {r["id"] for r in rows}
            except POSTGRES_DOWN as e:
                log.warning("reconciliation without Postgres this time (%s): Redis' jobs only", e)
        reissued: list[str] = []
        ordered = sorted(ids | pg_ids)
        for i in range(0, len(ordered), 256):
            for job_id in await self._dead_entries(ordered[i:i + 256], pg_ids):
                if await self.reconcile_job(job_id, in_postgres=job_id in pg_ids):
                    reissued.append(job_id)
        return reissued

    async def _dead_entries(self, job_ids: list[str], pg_ids: set[str]) -> list[str]:
        """The jobs among these that may need repair: missing, finished but still indexed, or whose entry
        looks dead. Cheap pipelined reads; reconcile_job decides (and its script re-checks atomically)."""
        pipe = self.redis.pipeline(transaction=False)
        for job_id in job_ids:
            pipe.hmget(C.job_key(job_id), ["status", "entry", "stream"])
        heads: list[Any] = await pipe.execute()
        last_delivered = await self._last_delivered()
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
        if not probe:
            return out
        pipe = self.redis.pipeline(transaction=False)
        for _, entry, stream in probe:
            pipe.xrange(stream, entry, entry, count=1)
            pipe.xpending_range(stream, C.GROUP, min=entry, max=entry, count=1)
        replies: list[Any] = await pipe.execute(raise_on_error=False)
        for n, (job_id, entry, stream) in enumerate(probe):
            found, pending = replies[2 * n], replies[2 * n + 1]
            if isinstance(found, Exception):
                continue  # not a stream (or Redis trouble): nothing safe to decide now
            if not found:
                out.append(job_id)
            elif isinstance(pending, Exception) or pending:
                continue  # pending: its executor (or the one that reclaims it) has it
            elif _id_tuple(entry) <= _id_tuple(last_delivered.get(stream, "0-0")):
                out.append(job_id)  # in the stream, delivered, yet nobody's: its group lost it
        return out

    async def reconcile_job(self, job_id: str, *, in_postgres: bool = False) -> bool:
        """Repair one job: re-issue it if unfinished with a dead entry (True), rebuild it from Postgres if
        Redis lost it and `in_postgres`, drop it from the active index if finished."""
        raw = _decode_hash(await self.redis.hgetall(C.job_key(job_id)))
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
                    await self.sync_store(job_id)
                except POSTGRES_DOWN as e:
                    log.warning("job=%s finished; its Postgres sync failed (%s); next round", job_id, e)
            return False
        return await self._reissue_one(job_id, raw)

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

    async def _reissue_one(self, job_id: str, raw: dict[str, str]) -> bool:
        """Re-issue if the entry the record names is dead (the script checks, atomically)."""
        st = state_from_hash(job_id, raw)
        plane = st.plane
        if not plane:
            graph = Graph.model_validate(st.graph)
            ready = ready_nodes(graph)
            plane = ready[0].plane if ready else graph.nodes[0].plane
        target = C.plane_stream(plane)
        old = raw.get("entry") or ""
        old_stream = raw.get("stream") or target
        reason = f"entry {old or '(none)'} of {old_stream} vanished"
        new = await self._reissue(
            keys=[target, C.job_key(job_id), old_stream, C.ACTIVE_JOBS],
            args=[old, job_id, raw.get("version") or "0", C.GROUP, reason],
        )
        return bool(as_str(new))

    async def _rebuild(self, job_id: str, row: dict[str, Any]) -> bool:
        """Recreate a job Redis lost from Postgres' last snapshot and enqueue it."""
        graph = Graph.model_validate(row["graph"])
        ready = ready_nodes(graph)
        plane = row.get("plane") or (ready[0].plane if ready else graph.nodes[0].plane)
        now = time.time()
        progress = max(graph.progress(), float(row.get("progress") or 0.0))
        fields = {
            "id": job_id, "status": "queued", "progress": repr(progress), "plane": plane,
            "version": int(row.get("version") or 0), "owner": row.get("owner", ""),
            "pipeline": row.get("pipeline") or "",
            "graph": dumps(graph.to_json()), "error": "", "created": repr(now), "updated": repr(now),
            "cancel": "0",
        }
        event = {"status": "queued", "progress": progress, "plane": plane, "recovered": True}
        out = await self._submit(
            keys=[C.plane_stream(plane), C.job_key(job_id), C.job_events_key(job_id), C.JOBS_INDEX, C.ACTIVE_JOBS],
            args=[job_id, repr(now), C.EVENTS_MAXLEN, len(fields), *_flat(fields), dumps(event)],
        )
        return bool(out and int(out[0]) == 1)


def _id_tuple(entry: str) -> tuple[int, int]:
    ms, _, seq = entry.partition("-")
    return int(ms or 0), int(seq or 0)


def doc_with_states(doc: dict[str, Any], states: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """A graph document with the given node states applied (a new dict; `doc` is not changed)."""
    nodes = []
    for node in doc["nodes"]:
        st = states.get(node["id"])
        if st is None:
            nodes.append(node)
            continue
        new = {k: v for k, v in node.items() if k not in ("output", "error")}
        new.update({k: v for k, v in st.items() if v is not None})
        nodes.append(new)
    return {**doc, "nodes": nodes}


@dataclass(frozen=True)
class Snapshot:
    """One job transition for Postgres: the job row's new state and the graph at that version.

    The graph is kept as the base document plus node states and serialised when written, so the
    hand-off itself does no serialisation.
    """

    job_id: str
    version: int
    status: str
    plane: str | None
    progress: float
    doc: dict[str, Any]
    states: dict[str, dict[str, Any]]

    def graph_json(self) -> str:
        return dumps(doc_with_states(self.doc, self.states))


class RecordWriter:
    """Writes hand-off snapshots and events to Postgres in the background, batched, off the hot path."""

    def __init__(self, queue: JobQueue, *, interval_s: float = 0.2) -> None:
        assert queue.store is not None
        self.interval_s = interval_s  # batches this long of transitions go in one transaction
        self.queue = queue
        self.store = queue.store
        self.pending: list[Snapshot] = []
        self.synced: dict[str, str] = {}
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()

    def add(self, snap: Snapshot) -> None:
        self.pending.append(snap)
        self._idle.clear()
        self._wake.set()

    async def flushed(self, timeout: float) -> None:  # noqa: ASYNC109
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._idle.wait(), timeout)

    async def run(self) -> None:
        delay = 0.5
        while True:
            await self._wake.wait()
            self._wake.clear()
            batch, self.pending = self.pending, []
            try:
                await self.flush(batch)
                delay = 0.5
            except Exception as e:
                log.error("Postgres write of %d job transition(s) failed (%s): check that Postgres runs "
                          "(SPINBOT_DATABASE_URL); retrying in %.1f s", len(batch), e, delay)
                self.pending = batch + self.pending
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)
                self._wake.set()
                continue
            if not self.pending:
                self._idle.set()
            await asyncio.sleep(self.interval_s)

    async def flush(self, batch: list[Snapshot]) -> None:
        if not batch:
            return
        rows = []
        for s in batch:
            rows.append((s.job_id, s.version, s.status, s.plane, s.progress, s.graph_json()))
            await asyncio.sleep(0)  # one graph at a time: hand-offs in this process are not held up
        await self.store.record_snapshots(rows)
        for job_id in dict.fromkeys(s.job_id for s in batch):
            after = self.synced.get(job_id)
            if after is None:
                after = as_str(await self.queue.redis.hget(C.job_key(job_id), "synced") or "0-0")
            self.synced[job_id] = await self.queue.sync_events(job_id, after)
