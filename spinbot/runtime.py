"""Where a running `spinbot up` put its private servers, so other commands find them; one `spinbot up` per
data directory (an advisory lock held for its whole life), and its port checked before anything starts."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import socket
from collections.abc import Iterator
from pathlib import Path

from spinbot.errors import PermanentError
from spinbot.settings import Settings


class UpRefused(PermanentError):
    """`spinbot up` cannot start here: another one runs from this data directory, or its port is taken."""

    code = "up_refused"


def runtime_file(settings: Settings) -> Path:
    return settings.data_dir / "runtime.json"


def lock_file(settings: Settings) -> Path:
    return settings.data_dir / "up.lock"


def resolve(settings: Settings) -> Settings:
    """Fill unset Redis/Postgres URLs, and the API's address for `spinbot chat`, from the runtime file of a
    running `spinbot up` (so `spinbot up --port 8100` and then `spinbot chat` find each other)."""
    path = runtime_file(settings)
    follows_api = settings.api_url is None and not {"host", "port"} & settings.model_fields_set
    if (settings.redis_url and settings.database_url and not follows_api) or not path.exists():
        return settings
    found = json.loads(path.read_text())
    return settings.model_copy(
        update={
            "redis_url": settings.redis_url or found.get("redis_url"),
            "database_url": settings.database_url or found.get("database_url"),
            "api_url": settings.api_url or (found.get("api_url") if follows_api else None),
        }
    )


def write_runtime(settings: Settings, **values: object) -> Path:
    path = runtime_file(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(values, indent=2))
    return path


@contextlib.contextmanager
def this_directory(settings: Settings) -> Iterator[None]:
    """Hold `SPINBOT_DATA_DIR/up.lock` while a `spinbot up` runs; UpRefused when another one holds it.

    The lock (flock, released by the kernel when its holder dies, even by SIGKILL) is what says "running
    here", not runtime.json, which a crash leaves behind: a stale one is overwritten, and only the holder of
    the lock ever writes or deletes it, so a refused second `spinbot up` never touches the first's.
    """
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock_file(settings), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            if e.errno not in (errno.EWOULDBLOCK, errno.EACCES):
                raise
            raise UpRefused(f"Spinbot is already running here ({_running(settings)})",
                            hint="use that one (`spinbot chat` from this directory finds it), stop it with Ctrl-C, "
                                 "or start another with its own SPINBOT_DATA_DIR and --port") from None
        try:
            yield
        finally:
            runtime_file(settings).unlink(missing_ok=True)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _running(settings: Settings) -> str:
    """"pid N, URL" of the `spinbot up` holding the lock, from its runtime file (absent while it starts)."""
    try:
        found = json.loads(runtime_file(settings).read_text())
    except (OSError, ValueError):
        return f"it is still starting; data directory {settings.data_dir.resolve()}"
    return f"pid {found.get('pid', '?')}, {found.get('api_url', 'URL unknown')}"


def check_port(host: str, port: int) -> None:
    """UpRefused when nothing could listen on host:port now (as uvicorn binds: SO_REUSEADDR)."""
    try:
        infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as e:
        raise UpRefused(f"cannot listen on {host!r}: {e.strerror}", hint="use --host with an address of "
                        "this machine (127.0.0.1, or 0.0.0.0 for every interface)") from None
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(address)
        except OSError as e:
            if e.errno == errno.EADDRINUSE:
                raise UpRefused(f"port {port} is in use; use --port", hint=f"e.g. `spinbot up --port {port + 1}`, "
                                "or stop what listens there") from None
            raise UpRefused(f"cannot listen on {host}:{port}: {e.strerror}", hint="use --host and --port") from None
