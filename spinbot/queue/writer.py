"""The record writer: job transitions and events to Postgres, batched, in the background.

Postgres keeps every event, the job row's latest status/progress/plane/version, and full graph
snapshots only now and then: at submit, at every `snapshot_interval(nodes, every)`-th version, and at
the terminal state (written by the finishing executor). So the bytes written per job grow with its
events (linear in its nodes), not with nodes x transitions.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from spinbot.backoff import Backoff
from spinbot.loops import forever
from spinbot.queue.record import doc_with_states, dumps

if TYPE_CHECKING:
    from spinbot.queue.interface import QueueAPI

log = logging.getLogger(__name__)


def snapshot_interval(nodes: int, every: int) -> int:
    """Versions between full graph snapshots: at least `every`, and at least the node count (so a
    job writes O(1) snapshots of its O(nodes) graph per O(nodes) transitions)."""
    return max(1, every, nodes)


@dataclass(frozen=True)
class Snapshot:
    """One job transition for Postgres: the job row's new state and, when `doc` is set, the full graph
    (the base document plus node states, serialised when written, so the hand-off does no serialisation)."""

    job_id: str
    version: int
    status: str
    plane: str | None
    progress: float
    doc: dict[str, Any] | None = None
    states: dict[str, dict[str, Any]] | None = None

    def graph_json(self) -> str | None:
        return None if self.doc is None else dumps(doc_with_states(self.doc, self.states or {}))


class RecordWriter:
    """Writes transitions and events to Postgres off the hot path; retries with backoff while it is down."""

    def __init__(self, queue: QueueAPI, *, interval_s: float = 0.2) -> None:
        assert queue.store is not None
        self.interval_s = interval_s  # batches this long of transitions go in one transaction
        self.queue = queue
        self.store = queue.store
        self.pending: list[Snapshot] = []
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()

    def add(self, snap: Snapshot) -> None:
        self.pending.append(snap)
        self._idle.clear()
        self._wake.set()

    async def flushed(self, timeout: float) -> None:  # noqa: ASYNC109
        """Wait up to `timeout` s for everything added so far to be written."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._idle.wait(), timeout)

    async def run(self) -> None:
        """Write batches until cancelled; a failed batch is kept and retried with backoff (spinbot.loops)."""
        await forever(self._write_next, name="Postgres record writer", backoff=Backoff(0.5, 30.0))

    async def _write_next(self) -> None:
        await self._wake.wait()
        self._wake.clear()
        batch, self.pending = self.pending, []
        try:
            await self.flush(batch)
        except BaseException:
            self.pending = batch + self.pending  # kept in order for the next try
            self._wake.set()
            raise
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
            await self.queue.sync_events(job_id, await self.queue.synced_after(job_id))
