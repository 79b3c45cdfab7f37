"""What the executor core's modules know of one another, so that none imports another in a circle.

The Executor (core.py) owns its JobRuns (jobrun.py); a JobRun runs nodes through the node-step middleware
(middleware.py, checking.py, nodecache.py) and hands off (handoff.py); the upkeep loops (upkeep.py) watch the
Executor. Each of those modules names the others' objects only through the Protocols here (as
spinbot/queue/interface.py does for the queue), and the middleware protocol's own types (`NodeStep`,
`Handler`, `Middleware`: see middleware.py) live here too. tests/test_cycles.py fails when a circle comes back.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import redis.asyncio as aioredis
from pydantic import BaseModel

from executors.admission import Admission
from executors.graphcache import GraphCache, Parsed
from executors.workdirs import Workdirs
from spinbot.artifacts import ArtifactStore
from spinbot.graph import Graph, Node
from spinbot.graphstate import GraphState
from spinbot.queue import RecordWriter
from spinbot.queue.interface import ConsumerAPI, LeaseAPI, QueueAPI
from spinbot.registry import Registry, Service
from spinbot.settings import Settings
from spinbot.store import Store
from spinbot.task import TaskContext


class ExecutorAPI(Protocol):
    """What a JobRun, its middlewares and its hand-off use of the Executor that claimed it (core.Executor)."""

    settings: Settings
    plane: str
    id: str
    registry: Registry
    redis: aioredis.Redis
    store: Store | None
    artifacts: ArtifactStore
    queue: QueueAPI
    consumer: ConsumerAPI
    device: dict[str, Any] | None
    node_slots: asyncio.Semaphore
    gpu: Admission
    node_step: Handler
    workdirs: Workdirs
    graphs: GraphCache
    writer: RecordWriter | None
    stopping: asyncio.Event

    @property
    def runs(self) -> Mapping[str, RunAPI]: ...  # the runs now served, by stream entry id

    def background(self, coro: Coroutine[Any, Any, Any], what: str) -> None: ...


class RunAPI(Protocol):
    """What the node-step middlewares, the hand-off and the upkeep loops use of a JobRun (jobrun.JobRun)."""

    ex: ExecutorAPI
    job_id: str
    entry: str
    deliveries: int
    version: int
    lease: LeaseAPI
    cancel: asyncio.Event
    task: asyncio.Task[None] | None
    lost: str | None  # why the claim heartbeat found the entry no longer ours
    parsed: Parsed | None
    changed: dict[str, dict[str, Any]]  # node states this run wrote: the hand-off's delta
    unrecorded: list[Node]  # nodes ended, not yet written

    @property
    def plane(self) -> str: ...
    @property
    def graph(self) -> Graph: ...
    @property
    def state(self) -> GraphState: ...

    def request_cancel(self) -> None: ...
    def job_progress(self) -> float: ...
    def take_unrecorded(self) -> list[Node]: ...
    def node_writes(self, nodes: list[Node]) -> tuple[dict[str, Any], list[tuple[str, dict[str, Any]]]]: ...
    def resolve_inputs(self, node: Node) -> dict[str, Any]: ...
    def task_context(self, node: Node, workdir: Path) -> TaskContext: ...
    async def begin_attempt(self, node: Node) -> None: ...
    async def emit(self, kind: str, data: dict[str, Any]) -> None: ...


@dataclass
class NodeStep:
    """One node being run: what every middleware sees. `params` and `ctx` are set by `attempt`."""

    run: RunAPI
    node: Node
    service: Service
    params: BaseModel | None = None
    resolved: dict[str, Any] | None = None  # the params with references resolved, before validation (`attempt`)
    ctx: TaskContext | None = None
    reused: dict[str, str] | None = None  # {"job", "node"} whose outputs the node cache answered with


Handler = Callable[[NodeStep], Awaitable[dict[str, Any]]]


class Middleware(Protocol):
    def __call__(self, step: NodeStep, call_next: Handler) -> Awaitable[dict[str, Any]]: ...
