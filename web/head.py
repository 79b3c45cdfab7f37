"""HEAD wherever GET is served (RFC 9110 9.3.2): uptime monitors and link checkers probe with HEAD."""

from __future__ import annotations

import asyncio
import contextlib

from starlette.types import ASGIApp, Message, Receive, Scope, Send


class HeadAsGet:
    """ASGI middleware: a HEAD request runs as the GET it stands for, and its answer goes out with the
    GET's status and headers (Content-Length included) and no body.

    The app is cancelled once the status line is sent, so a HEAD on a stream (an event stream, a large
    artifact) costs the headers only. Routes need no HEAD of their own.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return
        started = asyncio.Event()

        async def headers_only(message: Message) -> None:
            if message["type"] == "http.response.start" and not started.is_set():
                await send(message)
                await send({"type": "http.response.body", "body": b"", "more_body": False})
                started.set()

        run = asyncio.ensure_future(self.app({**scope, "method": "GET"}, receive, headers_only))
        wait = asyncio.ensure_future(started.wait())
        try:
            await asyncio.wait({run, wait}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            wait.cancel()
            if not run.done():
                run.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await run  # the app's own error, raised before any answer, goes to the server as usual
