"""`spinbot executor control|gpu`: connect to Redis, Postgres and the artifact store, then serve a plane."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from typing import Any

from executors.core import Executor
from executors.manifests import registry as plane_registry
from spinbot import collector
from spinbot import metrics as M
from spinbot.artifacts import open_store
from spinbot.backoff import Backoff
from spinbot.queue import REDIS_DOWN
from spinbot.redis_setup import UnsafeSetup, executor_client
from spinbot.settings import Settings
from spinbot.store import PgLimits, Store

log = logging.getLogger(__name__)


async def connect_store(settings: Settings, stop: asyncio.Event) -> Store | None:
    """Postgres with migrations applied; retried with backoff while it is unreachable."""
    if not settings.database_url:
        log.warning("SPINBOT_DATABASE_URL is not set: jobs run, but nothing is recorded in Postgres")
        return None
    backoff = Backoff(0.5, 10.0)
    while not stop.is_set():
        try:
            return await Store.connect(settings.database_url, limits=PgLimits.from_settings(settings))
        except (TimeoutError, OSError, ConnectionError) as e:
            reason = str(e)
        except Exception as e:  # asyncpg raises its own classes for refused auth, missing DB...
            reason = f"{type(e).__name__}: {e}"
        delay = backoff.next()
        log.error("Postgres at %s is unreachable (%s): start Postgres or fix SPINBOT_DATABASE_URL; "
                  "retrying in %.1f s", _redact(settings.database_url), reason, delay)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=delay)
    return None


def _redact(url: str) -> str:
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        creds, host = rest.rsplit("@", 1)
        return f"{scheme}://{creds.split(':', 1)[0]}:***@{host}" if ":" in creds else url
    return url


def detect_device(plane: str) -> dict[str, Any] | None:
    if plane != "gpu":
        return None
    from executors.gpu.device import detect

    info = detect()
    M.GPU_MEMORY.labels(info["name"], "total").set(info["total_mb"] * 2**20)
    M.GPU_MEMORY.labels(info["name"], "free").set(info["free_mb"] * 2**20)
    return info


def _install_signals(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)


async def run_executor(settings: Settings, plane: str) -> None:
    """Serve one plane until SIGTERM/SIGINT; running jobs get a short grace, the rest stay pending."""
    if not settings.redis_url:
        raise SystemExit(
            "SPINBOT_REDIS_URL is not set and no `spinbot up` is running: start `spinbot up` "
            "(it starts a private Redis) or point SPINBOT_REDIS_URL at your Redis"
        )
    stop = asyncio.Event()
    _install_signals(stop)
    if settings.metrics_port:
        from prometheus_client import start_http_server

        start_http_server(settings.metrics_port, addr=settings.host)
        log.info("metrics on http://%s:%d/metrics", settings.host, settings.metrics_port)
    redis = executor_client(settings.redis_url)
    store = await connect_store(settings, stop)
    artifacts = open_store(settings)
    await artifacts.check()
    device = detect_device(plane)
    ex = Executor(settings, plane, plane_registry(plane), redis, store, artifacts, device=device)  # type: ignore[arg-type]
    log.info(
        "executor %s starting: plane=%s redis=%s postgres=%s concurrency=%d%s",
        ex.id, plane, settings.redis_url, "yes" if store else "no", settings.concurrency,
        f" device={device['name']} memory_mb={ex.gpu.memory_mb} gpu_slots={settings.gpu_slots}" if device else "",
    )
    collector.settle()  # start-up objects (imports, registries) leave the collector's view: shorter pauses
    M.watch_gc()
    runner = asyncio.create_task(ex.run())
    stopper = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait({runner, stopper}, return_when=asyncio.FIRST_COMPLETED)
        if stop.is_set():
            log.info("executor %s: stop requested, shutting down", ex.id)
            ex.stop()
        try:
            await runner
        except UnsafeSetup as e:
            raise SystemExit(f"{e.message} ({e.hint})") from e
    finally:
        stopper.cancel()
        with contextlib.suppress(*REDIS_DOWN):
            await redis.aclose()
        if store is not None:
            await store.close()
