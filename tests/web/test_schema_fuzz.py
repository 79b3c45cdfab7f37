"""schemathesis against /openapi.json of a live server: no operation answers 500, whatever it is sent."""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import schemathesis
import uvicorn
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import not_a_server_error

from spinbot.settings import Settings
from web.app import create_app


def _db(server_url: str, name: str) -> str:
    return f"{server_url.rpartition('/')[0]}/{name}"


async def _sql(url: str, statement: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


@pytest.fixture(scope="module")
def live_url(redis_url: str, postgres_url: str, _template_db: str, tmp_path_factory: pytest.TempPathFactory
             ) -> Iterator[str]:
    """One server for the whole module (uvicorn in a thread with its own loop) on a fresh database."""
    name = f"t_fuzz_{uuid.uuid4().hex[:8]}"
    asyncio.run(_sql(postgres_url, f'CREATE DATABASE "{name}" TEMPLATE "{_template_db}"'))
    data: Path = tmp_path_factory.mktemp("fuzz")
    app_settings = Settings(redis_url=redis_url, database_url=_db(postgres_url, name), data_dir=data,
                            ollama_url="http://127.0.0.1:9", ollama_timeout_s=2, max_jobs_per_key=10_000)
    server = uvicorn.Server(uvicorn.Config(create_app(app_settings), host="127.0.0.1", port=0, ws="none",
                                           log_level="warning", log_config=None, timeout_graceful_shutdown=1))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    for _ in range(1000):
        if server.started:
            break
        threading.Event().wait(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(15)
    asyncio.run(_sql(postgres_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def _not_ready(case: schemathesis.Case, response: Any) -> bool:
    """GET /health?ready=1 answering 503 with ready false: the readiness probe's answer, not a server error."""
    if case.operation.path != "/health" or response.status_code != 503:
        return False
    body = response.json()
    return body.get("ready") is False and body.get("checks", {}).get("redis", {}).get("ok") is True


def test_no_operation_answers_500(live_url: str) -> None:
    """A few generated requests per operation (positive and negative); every answer must be < 500."""
    api = schemathesis.openapi.from_url(f"{live_url}/openapi.json")
    operations = [result.ok() for result in api.get_all_operations()]
    assert len(operations) >= 18
    statuses: list[int] = []
    for op in operations:
        for mode in schemathesis.GenerationMode:

            @given(case=op.as_strategy(generation_mode=mode))
            @settings(max_examples=4, deadline=None, suppress_health_check=list(HealthCheck), database=None)
            def check(case: schemathesis.Case) -> None:
                response = case.call(timeout=30)
                if not _not_ready(case, response):  # no executor runs here: readiness is a documented 503
                    case.validate_response(response, checks=[not_a_server_error])
                statuses.append(response.status_code)

            try:
                check()
            except Unsatisfiable:
                assert mode is schemathesis.GenerationMode.NEGATIVE  # nothing to break in a parameterless call
    assert len(statuses) >= 4 * len(operations)  # it really sent requests
    assert any(s < 300 for s in statuses) and any(400 <= s < 500 for s in statuses)
