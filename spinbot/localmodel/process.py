"""The embedded model server as a child process, started and restarted like the embedded Redis and Postgres."""

from __future__ import annotations

import contextlib
import logging
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from spinbot.embedded import free_port
from spinbot.localmodel import files

log = logging.getLogger(__name__)

#: Loading 1.1 GB and repacking its tensors takes ~10 s idle, up to a minute on a loaded 2-core machine.
START_TIMEOUT_S = 180.0


@dataclass
class ModelServer:
    """`python -m spinbot.localmodel.server` on a free loopback port, serving `model` with `threads` threads.

    The supervisor (spinbot.embedded.Supervisor) restarts it on the same port when it dies; its log
    goes to `dir/model.log`.
    """

    dir: Path
    gguf: Path
    model: str = files.DEFAULT.name
    threads: int = 1
    port: int = 0
    proc: subprocess.Popen[bytes] | None = None

    name = "model server"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, *, quiet: bool = False) -> ModelServer:
        """Start it (again: on the same port) and wait until it answers /api/tags; raises RuntimeError if it cannot."""
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = self.port or free_port()
        args = [sys.executable, "-m", "spinbot.localmodel.server", "--port", str(self.port), "--gguf", str(self.gguf),
                "--name", self.model, "--threads", str(self.threads), "--quiet"]
        with (self.dir / "model.log").open("ab") as log_file:
            # A session of its own: a terminal's Ctrl-C reaches `spinbot up`, which stops this server last.
            self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=log_file, start_new_session=True)
        started = time.monotonic()
        deadline = started + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the model server exited with code {self.proc.returncode} at start "
                                   f"(see {self.dir / 'model.log'})")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.url}/api/tags", timeout=1.0).status_code == 200:
                    if not quiet:
                        log.info("embedded model %s at %s (loaded in %.1f s)", self.model, self.url,
                                 time.monotonic() - started)
                    return self
            time.sleep(0.25)
        self.stop(kill=True)
        raise RuntimeError(
            f"the model server did not answer within {START_TIMEOUT_S:.0f} s (see {self.dir / 'model.log'})"
        )

    def stop(self, *, kill: bool = False) -> None:
        if self.proc and self.proc.poll() is None:
            (self.proc.kill if kill else self.proc.terminate)()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:  # inside a long llama.cpp call SIGTERM waits for it: do not
                self.proc.kill()
                self.proc.wait(10)
