"""StubQueue: the queue's interface (interface.QueueAPI) in memory, as dramatiq's StubBroker.

For unit tests of executor logic without Redis: an Executor built with `queue=StubQueue()` claims,
runs, hands off and finishes jobs exactly as on Redis, with the same fencing rules (a lease writes only
while its entry is pending for its consumer). Not thread-safe; one event loop. Integration tests keep
real Redis.

    q = StubQueue()
    job = await q.submit(graph, owner="t")
    ex = Executor(settings, "control", registry, None, None, artifacts, queue=q)  # no Redis, no Postgres
    await ex.claim_once(8, block_ms=0)       # claim what the control stream holds and serve it
    await ex.settle()                        # until those runs handed off or finished
    (await q.get(job)).status
"""

from __future__ import annotations

import asyncio
import itertools
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from spinbot import constants as C
from spinbot.errors import LostClaim
from spinbot.graph import Graph
from spinbot.graphstate import GraphState, validate_structure
from spinbot.queue.client import cancelled_record, new_record
from spinbot.queue.consumer import HEAD_FIELDS
from spinbot.queue.interface import Claim, LeaseAPI
from spinbot.queue.record import DELTA_FIELD, NODE_FIELD, TERMINAL_JOB, Event, JobState, state_from_hash
from spinbot.store import Store


@dataclass
class _Pending:
    consumer: str
    deliveries: int
    since: float  # time.monotonic() of the last delivery or heartbeat


@dataclass
class _Stream:
    entries: dict[str, dict[str, str]] = field(default_factory=dict)  # id -> fields, in order
    delivered: set[str] = field(default_factory=set)
    pending: dict[str, _Pending] = field(default_factory=dict)


class StubQueue:
    """Jobs, their records, events and plane streams in dicts."""

    def __init__(self) -> None:
        self.store: Store | None = None
        self.records: dict[str, dict[str, str]] = {}
        self.events: dict[str, list[Event]] = {}
        self.streams: dict[str, _Stream] = {}
        self.dead_letters: list[dict[str, str]] = []
        self.cancels: asyncio.Queue[str] = asyncio.Queue()
        self._ids = itertools.count(1)

    # -- ids and writes, as the Lua scripts do them

    def new_id(self) -> str:
        return f"{int(time.time() * 1000)}-{next(self._ids)}"

    def stream(self, name: str) -> _Stream:
        return self.streams.setdefault(name, _Stream())

    def add_entry(self, stream: str, fields: dict[str, Any]) -> str:
        eid = self.new_id()
        self.stream(stream).entries[eid] = {k: str(v) for k, v in fields.items()}
        return eid

    def add_event(self, job_id: str, typ: str, data: dict[str, Any]) -> str:
        eid = self.new_id()
        self.events.setdefault(job_id, []).append(Event(eid, typ, {**data, "ts": round(time.time(), 6)}))
        return eid

    def ack(self, stream: str, entry: str) -> None:
        s = self.stream(stream)
        s.entries.pop(entry, None)
        s.pending.pop(entry, None)

    # -- the producer's side

    async def submit(self, graph: Graph, *, owner: str, pipeline: str | None = None) -> str:
        validate_structure(graph)
        job_id = uuid.uuid4().hex
        plane = GraphState(graph).first_plane()
        fields = new_record(job_id, graph, owner=owner, pipeline=pipeline, plane=plane)
        entry = self.add_entry(C.plane_stream(plane), {"job": job_id, "version": 0})
        self.records[job_id] = {k: str(v) for k, v in fields.items()} | {"entry": entry,
                                                                         "stream": C.plane_stream(plane)}
        self.add_event(job_id, "job", {"status": "queued", "progress": float(fields["progress"]), "plane": plane})
        return job_id

    async def get(self, job_id: str) -> JobState | None:
        raw = self.records.get(job_id)
        return state_from_hash(job_id, raw) if raw else None

    async def read_events(self, job_id: str, after: str = "0-0", block_ms: int | None = None,
                          count: int = 100) -> list[Event]:
        evs = self.events.get(job_id, [])
        start = next((i + 1 for i, e in enumerate(evs) if e.id == after), 0)
        return evs[start:start + count]

    async def cancel(self, job_id: str) -> bool:
        raw = self.records.get(job_id)
        if not raw or raw.get("status") in TERMINAL_JOB:
            return False
        raw["cancel"] = "1"
        self.cancels.put_nowait(job_id)
        entry, stream = raw.get("entry"), raw.get("stream")
        if entry and stream and entry not in self.stream(stream).pending:  # nobody holds it: cancel here
            fields, event = cancelled_record(raw)
            self.ack(stream, entry)
            _clear_nodes(raw)
            raw.update({k: str(v) for k, v in fields.items()} | {"entry": "", "stream": ""})
            self.add_event(job_id, "job", event)
        return True

    # -- what an executor needs (interface.QueueAPI)

    @property
    def recovery(self) -> StubRecovery:
        return StubRecovery()

    def consumer(self, plane: str, name: str, *, claim_idle_ms: int) -> StubConsumer:
        return StubConsumer(self, plane, name, claim_idle_ms)

    async def ensure_groups(self) -> None:
        return None

    async def sync_store(self, job_id: str) -> None:
        return None

    async def sync_events(self, job_id: str, after: str) -> str:
        return after

    async def synced_after(self, job_id: str) -> str:
        return "0-0"


class StubRecovery:
    """Nothing is ever lost in memory: every sweep finds nothing."""

    async def recover(self) -> list[str]:
        return []

    async def reconcile(self, *, postgres_grace_s: float | None = 60.0) -> list[str]:
        return []

    async def reconcile_job(self, job_id: str, *, in_postgres: bool = False) -> bool:
        return False


def _clear_nodes(raw: dict[str, str]) -> None:
    for k in [k for k in raw if k.startswith((NODE_FIELD, DELTA_FIELD))]:
        del raw[k]


@dataclass
class StubLease:
    """interface.LeaseAPI over a StubQueue: the commit script's rules in Python."""

    queue: StubQueue
    job_id: str
    stream: str
    entry: str
    consumer: str
    deliveries: int = 1
    released: bool = False
    releasing: bool = False
    cancel_requested: bool = False

    async def commit(
        self, fields: dict[str, Any] | None = None, events: list[tuple[str, dict[str, Any]]] | None = None, *,
        mode: str = "update", target: str | None = None, target_fields: dict[str, Any] | None = None,
        clear_nodes: bool = False,
    ) -> tuple[str, list[str]]:
        q, raw = self.queue, self.queue.records.get(self.job_id, {})
        held = q.stream(self.stream).pending.get(self.entry)
        if raw.get("entry") != self.entry or raw.get("stream") != self.stream or not held \
                or held.consumer != self.consumer:
            raise LostClaim(f"job {self.job_id}: entry {self.entry} on {self.stream} is no longer ours")
        if clear_nodes:
            _clear_nodes(raw)
        raw.update({k: str(v) for k, v in (fields or {}).items()})
        self.cancel_requested = raw.get("cancel") == "1"
        ids = [q.add_event(self.job_id, typ, data) for typ, data in events or []]
        new = ""
        if mode in ("handoff", "dead"):
            new = q.add_entry(target or self.stream, target_fields or {})
        if mode == "handoff":
            raw.update({"entry": new, "stream": target or self.stream})
        if mode != "update":
            q.ack(self.stream, self.entry)
            self.released = True
        if mode in ("finish", "dead"):
            raw.update({"entry": "", "stream": ""})
            if mode == "dead":
                q.dead_letters.append(q.stream(target or "").entries.pop(new))
        return new, ids


class StubConsumer:
    """interface.ConsumerAPI over a StubQueue."""

    def __init__(self, queue: StubQueue, plane: str, name: str, claim_idle_ms: int) -> None:
        self.queue = queue
        self.plane = plane
        self.name = name
        self.stream = C.plane_stream(plane)
        self.claim_idle_ms = claim_idle_ms

    def lease(self, claim: Claim) -> LeaseAPI:
        return StubLease(self.queue, claim.fields.get("job", ""), self.stream, claim.entry, self.name,
                         claim.deliveries)

    def _take(self, entry: str, deliveries: int) -> Claim:
        s = self.queue.stream(self.stream)
        s.delivered.add(entry)
        s.pending[entry] = _Pending(self.name, deliveries, time.monotonic())
        return Claim(entry, dict(s.entries[entry]), deliveries)

    async def claim_new(self, count: int, block_ms: int) -> list[Claim]:
        s = self.queue.stream(self.stream)
        fresh = [e for e in s.entries if e not in s.delivered][:count]
        if not fresh:
            await asyncio.sleep(min(block_ms, 10) / 1000)
        return [self._take(e, 1) for e in fresh]

    async def claim_own_pending(self, count: int) -> list[Claim]:
        s = self.queue.stream(self.stream)
        mine = [(e, p) for e, p in s.pending.items() if p.consumer == self.name and e in s.entries][:count]
        return [self._take(e, p.deliveries) for e, p in mine]

    async def autoclaim(self, count: int) -> list[Claim]:
        s, now = self.queue.stream(self.stream), time.monotonic()
        idle = [(e, p) for e, p in s.pending.items() if (now - p.since) * 1000 >= self.claim_idle_ms][:count]
        return [self._take(e, p.deliveries + 1) for e, p in idle]

    async def heartbeat(self, entries: list[str]) -> list[tuple[str, str]]:
        s, lost = self.queue.stream(self.stream), []
        for e in entries:
            p = s.pending.get(e)
            reason = "gone" if e not in s.entries else "unclaimed" if p is None else \
                "stolen" if p.consumer != self.name else None
            if reason:
                lost.append((e, reason))
            elif p is not None:
                p.since = time.monotonic()
        return lost

    async def release(self, entries: list[str]) -> None:
        for e in entries:
            if p := self.queue.stream(self.stream).pending.get(e):
                p.since = float("-inf")

    async def drop(self, entry: str) -> None:
        self.queue.ack(self.stream, entry)

    async def dead_letter(self, entry: str, fields: dict[str, str], reason: str) -> None:
        self.queue.dead_letters.append({"stream": self.stream, "entry": entry, "reason": reason})
        self.queue.ack(self.stream, entry)

    async def drop_if_stale(self, lease: LeaseAPI) -> bool:
        raw = self.queue.records.get(lease.job_id, {})
        if raw.get("entry") == lease.entry and raw.get("stream") == self.stream \
                and raw.get("status") not in TERMINAL_JOB:
            return False
        p = self.queue.stream(self.stream).pending.get(lease.entry)
        if p is not None and p.consumer == self.name:
            await self.drop(lease.entry)
            return True
        return False

    async def read_record(self, job_id: str) -> dict[str, str]:
        return dict(self.queue.records.get(job_id, {}))

    async def read_since(self, job_id: str, versions: range) -> tuple[dict[str, str], list[str | None]]:
        raw = self.queue.records.get(job_id, {})
        return ({k: raw[k] for k in HEAD_FIELDS if k in raw}, [raw.get(f"{DELTA_FIELD}{v}") for v in versions])

    async def cancel_flags(self, job_ids: list[str]) -> list[bool]:
        return [self.queue.records.get(j, {}).get("cancel") == "1" for j in job_ids]

    async def sweep_turn(self, ttl_ms: int) -> bool:
        return True

    async def leave(self) -> bool:
        return not any(p.consumer == self.name for p in self.queue.stream(self.stream).pending.values())

    async def sweep_consumers(self, idle_ms: int) -> list[str]:
        return []  # the stub keeps no consumer list: pending entries name their consumer

    async def cancel_requests(self) -> AsyncIterator[str]:
        while True:
            yield await self.queue.cancels.get()
