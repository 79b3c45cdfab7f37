"""`spinbot up`'s embedded Redis and Postgres come back after kill -9, on the same port, with their data."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import redis

from spinbot.embedded import Supervisor, servers


def until(check: Callable[[], Any], timeout: float, what: str) -> float:
    """Poll `check()` until it is true (errors count as not yet); returns the seconds it took."""
    t0 = time.monotonic()
    last: Exception | None = None
    while time.monotonic() - t0 < timeout:
        try:
            if check():
                return time.monotonic() - t0
        except Exception as e:  # not up yet
            last = e
        time.sleep(0.05)
    raise AssertionError(f"not within {timeout} s: {what} (last error: {last})")


def restart_lines(caplog: pytest.LogCaptureFixture, name: str) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.name == "spinbot.embedded" and r.getMessage().startswith(f"embedded {name} exited")]


def test_embedded_redis_is_restarted_after_kill_9(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="spinbot.embedded")
    with servers(tmp_path, None, "postgresql://unused", supervise=True) as (url, _):
        client = redis.Redis.from_url(url, decode_responses=True)
        try:
            client.config_set("appendfsync", "always")  # so the key below is on disk before the kill
            client.set("survives", "yes")
            port = client.connection_pool.connection_kwargs["port"]
            for n in (1, 2):  # twice: the second restart comes after a short backoff
                pid = int(client.info("server")["process_id"])
                os.kill(pid, signal.SIGKILL)
                took = until(lambda pid=pid: client.ping() and int(client.info("server")["process_id"]) != pid, 20,
                             "the killed Redis answering PING again")
                logging.getLogger(__name__).warning("Redis back %.2f s after kill -9 (restart %d)", took, n)
                assert client.connection_pool.connection_kwargs["port"] == port
                assert client.get("survives") == "yes"
                until(lambda n=n: len(restart_lines(caplog, "Redis")) == n, 10, "one log line per restart")
                client.config_set("appendfsync", "always")
        finally:
            client.close()
    [line, _] = restart_lines(caplog, "Redis")
    assert f"on port {port}" in line and "code -9" in line and str(tmp_path / "redis") in line


def test_embedded_postgres_is_restarted_after_kill_9(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="spinbot.embedded")

    async def query(url: str, sql: str) -> Any:
        conn = await asyncpg.connect(url, timeout=5)
        try:
            if not sql.startswith("SELECT"):
                return await conn.execute(sql)
            return await conn.fetchval(sql)
        finally:
            await conn.close()

    with servers(tmp_path, "redis://unused", None, supervise=True) as (_, url):
        asyncio.run(query(url, "CREATE TABLE t (v text); INSERT INTO t VALUES ('kept')"))
        pid_file = tmp_path / "postgres" / "pgdata" / "postmaster.pid"
        pid = int(pid_file.read_text().split()[0])
        os.kill(pid, signal.SIGKILL)
        took = until(lambda: asyncio.run(query(url, "SELECT v FROM t")) == "kept", 90,
                     "the killed Postgres answering again with its data")
        logging.getLogger(__name__).warning("Postgres back %.2f s after kill -9", took)
        assert int(pid_file.read_text().split()[0]) != pid
        until(lambda: len(restart_lines(caplog, "Postgres")) == 1, 10, "one log line for the restart")


class _Dead:
    """A server whose process has exited and that will not start again."""

    name = "Redis"
    port = 1
    dir = Path("/nonexistent")

    def __init__(self) -> None:
        self.proc = subprocess.Popen(["true"])
        self.proc.wait()
        self.starts = 0

    def start(self, *, quiet: bool = False) -> _Dead:
        self.starts += 1
        raise RuntimeError("redis-server exited with code 1 at start")


def test_restarts_are_rate_limited(caplog: pytest.LogCaptureFixture) -> None:
    """A server that keeps failing is retried at once, then after 0.5, 1, 2, ... s, at most every 30 s."""
    now = [0.0]
    dead = _Dead()
    sup = Supervisor([dead], clock=lambda: now[0])  # type: ignore[list-item]
    attempts: list[float] = []
    while now[0] < 300:
        before = dead.starts
        sup.check()
        if dead.starts > before:
            attempts.append(now[0])
        now[0] += 0.25
    gaps = [round(b - a, 2) for a, b in zip(attempts, attempts[1:], strict=False)]
    assert attempts[0] == 0.0
    assert gaps[:6] == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0]
    assert set(gaps[6:]) == {30.0}
    assert len(attempts) <= 16  # in five minutes
    assert sum("could not be restarted" in r.getMessage() for r in caplog.records) == len(attempts)
