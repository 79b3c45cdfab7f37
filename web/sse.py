"""SSE: one message's encoding, and the streaming response that holds one of its owner's stream slots
(conversation/slots.py) while open. The events come from spinbot.queue (JobQueue.follow)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

import orjson
from sse_starlette import EventSourceResponse
from starlette.types import Message, Receive, Scope, Send

from spinbot.metrics import SSE_STREAMS
from spinbot.text import clean, clean_value

log = logging.getLogger(__name__)


def encode(event: str | None, data: Any, event_id: str | None = None) -> bytes:
    """One SSE message; data is JSON (or a given string) on one line.

    Never fails on text: a lone surrogate (model or task output) is sent as U+FFFD, so one odd
    character cannot cut a stream.
    """
    out = b""
    if event_id is not None:
        out += b"id: " + clean(event_id).encode() + b"\n"
    if event is not None:
        out += b"event: " + event.encode() + b"\n"
    if isinstance(data, str):
        payload = clean(data).encode()
    else:
        try:
            payload = orjson.dumps(data)
        except orjson.JSONEncodeError:
            payload = orjson.dumps(clean_value(data), default=str)
    return out + b"data: " + payload + b"\n\n"


PING = b": ping\n\n"


async def _with_pings(items: AsyncIterator[bytes | None]) -> AsyncIterator[bytes]:
    """Our iterators yield None when a keep-alive is due (they know when they were idle): a comment line."""
    async for item in items:
        yield PING if item is None else item


class EventStream(EventSourceResponse):
    """sse-starlette's text/event-stream response over our already-encoded messages (None = keep-alive).

    Its own ping task is off (ping=0): the iterators send keep-alives when idle. On top of it: a
    registry of open streams and close(), with which the server ends every stream cleanly at shutdown
    (the body ends, the client may resume with Last-Event-ID); on_disconnect when the client leaves
    first; on_close always, once. The iterator is closed at the end; a job goes on without watchers.

    The library's own `_stream_response` sends, and its `_listen_for_disconnect` watches the client, but
    not in its task group of three tasks per stream (sender, disconnect and shutdown listeners): the
    messages are sent from the request's own task and one task watches the client, cancelling the
    sender when the client leaves. Shutdown is ours already (close(), called by StreamClosingServer); a
    HEAD comes as the GET it stands for and is cancelled after the headers (web.head.HeadAsGet). Two tasks
    fewer per open stream, with the hub's lighter subscriptions: 37 KB per idle stream, not 56
    (bench/sse.py, 10,000 streams).
    """

    def __init__(self, items: AsyncIterator[bytes | None], *, headers: dict[str, str] | None = None,
                 on_close: Callable[[], None] | None = None, registry: set[EventStream] | None = None,
                 on_disconnect: Callable[[], None] | None = None,
                 on_shutdown: Callable[[], bytes] | None = None) -> None:
        super().__init__(_with_pings(items), headers={"Cache-Control": "no-cache", **(headers or {})}, ping=0,
                         sep="\n", client_close_handler_callable=self._client_left)
        self.items = items
        self.on_close = on_close
        self.on_disconnect = on_disconnect  # the client left before the end (not called when the server stops)
        self.on_shutdown = on_shutdown  # the last messages of a stream the server ends (it stops) before its end
        self._client_gone = False
        self.registry = registry if registry is not None else set()
        self._task: asyncio.Task[Any] | None = None
        self._ending = False  # a cancellation that we asked for: the server stops, or the client left

    async def _client_left(self, _message: Message) -> None:
        self._client_gone = True
        if self.on_disconnect is not None and not self._ending:
            self.on_disconnect()

    def close(self) -> None:
        """End the stream cleanly (server shutdown): the client sees the body end, and may resume."""
        if self._task is not None and not self._ending:
            self._ending = True
            self._task.cancel()

    async def _watch_client(self, receive: Receive) -> None:
        """Until the client leaves (then the sender is cancelled) or the stream ends (this is cancelled)."""
        await self._listen_for_disconnect(receive)
        if self._client_disconnected and self._task is not None and not self._ending:
            self._ending = True
            self._task.cancel()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self._task = asyncio.current_task()
        self.registry.add(self)
        ended = False

        async def tracked(message: Message) -> None:
            nonlocal ended
            ended = ended or (message["type"] == "http.response.body" and not message.get("more_body", False))
            await send(message)

        watcher = asyncio.ensure_future(self._watch_client(receive))
        try:
            await self._stream_response(tracked)
        except asyncio.CancelledError:
            if not self._ending:
                raise
            assert self._task is not None
            self._task.uncancel()
        finally:
            watcher.cancel()
            with contextlib.suppress(BaseException):
                await watcher
            self.registry.discard(self)
            with contextlib.suppress(BaseException):
                await self.items.aclose()  # type: ignore[attr-defined]
            if self.on_close:
                self.on_close()
        if not ended and not self._client_gone:  # stopped by close(): end the body, not the connection
            last = self.on_shutdown() if self.on_shutdown is not None else b""
            with contextlib.suppress(OSError, RuntimeError):
                await send({"type": "http.response.body", "body": last, "more_body": False})


async def open_stream(services: Any, owner: str, items: AsyncIterator[bytes | None],
                      *, headers: dict[str, str] | None = None,
                      on_disconnect: Callable[[], None] | None = None,
                      on_shutdown: Callable[[], bytes] | None = None, lease: str | None = None) -> EventStream:
    """An event stream that holds one of the owner's stream slots (429 when none is free, across every API
    process: conversation/slots.py) while open. `lease`: a slot taken already (services.streams.acquire);
    `on_shutdown()` gives its last messages when the server stops before the stream's end."""
    if lease is None:
        lease = await services.streams.acquire(owner)
    SSE_STREAMS.inc()
    released = False

    def release() -> None:
        nonlocal released
        if not released:
            released = True
            services.streams.release(owner, lease)
            SSE_STREAMS.dec()

    return EventStream(items, headers=headers, on_close=release, registry=services.open_streams,
                       on_disconnect=on_disconnect, on_shutdown=on_shutdown)
