"""Request limits: body size (413, whatever the transfer encoding), text that cannot be stored (422),
graph size (413), unfinished jobs per key (429 with Retry-After; counted in Redis by the submit itself).
Open event streams per key: conversation/slots.py."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from urllib.parse import parse_qsl

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from spinbot.errors import Problem
from spinbot.text import BadText, first_bad
from spinbot.units import MB, size_text
from web.jsondepth import too_deep
from web.problems import PROBLEM_TYPE, problem_body


def too_large(what: str, size: float, limit: float, *, setting: str = "SPINBOT_MAX_ATTACHMENT_MB",
              at_least: bool = False) -> Problem:
    """413 saying how large `what` is (or that it is over, when its size is not known: at_least), the limit
    (in the detail and as `limit_mb`) and what to do. Sizes in bytes."""
    shown = f"over {size_text(limit)}" if at_least else size_text(size)
    return Problem("too_large", f"{what} is {shown}; the limit is {size_text(limit)}",
                   limit_mb=round(limit / MB, 3),
                   hint=f"send less (smaller or fewer attachments), or raise the server's {setting} setting")


class BodyTooLarge(Exception):
    """Raised into the app by BodyLimit when a body without Content-Length passes the limit while read."""


class BodyLimit:
    """ASGI middleware: refuse bodies over the limit with 413 problem+json, by Content-Length up front or,
    for chunked bodies, by counting what arrives.

    A body that passes the limit while read makes the app's receive raise BodyTooLarge; whatever the app
    answers to that (FastAPI's 400 "error parsing the body", a 500) is replaced by the 413. The rest of
    the body is then read and dropped (at most DRAIN_FACTOR times the limit, for DRAIN_S), so a client
    still writing it reads the 413 instead of a connection reset. `larger` gives some paths (exact
    match) a limit of their own, in bytes.
    """

    def __init__(self, app: ASGIApp, max_bytes: int, larger: dict[str, int] | None = None) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.larger = larger or {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.larger.get(scope.get("path", ""), self.max_bytes)
        headers = dict(scope.get("headers", ()))
        length = headers.get(b"content-length", b"")
        if length.isdigit() and int(length) > limit:
            size = int(length)
            # A client waiting for 100-continue sends nothing more: there is nothing to drain.
            drain = size <= DRAIN_FACTOR * limit and headers.get(b"expect", b"").lower() != b"100-continue"
            p = too_large("the request body", size, limit, setting="SPINBOT_MAX_BODY_MB")
            await send_problem(scope, send, p, drain=receive if drain else None, drain_bytes=size)
            return
        seen = 0
        over = more = started = answered = False

        async def limited() -> Message:
            nonlocal seen, over, more
            if over:
                raise BodyTooLarge
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                more = bool(message.get("more_body", False))
                if seen > limit:
                    over = True
                    raise BodyTooLarge
            return message

        async def answer_413() -> None:
            nonlocal answered
            answered = True
            p = too_large("the request body", seen, limit, setting="SPINBOT_MAX_BODY_MB", at_least=True)
            await send_problem(scope, send, p, drain=receive if more else None, drain_bytes=DRAIN_FACTOR * limit)

        async def guarded(message: Message) -> None:
            nonlocal started
            if over and not started:
                if not answered:
                    await answer_413()
                return
            started = True
            await send(message)

        try:
            await self.app(scope, limited, guarded)
        except Exception:
            if not over or started:
                raise
        if over and not started and not answered:
            await answer_413()


DRAIN_FACTOR = 4
DRAIN_S = 30.0


async def send_problem(scope: Scope, send: Send, p: Problem, *, drain: Receive | None = None,
                       drain_bytes: int = 0) -> None:
    """Answer p as problem+json from ASGI middleware (before or instead of a route); the connection closes.

    With drain, the rest of the request body is read from it and dropped before the answer ends, up to
    drain_bytes bytes and DRAIN_S seconds: a client that writes its whole body before reading then
    reads this answer instead of a connection reset.
    """
    body = json.dumps(problem_body(p.status, p.detail, code=p.code, instance=scope.get("path", ""), hint=p.hint,
                                   **p.extra)).encode()
    await send({"type": "http.response.start", "status": p.status,
                "headers": [(b"content-type", PROBLEM_TYPE.encode()), (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body, "more_body": drain is not None})
    if drain is not None:
        await _drain(drain, drain_bytes)
        await send({"type": "http.response.body", "body": b"", "more_body": False})


async def _drain(receive: Receive, max_bytes: int) -> None:
    dropped = 0
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(DRAIN_S):
            while dropped <= max_bytes:
                message = await receive()
                if message["type"] != "http.request":
                    return
                dropped += len(message.get("body", b""))
                if not message.get("more_body", False):
                    return


# JSON escapes that decode to NUL or to a surrogate (paired ones are fine: the parse tells them apart).
_SUSPECT = re.compile(rb"\\u(0000|[dD][89a-fA-F][0-9a-fA-F]{2})")
_BODY_METHODS = ("POST", "PUT", "PATCH", "DELETE")
_TEXT_HINT = ("remove NUL characters and unpaired UTF-16 surrogates (\\u0000, \\ud800-\\udfff escapes) "
              "from the text: they cannot be stored")


def invalid_text(bad: BadText) -> Problem:
    """422 invalid_text naming the field that holds a NUL or a lone surrogate."""
    return Problem("invalid_text", bad.describe(), field=bad.field, hint=_TEXT_HINT)


class TextCheck:
    """ASGI middleware: a request whose path, query or JSON body holds a NUL or a lone surrogate is
    answered 422 invalid_text with `field` (`messages[1].content`, `query.before`, `path`); a JSON body
    nested too deep, 422 json_too_deep (web/jsondepth.py).

    JSON bodies are checked after parsing (json accepts the `\\u0000` and `\\ud800` escapes), and only
    when the raw bytes hold such an escape, so clean bodies cost one regex scan. Multipart fields are
    checked where they are read (web/routes/chat.py).
    """

    def __init__(self, app: ASGIApp, prefixes: tuple[str, ...] = ("/api/", "/v1/")) -> None:
        self.app = app
        self.prefixes = prefixes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if (bad := _bad_in_url(scope)) is not None:
            await send_problem(scope, send, invalid_text(bad))
            return
        path = scope.get("path", "")
        if scope.get("method") not in _BODY_METHODS or not path.startswith(self.prefixes) or not _is_json(scope):
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client left: let the app see it
                await self.app(scope, _replay(b"", receive, first=message), send)
                return
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        del chunks
        if (deep := await too_deep(body)) is not None:
            await send_problem(scope, send, deep)
            return
        if _SUSPECT.search(body) and (bad := _bad_in_json(body)) is not None:
            await send_problem(scope, send, invalid_text(bad))
            return
        await self.app(scope, _replay(body, receive), send)


def _is_json(scope: Scope) -> bool:
    """JSON or no content type at all (FastAPI parses such a body as JSON)."""
    for name, value in scope.get("headers", ()):
        if name == b"content-type":
            return b"json" in value.lower()
    return True


def _bad_in_url(scope: Scope) -> BadText | None:
    # Decoding a path or query never makes a lone surrogate (invalid UTF-8 becomes U+FFFD); %00 stays NUL.
    path = scope.get("path", "")
    if "\x00" in path:
        return BadText("path", path.index("\x00"), "U+0000")
    query = scope.get("query_string", b"").decode("latin-1")
    if "%00" in query or "\x00" in query:
        for name, value in parse_qsl(query, keep_blank_values=True):
            for text, in_key in ((name, True), (value, False)):
                if "\x00" in text:
                    return BadText(f"query.{name.replace(chr(0), chr(0xFFFD))}", text.index("\x00"), "U+0000",
                                   in_key=in_key)
    return None


def _bad_in_json(body: bytes) -> BadText | None:
    try:
        doc = json.loads(body)
    except (ValueError, RecursionError):
        return None  # not JSON: the route answers that
    return first_bad(doc)


def _replay(body: bytes, receive: Receive, first: Message | None = None) -> Receive:
    """A receive that hands over the body read already, then whatever the server sends next (disconnect)."""
    pending: Message | None = first or {"type": "http.request", "body": body, "more_body": False}

    async def replay() -> Message:
        nonlocal pending
        if pending is not None:
            message, pending = pending, None
            return message
        return await receive()

    return replay
