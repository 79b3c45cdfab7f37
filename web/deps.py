"""Request dependencies: the services built by the app's lifespan, and who is asking."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Annotated, Any

import redis.asyncio as aioredis
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from spinbot.artifacts import ArtifactStore
from spinbot.errors import Problem
from spinbot.history import EstimatesCache
from spinbot.queue import JobQueue
from spinbot.settings import Settings
from spinbot.store import Store
from web.auth import LinkSigner, match_key
from web.repo import Repo
from web.slots import StreamSlots
from web.sse import EventHub
from web.turns import OpenTurns


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
    turns: OpenTurns  # this process's claims on open chat turns (web/turns.py)
    estimates: EstimatesCache  # durations learned from the jobs that ran (spinbot/estimates.py)
    background: set[asyncio.Task[Any]] = field(default_factory=set)
    open_streams: set[Any] = field(default_factory=set)  # web.sse.EventStream, ended at shutdown

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        """Work that must outlive the request that started it (a chat turn whose client left)."""
        task = asyncio.create_task(coro, name=name)
        self.background.add(task)
        task.add_done_callback(self.background.discard)
        return task


def get_services(request: Request) -> Services:
    return request.app.state.services  # type: ignore[no-any-return]


ServicesDep = Annotated[Services, Depends(get_services)]

bearer = HTTPBearer(auto_error=False, description="an API key from SPINBOT_API_KEYS (none needed when unset)")


def unauthorized() -> Problem:
    return Problem("unauthorized", "a valid API key is required",
                   hint="send `Authorization: Bearer <key>` with a key from the server's SPINBOT_API_KEYS")


def current_owner(
    services: ServicesDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> str:
    owner = match_key(services.settings, credentials.credentials if credentials else None)
    if owner is None:
        raise unauthorized()
    return owner


OwnerDep = Annotated[str, Depends(current_owner)]
