"""What the chat use case works with: the parts built once per API process (its lifespan), passed down."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any

import redis.asyncio as aioredis

from conversation.auth import LinkSigner
from conversation.events import EventHub
from conversation.repo import Repo
from conversation.slots import StreamSlots
from conversation.turns import OpenTurns
from spinbot.artifacts import ArtifactStore
from spinbot.history import EstimatesCache
from spinbot.queue import JobQueue
from spinbot.settings import Settings
from spinbot.store import Store


@dataclass
class Services:
    """Everything a request may need; built once per app in its lifespan."""

    settings: Settings
    redis: aioredis.Redis
    store: Store
    artifacts: ArtifactStore
    queue: JobQueue
    hub: EventHub
    repo: Repo
    links: LinkSigner
    streams: StreamSlots
    turns: OpenTurns  # this process's claims on open chat turns (conversation/turns.py)
    estimates: EstimatesCache  # durations learned from the jobs that ran (spinbot/estimates.py)
    background: set[asyncio.Task[Any]] = field(default_factory=set)
    open_streams: set[Any] = field(default_factory=set)  # the open event stream responses, ended at shutdown

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        """Work that must outlive the request that started it (a chat turn whose client left)."""
        task = asyncio.create_task(coro, name=name)
        self.background.add(task)
        task.add_done_callback(self.background.discard)
        return task
