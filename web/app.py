"""The FastAPI app: create_app(settings) builds it, serve(settings) runs it under uvicorn."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, Response
from fastapi.routing import APIRoute
from starlette.middleware.cors import CORSMiddleware
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from conversation import turns
from conversation.services import Services, build_services, close_services
from planner.agent import state_graph
from spinbot import collector
from spinbot import metrics as M
from spinbot.capabilities import declared_manifest
from spinbot.errors import Problem
from spinbot.metrics import HTTP_REQUESTS
from spinbot.settings import Settings
from web import problems
from web.head import HeadAsGet
from web.limits import MB, BodyLimit, TextCheck
from web.problems import SafeJSONResponse
from web.routes import routers
from web.v1_request import V1_BODY_FACTOR

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).parent / "static"
UI_PAGES = ("", "jobs", "capabilities", "profiles")  # the web UI's own paths (plus jobs/{id}) all load index.html
LOOPBACK = ("127.0.0.1", "::1", "localhost")
CORS_METHODS = ["GET", "HEAD", "POST", "PATCH", "DELETE"]
#: what browser code may read of an answer besides the CORS-safelisted headers (seeking, retrying, links)
CORS_EXPOSE = ["Content-Range", "Accept-Ranges", "Content-Length", "Content-Disposition", "ETag", "Retry-After",
               "Location"]


class RequestMetrics:
    """ASGI middleware: count requests by method, route template and status."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500

        async def record(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, record)
        finally:
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            HTTP_REQUESTS.labels(scope["method"], route, str(status)).inc()


def warm_up() -> None:
    """At start-up, what the first chat would otherwise pay inside its request: the planner's compiled
    agent graph and the committed manifest (the planner's modules are imported with conversation.chat)."""
    state_graph()
    declared_manifest()


def create_app(settings: Settings) -> FastAPI:
    """The API and web UI; Redis, Postgres and the artifact store connect in the lifespan."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await asyncio.to_thread(warm_up)
        app.state.services = services = await build_services(settings)
        services.spawn(services.streams.renew_loop(), name="stream-slot-renewal")
        services.spawn(turns.upkeep(services), name="chat-turn-upkeep")
        try:
            yield
        finally:
            await close_services(app.state.services)

    app = FastAPI(
        title="Spinbot",
        version="0.1.0",
        summary="Goal -> evaluated task graph -> dual-plane execution, as a chat.",
        lifespan=lifespan,
        default_response_class=SafeJSONResponse,
        responses={
            401: {"description": "no or an unknown API key (problem+json)"},
            422: {"description": "invalid request (problem+json)"},
        },
    )
    app.state.settings = settings
    problems.install(app)
    # Each added one wraps the ones before: metrics see every answer, the size limit counts what TextCheck reads.
    app.add_middleware(TextCheck)
    app.add_middleware(BodyLimit, max_bytes=int(settings.max_body_mb * MB), larger=_larger_bodies(settings))
    app.add_middleware(RequestMetrics)
    app.add_middleware(HeadAsGet)
    if settings.cors_origins:  # outermost: error answers (413, 422 from the middlewares above) carry it too
        app.add_middleware(CORSMiddleware, allow_origins=settings.cors_origins, allow_methods=CORS_METHODS,
                           allow_headers=["*"], expose_headers=CORS_EXPOSE, max_age=600)
    for router in routers():
        app.include_router(router)
    _mount_ui(app)
    return app


def _larger_bodies(settings: Settings) -> dict[str, int]:
    """/v1/chat/completions: OpenAI clients resend every earlier image with each turn, and Spinbot uses
    none of them, so its raw limit is V1_BODY_FACTOR times the body limit; what it uses (the last user
    message) is held to SPINBOT_MAX_BODY_MB once parsed (web/v1_request.py)."""
    return {"/v1/chat/completions": int(settings.max_body_mb * MB * V1_BODY_FACTOR)}


class UIRoute(APIRoute):
    """The web UI's catch-all GET: it matches GET only, so another method on a path no route has is a 404
    (not a 405 claiming the path exists); a wrong method on a real route stays a 405."""

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if scope.get("method") != "GET":
            return Match.NONE, {}
        return super().matches(scope)


def _mount_ui(app: FastAPI) -> None:
    root = STATIC_DIR.resolve()

    async def ui(path: str, request: Request) -> Response:
        target = (root / path).resolve()
        if path and target.is_file() and target.is_relative_to(root):
            return FileResponse(target)
        first = path.strip("/").split("/", 1)[0]
        page = first in UI_PAGES and not path.startswith(("api/", "v1/"))
        # A browser that opens a mistyped page gets the UI's own "page not found" (status 404), not problem+json.
        browsing = not path.startswith(("api/", "v1/")) and _prefers_html(request.headers.get("accept", ""))
        if page or browsing:
            index = root / "index.html"
            if not index.is_file():
                raise Problem("no_ui", "the web UI is not installed (web/static/index.html is missing)",
                              hint="use the API (/docs) or reinstall Spinbot")
            return FileResponse(index, status_code=200 if page else 404, headers={"Cache-Control": "no-cache"})
        raise Problem("not_found", f"/{path} does not exist", hint="see /docs for the API's routes")

    app.router.add_api_route("/{path:path}", ui, methods=["GET"], include_in_schema=False, route_class_override=UIRoute)


def _prefers_html(accept: str) -> bool:
    """Whether an Accept header asks for a page (a browser's navigation: text/html before any JSON)."""
    kinds = [part.split(";", 1)[0].strip().lower() for part in accept.split(",")]
    html = kinds.index("text/html") if "text/html" in kinds else None
    json_at = min((i for i, k in enumerate(kinds) if k.endswith("json")), default=None)
    return html is not None and (json_at is None or html < json_at)


def bind_host(settings: Settings) -> tuple[str, str | None]:
    """Where to listen, and a warning to print: with no API keys only loopback, whatever was asked."""
    if settings.api_keys:
        return settings.host, None
    if settings.host not in LOOPBACK:
        return "127.0.0.1", (f"no SPINBOT_API_KEYS configured: listening on 127.0.0.1 only, not {settings.host} "
                             "(set SPINBOT_API_KEYS to serve other machines)")
    return settings.host, ("no SPINBOT_API_KEYS configured: listening on loopback only; anyone on this machine "
                           "may use the API")


def serve(settings: Settings) -> None:
    """Run the API under uvicorn; without API keys it binds loopback only and says so."""
    host, warning = bind_host(settings)
    if warning:
        log.warning(warning)
    started = time.monotonic()
    log.info("Spinbot API on http://%s:%d (web UI at /, OpenAI endpoint at /v1)", host, settings.port)
    app = create_app(settings)
    warm_up()
    collector.settle()  # as the executors do: start-up objects leave the collector's view, fewer full collections
    M.watch_gc()
    config = uvicorn.Config(app, host=host, port=settings.port, ws="none", log_config=None,
                            timeout_graceful_shutdown=5, proxy_headers=True)
    StreamClosingServer(config).run()
    log.info("API stopped after %.0f s", time.monotonic() - started)


class StreamClosingServer(uvicorn.Server):
    """On SIGTERM/SIGINT, end open event streams cleanly (clients resume elsewhere) instead of
    waiting out the graceful-shutdown timeout and having them cancelled with errors."""

    def handle_exit(self, sig: int, frame: object) -> None:
        super().handle_exit(sig, frame)  # type: ignore[arg-type]
        services = getattr(self.config.app.state, "services", None)  # type: ignore[union-attr]
        if services is not None:
            with contextlib.suppress(RuntimeError):
                asyncio.get_running_loop().call_soon_threadsafe(close_streams, services)


def close_streams(services: Services) -> None:
    for stream in list(services.open_streams):
        stream.close()
