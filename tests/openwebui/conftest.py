"""A real Open WebUI (PyPI, offline) in front of a Spinbot started by each test, driven in Chromium.

Open WebUI starts once per module and talks to Spinbot through a relay whose upstream each test points
at its own live stack (API and both executors, tests/ui/conftest.py), so every test has a fresh Spinbot
(Redis keyspace, database) while Open WebUI's 20-40 s start is paid once. Install and start times go to
test-output/openwebui/timings.json.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import socketserver
import subprocess
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from spinbot.settings import Settings
from tests.openwebui import owui
from tests.ui.conftest import LiveStack, browser, chromium, free_port  # noqa: F401 (fixtures used by the tests)

ROOT = Path(__file__).resolve().parents[2]
OUTPUT = ROOT / "test-output" / "openwebui"
KEY = "owui-test-key"
START_TIMEOUT_S = 240.0


class Relay:
    """A TCP relay on a fixed port whose upstream port can change: Open WebUI keeps one URL for Spinbot."""

    def __init__(self) -> None:
        self.upstream = 0
        relay = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                try:
                    up = socket.create_connection(("127.0.0.1", relay.upstream), timeout=10)
                except OSError:
                    return
                with up:
                    up.settimeout(None)
                    pump = threading.Thread(target=_pump, args=(up, self.request), daemon=True)
                    pump.start()
                    _pump(self.request, up)
                    pump.join()

        class Server(socketserver.ThreadingTCPServer):
            daemon_threads = True
            allow_reuse_address = True

        self.server = Server(("127.0.0.1", 0), Handler)
        self.port = int(self.server.server_address[1])
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True, name="owui-relay")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Relay:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _pump(src: socket.socket, dst: socket.socket) -> None:
    with contextlib.suppress(OSError):
        while data := src.recv(65536):
            dst.sendall(data)
    with contextlib.suppress(OSError):
        dst.shutdown(socket.SHUT_WR)


@dataclass
class OpenWebUI:
    url: str
    relay: Relay
    log: Path
    timings: dict[str, float] = field(default_factory=dict)

    def record(self, name: str, seconds: float) -> None:
        self.timings[name] = round(seconds, 1)
        OUTPUT.mkdir(parents=True, exist_ok=True)
        (OUTPUT / "timings.json").write_text(json.dumps(self.timings, indent=2) + "\n")


@pytest.fixture(scope="session")
def openwebui_venv(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, float]]:
    log = tmp_path_factory.mktemp("owui-install") / "pip.log"
    try:
        timing = owui.install(log=log)
    except RuntimeError as e:  # no index, no wheel for this Python, no network: nothing to test against here
        pytest.skip(f"open-webui=={owui.VERSION} cannot be installed here: {e}")
    return owui.venv_dir(), timing


@pytest.fixture(scope="module")
def openwebui(openwebui_venv: tuple[Path, dict[str, float]],
              tmp_path_factory: pytest.TempPathFactory) -> Iterator[OpenWebUI]:
    venv, install = openwebui_venv
    relay = Relay().start()
    data = tmp_path_factory.mktemp("owui-data")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = owui.offline_env(upstream=f"{relay.url}/v1", key=KEY, data_dir=data, origin=url)
    log = data / "open-webui.log"
    started = time.monotonic()
    with log.open("wb") as out:
        proc = subprocess.Popen([str(venv / "bin" / "open-webui"), "serve", "--host", "127.0.0.1", "--port", str(port)],
                                env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True, cwd=data)
    try:
        _wait_healthy(url, proc, log)
        ui = OpenWebUI(url, relay, log)
        ui.record("install_s" if not install["cached"] else "install_check_s", install["install_s"])
        ui.record("start_s", time.monotonic() - started)
        yield ui
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
        relay.stop()
        OUTPUT.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(OSError):
            (OUTPUT / "open-webui.log").write_bytes(log.read_bytes()[-200_000:])


def _wait_healthy(url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"open-webui exited ({proc.returncode}):\n{log.read_text(errors='replace')[-3000:]}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return
        time.sleep(0.5)
    raise RuntimeError(f"open-webui did not answer /health in {START_TIMEOUT_S:.0f} s:\n"
                       f"{log.read_text(errors='replace')[-3000:]}")


@pytest.fixture
def spinbot_settings(settings: Settings) -> Settings:
    """The settings of the test's Spinbot (a test may override this fixture)."""
    return settings.model_copy(update={"api_keys": [KEY]})


@pytest.fixture
async def spinbot(spinbot_settings: Settings, openwebui: OpenWebUI) -> AsyncIterator[LiveStack]:
    """A live Spinbot (API and both executors) behind the relay Open WebUI talks to."""
    live = await LiveStack(spinbot_settings).start()
    live.http.headers["Authorization"] = f"Bearer {KEY}"
    openwebui.relay.upstream = live.settings.port
    yield live
    await live.stop()
