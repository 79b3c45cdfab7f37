"""Real Redis and real Postgres for every test: configured ones, or private servers started here.

SPINBOT_REDIS_URL / SPINBOT_DATABASE_URL point the tests at existing servers (the Redis database
is flushed before each test); unset, a private redis-server and Postgres are started per session.
Each test gets an empty Redis database and a fresh Postgres database cloned from a migrated template.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest
import redis.asyncio as aioredis

from spinbot.embedded import PostgresServer, RedisServer
from spinbot.settings import Settings
from spinbot.store import Store

TEMPLATE_DB = "spinbot_test_template"

pytest_plugins = ["tests.fake_ollama", "tests.fake_comfyui"]


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if url := os.environ.get("SPINBOT_REDIS_URL"):
        yield url
        return
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    yield server.url
    server.stop()


@pytest.fixture(scope="session")
def postgres_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if url := os.environ.get("SPINBOT_DATABASE_URL"):
        yield url
        return
    server = PostgresServer(tmp_path_factory.mktemp("pg")).start()
    yield server.url
    server.stop()


def _db_url(server_url: str, name: str) -> str:
    base, _, _ = server_url.rpartition("/")
    return f"{base}/{name}"


@pytest.fixture(scope="session")
def _template_db(postgres_url: str) -> str:
    async def make() -> None:
        conn = await asyncpg.connect(postgres_url)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{TEMPLATE_DB}"')
            await conn.execute(f'CREATE DATABASE "{TEMPLATE_DB}"')
        finally:
            await conn.close()
        store = await Store.connect(_db_url(postgres_url, TEMPLATE_DB))
        await store.close()

    asyncio.run(make())
    return TEMPLATE_DB


@pytest.fixture
async def database_url(postgres_url: str, _template_db: str) -> AsyncIterator[str]:
    """A fresh, migrated database for this test."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    conn = await asyncpg.connect(postgres_url)
    try:
        await conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{_template_db}"')
    finally:
        await conn.close()
    yield _db_url(postgres_url, name)
    conn = await asyncpg.connect(postgres_url)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    """An empty Redis database for this test."""
    client = aioredis.Redis.from_url(redis_url, decode_responses=True)
    await client.flushdb()
    yield client
    await client.aclose()


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[Store]:
    s = await Store.connect(database_url)
    yield s
    await s.close()


@pytest.fixture
def settings(redis_url: str, database_url: str, tmp_path: Path, redis: aioredis.Redis) -> Settings:
    """Settings for this test's Redis keyspace, database and data directory (a flushed Redis)."""
    return Settings(
        redis_url=redis_url,
        database_url=database_url,
        data_dir=tmp_path / "data",
        ollama_url="http://127.0.0.1:9",  # nothing listens: tests that need an LLM start a replay server
        planner_trust="rules",  # no background probe calls: a scripted model answers only what a test asks
        claim_idle_ms=1500,
        heartbeat_s=0.3,
    )
