"""The queue's interface as the executors use it: JobQueue/Consumer/Lease over Redis implement it, and
so does the in-memory StubQueue (stub.py) that unit tests run executor logic on.

It also holds what the queue's own modules share, so that none of them imports another in a circle:
`Claim` (consumer.py makes them, the executors and stub.py read them) and `QueueCore`, what a Consumer,
a Lease and the Recovery sweep use of the JobQueue they belong to (tests/test_cycles.py keeps it so).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, NamedTuple, Protocol

import redis.asyncio as aioredis

from spinbot.graph import Graph
from spinbot.queue.scripts import Scripts
from spinbot.store import Store


class Claim(NamedTuple):
    """A stream entry a consumer now holds: its id, fields, and how often it was delivered."""

    entry: str
    fields: dict[str, str]
    deliveries: int


class QueueCore(Protocol):
    """What a Consumer, a Lease and the Recovery sweep use of their JobQueue (client.py implements it)."""

    redis: aioredis.Redis
    store: Store | None
    scripts: Scripts

    async def ensure_groups(self) -> None: ...
    async def list_active(self) -> list[str]: ...
    async def sync_store(self, job_id: str) -> None: ...
    async def enqueue_new(self, job_id: str, graph: Graph, *, owner: str, pipeline: str | None, plane: str,
                          version: int = 0, progress: float | None = None, recovered: bool = False,
                          max_unfinished: int | None = None) -> bool: ...


class LeaseAPI(Protocol):
    """A claim on one entry; `commit` writes only while it holds (LostClaim otherwise)."""

    job_id: str
    stream: str
    entry: str
    consumer: str
    deliveries: int
    released: bool
    releasing: bool
    cancel_requested: bool

    async def commit(
        self, fields: dict[str, Any] | None = None, events: list[tuple[str, dict[str, Any]]] | None = None, *,
        mode: str = "update", target: str | None = None, target_fields: dict[str, Any] | None = None,
        clear_nodes: bool = False,
    ) -> tuple[str, list[str]]: ...


class ConsumerAPI(Protocol):
    """One executor's side of one plane's stream."""

    plane: str
    name: str
    stream: str

    def lease(self, claim: Claim) -> LeaseAPI: ...
    async def claim_new(self, count: int, block_ms: int) -> list[Claim]: ...
    async def claim_own_pending(self, count: int) -> list[Claim]: ...
    async def autoclaim(self, count: int) -> list[Claim]: ...
    async def heartbeat(self, entries: list[str]) -> list[tuple[str, str]]: ...
    async def release(self, entries: list[str]) -> None: ...
    async def drop(self, entry: str) -> None: ...
    async def dead_letter(self, entry: str, fields: dict[str, str], reason: str) -> None: ...
    async def drop_if_stale(self, lease: LeaseAPI) -> bool: ...
    async def read_record(self, job_id: str) -> dict[str, str]: ...
    async def read_since(self, job_id: str, versions: range) -> tuple[dict[str, str], list[str | None]]: ...
    async def cancel_flags(self, job_ids: list[str]) -> list[bool]: ...
    async def sweep_turn(self, ttl_ms: int) -> bool: ...
    async def leave(self) -> bool: ...
    async def sweep_consumers(self, idle_ms: int) -> list[str]: ...
    def cancel_requests(self) -> AsyncIterator[str]: ...


class RecoveryAPI(Protocol):
    async def recover(self) -> list[str]: ...
    async def reconcile(self, *, postgres_grace_s: float | None = 60.0) -> list[str]: ...
    async def reconcile_job(self, job_id: str, *, in_postgres: bool = False) -> bool: ...


class QueueAPI(Protocol):
    """What an executor needs of the queue."""

    store: Store | None

    @property
    def recovery(self) -> RecoveryAPI: ...
    def consumer(self, plane: str, name: str, *, claim_idle_ms: int) -> ConsumerAPI: ...
    async def ensure_groups(self) -> None: ...
    async def sync_store(self, job_id: str) -> None: ...
    async def sync_events(self, job_id: str, after: str) -> str: ...
    async def synced_after(self, job_id: str) -> str: ...
