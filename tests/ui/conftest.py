"""The web UI under a real browser: the real API and both real executors, Debian's Chromium via Playwright.

The stack (uvicorn serving create_app, the control and GPU executors) runs as tasks in the test's
event loop against this test's Redis and Postgres; tests drive Chromium with Playwright's async API
in the same loop (its sync API cannot share a thread with pytest-asyncio's loop).
Screenshots go to the test's tmp dir and to test-output/ui/.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from spinbot.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--autoplay-policy=no-user-gesture-required",
]
OUTPUT = ROOT / "test-output" / "ui"
TEST_DEVICE = {"kind": "cpu", "name": "CPU (test)", "total_mb": 4096, "free_mb": 4096}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LiveStack:
    """The API (uvicorn) and both executors as tasks in the test's event loop, as `spinbot up` runs them."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings.model_copy(update={"port": free_port(), "host": "127.0.0.1"})
        self.url = f"http://127.0.0.1:{self.settings.port}"
        self._cleanup = contextlib.AsyncExitStack()
        self.http = httpx.AsyncClient(base_url=self.url, timeout=30)

    async def start(self, timeout_s: float = 60.0) -> LiveStack:
        import uvicorn

        from spinbot.store import Store
        from tests.harness import InProcess
        from web.app import create_app

        s = self.settings
        store = await Store.connect(str(s.database_url))
        self._cleanup.push_async_callback(store.close)
        executors = InProcess(s, store, device=TEST_DEVICE)
        self._cleanup.push_async_callback(executors.close)
        await executors.both()
        server = uvicorn.Server(
            uvicorn.Config(
                create_app(s),
                host="127.0.0.1",
                port=s.port,
                log_level="warning",
                ws="none",
                lifespan="on",
                timeout_graceful_shutdown=1,
            )
        )
        api = asyncio.create_task(server.serve(), name="api")

        async def stop_api() -> None:
            server.should_exit = True
            await asyncio.wait_for(api, 15)

        self._cleanup.push_async_callback(stop_api)
        deadline = time.monotonic() + timeout_s
        while not (server.started and all(ex.started.is_set() for ex in executors.executors)):
            if api.done():
                api.result()
                raise RuntimeError("the API stopped during start-up")
            if time.monotonic() > deadline:
                raise RuntimeError("the API and executors did not start in time")
            await asyncio.sleep(0.05)
        return self

    async def stop(self) -> None:
        await self.http.aclose()
        await self._cleanup.aclose()

    # -- API calls the tests make directly (to set up jobs and check outcomes)

    async def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        r = await self.http.post(path, json=body)
        assert r.status_code < 300, r.text
        return r.json()  # type: ignore[no-any-return]

    async def get(self, path: str) -> dict[str, Any]:
        r = await self.http.get(path)
        assert r.status_code == 200, r.text
        return r.json()  # type: ignore[no-any-return]


@pytest.fixture
def stack_settings(settings: Settings) -> Settings:
    """The settings the live stack runs with (a test module may override this fixture)."""
    return settings


@pytest.fixture
async def stack(stack_settings: Settings) -> AsyncIterator[LiveStack]:
    live = await LiveStack(stack_settings).start()
    yield live
    await live.stop()


class TcpProxy:
    """A TCP relay in front of the API whose drop() cuts every open connection: a real network drop."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.port = 0
        self.writers: set[asyncio.StreamWriter] = set()
        self.server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> TcpProxy:
        self.server = await asyncio.start_server(self._client, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        self.writers |= {writer, up_writer}
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, OSError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        writer.close()
        self.writers.discard(writer)

    def drop(self) -> int:
        """Cut every open connection (both directions); returns how many were cut."""
        cut = list(self.writers)
        for w in cut:
            w.transport.abort()
        self.writers.clear()
        return len(cut)

    async def stop(self) -> None:
        self.drop()
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()


@pytest.fixture
async def proxy(stack: LiveStack) -> AsyncIterator[TcpProxy]:
    relay = await TcpProxy(stack.settings.port).start()
    yield relay
    await relay.stop()


@pytest.fixture(scope="session")
def chromium() -> Path:
    if not CHROMIUM.exists():
        pytest.fail("Chromium is missing: run `make browser` (apt-get install chromium)")
    return CHROMIUM


@pytest.fixture
async def browser(chromium: Path) -> AsyncIterator[Any]:
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        b = await p.chromium.launch(executable_path=str(chromium), headless=True, args=CHROMIUM_ARGS)
        yield b
        await b.close()


class Shots:
    """Screenshots of each step: into the test's tmp dir, copied to test-output/ui/ for people to look at."""

    def __init__(self, directory: Path, prefix: str) -> None:
        self.directory = directory
        self.prefix = prefix
        self.count = 0

    async def __call__(self, page: Any, step: str) -> Path:
        self.count += 1
        path = self.directory / f"{self.prefix}-{self.count:02d}-{step}.png"
        await page.screenshot(path=str(path))
        OUTPUT.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, OUTPUT / path.name)
        return path


@pytest.fixture
def shots(tmp_path: Path, request: pytest.FixtureRequest) -> Shots:
    name = request.node.name.removeprefix("test_")
    for old in OUTPUT.glob(f"{name}-*.png"):
        old.unlink()
    return Shots(tmp_path, name)


class Console:
    """Console errors and uncaught exceptions of every page opened in a context."""

    def __init__(self) -> None:
        self.errors: list[str] = []
        self.allowed: list[str] = []

    def allow(self, fragment: str) -> None:
        """Expect errors containing `fragment` (the browser's own log of a network drop a test causes)."""
        self.allowed.append(fragment)

    def watch(self, page: Any) -> None:
        page.on("console", lambda m: self.errors.append(f"console: {m.text}") if m.type == "error" else None)
        page.on("pageerror", lambda e: self.errors.append(f"pageerror: {e}"))

    def unexpected(self) -> list[str]:
        return [e for e in self.errors if not any(a in e for a in self.allowed)]


@pytest.fixture
def console() -> Console:
    return Console()


@pytest.fixture
async def open_page(browser: Any, stack: LiveStack, console: Console) -> AsyncIterator[Callable[..., Any]]:
    """await open_page(path, width=1280, height=1200, on_request=None) -> a page on the live app; console
    errors fail the test. on_request sees every request, from the first one the page makes."""
    contexts: list[Any] = []

    async def open_(
        path: str = "/", *, width: int = 1280, height: int = 1200, on_request: Callable[[Any], None] | None = None
    ) -> Any:
        ctx = await browser.new_context(
            viewport={"width": width, "height": height}, base_url=stack.url, reduced_motion="reduce"
        )  # no slide-ins half-way in screenshots
        contexts.append(ctx)
        page = await ctx.new_page()
        page.set_default_timeout(30_000)
        console.watch(page)
        if on_request is not None:
            page.on("request", on_request)
        await page.goto(path)
        return page

    yield open_
    for ctx in contexts:
        await ctx.close()
    assert console.unexpected() == [], f"the page logged errors: {console.unexpected()}"


async def wait_for(predicate: Callable[[], Any], timeout_s: float = 30.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if value := await predicate():
            return value
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")
