"""Per-key limits: request body size, open event streams, concurrent jobs (413 and 429 with Retry-After)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from spinbot.settings import Settings
from web.problems import Problem

MB = 1024 * 1024


def too_large(what: str, size: float, limit: float) -> Problem:
    return Problem(413, f"{what} is {size / MB:.1f} MB; the limit is {limit / MB:.1f} MB", code="too_large",
                   hint="send less (smaller or fewer attachments), or raise the server's SPINBOT_MAX_*_MB setting")


class BodyLimit:
    """ASGI middleware: refuse bodies over the limit, by Content-Length up front or while reading."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", ()):
            if name == b"content-length" and value.isdigit() and int(value) > self.max_bytes:
                await _send_413(scope, send, int(value), self.max_bytes)
                return
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise too_large("the request body", seen, self.max_bytes)
            return message

        await self.app(scope, limited, send)


async def _send_413(scope: Scope, send: Send, size: int, limit: int) -> None:
    import json

    from web.problems import PROBLEM_TYPE, problem_body

    p = too_large("the request body", size, limit)
    body = json.dumps(problem_body(413, p.detail, code=p.code, instance=scope.get("path", ""), hint=p.hint)).encode()
    await send({"type": "http.response.start", "status": 413,
                "headers": [(b"content-type", PROBLEM_TYPE.encode()), (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})


class StreamSlots:
    """Open event streams per owner, in this process."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.open: Counter[str] = Counter()

    @contextmanager
    def hold(self, owner: str) -> Iterator[None]:
        self.acquire(owner)
        try:
            yield
        finally:
            self.release(owner)

    def acquire(self, owner: str) -> None:
        if self.open[owner] >= self.limit:
            raise Problem(429, f"this key already has {self.open[owner]} open event streams (limit {self.limit})",
                          code="too_many_streams", headers={"Retry-After": "5"},
                          hint="close a stream you no longer read, then retry")
        self.open[owner] += 1

    def release(self, owner: str) -> None:
        self.open[owner] -= 1
        if self.open[owner] <= 0:
            del self.open[owner]


def check_job_slots(settings: Settings, active: int) -> None:
    if active >= settings.max_jobs_per_key:
        raise Problem(429, f"this key already has {active} unfinished jobs (limit {settings.max_jobs_per_key})",
                      code="too_many_jobs", headers={"Retry-After": "10"},
                      hint="wait for a job to finish or cancel one (POST /api/jobs/{id}/cancel), then retry")


def check_graph_size(settings: Settings, nodes: int) -> None:
    if nodes > settings.max_graph_nodes:
        raise Problem(413, f"the graph has {nodes} nodes; the limit is {settings.max_graph_nodes}",
                      code="graph_too_large", hint="split the work into smaller jobs")
