"""Operations: health of every part, Prometheus metrics."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

import httpx
from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from spinbot import constants as C
from spinbot.capabilities import live_manifest
from spinbot.metrics import JOBS_CURRENT
from spinbot.redis_setup import UnsafeSetup, eviction_policy, eviction_problem
from web.deps import ServicesDep

log = logging.getLogger(__name__)
router = APIRouter(tags=["operations"])

CHECK_TIMEOUT_S = 2.0


async def _check(fn: Callable[[], Awaitable[Any]]) -> dict[str, Any]:
    started = time.perf_counter()
    try:
        detail = await asyncio.wait_for(fn(), timeout=CHECK_TIMEOUT_S)
    except Exception as e:  # a health check reports every failure, whatever it is
        return {"ok": False, "error": f"{type(e).__name__}: {e}" if str(e) else type(e).__name__,
                "ms": round((time.perf_counter() - started) * 1000, 1)}
    out: dict[str, Any] = {"ok": True, "ms": round((time.perf_counter() - started) * 1000, 1)}
    if isinstance(detail, dict):
        out.update(detail)
    return out


async def _ollama(url: str, model: str) -> dict[str, Any]:
    async with httpx.AsyncClient(timeout=CHECK_TIMEOUT_S) as client:
        r = await client.get(f"{url.rstrip('/')}/api/tags")
        r.raise_for_status()
    models = [m.get("name", "") for m in r.json().get("models", [])]
    present = model in models or f"{model}:latest" in models
    return {"model": model, "model_present": present,
            **({} if present else {"hint": f"run: ollama pull {model} (meanwhile: rules read goals)"})}


@router.get("/health", summary="Redis, Postgres, the artifact store, Ollama and each plane's live executors; "
            "`?ready=1` answers 503 until both planes have an executor")
async def health(
    services: ServicesDep,
    ready: Annotated[bool, Query(description="readiness probe: 503 until both planes have executors")] = False,
) -> JSONResponse:
    """Liveness by default (503 only when Redis, Postgres or the store is down); readiness with `?ready=1`."""
    s = services.settings

    async def planes() -> dict[str, Any]:
        merged = await live_manifest(services.redis)
        return {"planes": {p: {"executors": st.executors, "devices": st.devices} for p, st in merged.planes.items()},
                "services": len(merged.available(include_hidden=True))}

    async def redis_check() -> dict[str, Any]:
        await services.redis.ping()
        policy = await eviction_policy(services.redis)
        problem = eviction_problem(policy)
        if problem and s.production:
            raise UnsafeSetup(problem)
        return {"maxmemory_policy": policy, **({"warning": problem} if problem else {})}

    redis_c, pg, store, ollama, live = await asyncio.gather(
        _check(redis_check), _check(services.store.check), _check(services.artifacts.check),
        _check(lambda: _ollama(s.ollama_url, s.ollama_model)), _check(planes),
    )
    checks = {"redis": redis_c, "postgres": pg, "store": store, "ollama": ollama}
    essential = redis_c["ok"] and pg["ok"] and store["ok"]
    by_plane = {p: live.get("planes", {}).get(p, {"executors": [], "devices": []}) for p in C.PLANES}
    offline = [p for p, v in by_plane.items() if not v["executors"]]
    is_ready = essential and not offline  # Ollama is optional: rules read goals while it is down
    warnings = [c["warning"] for c in checks.values() if c.get("warning")]
    body = {
        "status": "down" if not essential else ("degraded" if offline or not ollama["ok"] or warnings else "ok"),
        "ready": is_ready,
        "waiting_for": [k for k in ("redis", "postgres", "store") if not checks[k]["ok"]]
        + [f"{p} executor" for p in offline],
        "checks": checks,
        "planes": by_plane,
        **({"warnings": warnings} if warnings else {}),
    }
    ok = is_ready if ready else essential
    return JSONResponse(body, status_code=200 if ok else 503, headers=None if ok else {"Retry-After": "1"})


@router.get("/metrics", summary="Prometheus metrics of this API process", response_class=Response)
async def metrics(services: ServicesDep) -> Response:
    try:  # jobs by status come from the durable record, counted when scraped
        rows = await asyncio.wait_for(
            services.store.pool.fetch("SELECT status, count(*) AS n FROM jobs GROUP BY status"), CHECK_TIMEOUT_S)
    except Exception as e:  # metrics still answer when Postgres does not
        log.warning("jobs by status unavailable for /metrics: %s", e)
    else:
        counts = {r["status"]: r["n"] for r in rows}
        for status in ("queued", "running", "completed", "failed", "cancelled"):
            JOBS_CURRENT.labels(status).set(counts.get(status, 0))
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
