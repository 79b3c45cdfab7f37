import json

import asyncpg
import pytest

from spinbot.artifacts import ArtifactInfo
from spinbot.queue import snapshot_interval
from spinbot.store import Store

GRAPH = {
    "schema": "langgraph.v1",
    "workflowId": "w1",
    "context": {"goal": "say hi"},
    "nodes": [{"id": "a", "service": "diag.echo", "plane": "control"}],
}


async def test_migrations_are_applied_once(store: Store) -> None:
    assert await store.migrate() == []
    assert await store.pool.fetchval("SELECT count(*) FROM schema_migrations") >= 1


async def test_job_lifecycle_is_recorded(store: Store) -> None:
    await store.create_job("j1", "alice", GRAPH)
    await store.record_transition("j1", status="running", progress=0.5, plane="gpu", version=1, graph=GRAPH)
    await store.record_transition("j1", status="completed", progress=1.0, plane=None, version=2, graph=GRAPH)
    # a late, older write never overwrites a newer version
    await store.record_transition("j1", status="running", progress=0.5, plane="gpu", version=1, graph=GRAPH)
    await store.add_events("j1", [("1-0", "job", '{"status": "running"}'), ("1-0", "job", '{"status": "dup"}')])
    await store.add_artifact("j1", "a", "x.wav", ArtifactInfo("jobs/j1/a/x.wav", 3, "ab", "audio/wav"))

    job = await store.get_job("j1")
    assert job and job["status"] == "completed" and job["version"] == 2 and job["finished_at"]
    assert job["goal"] == "say hi"
    assert await store.get_job("j1", owner="bob") is None
    snaps = await store.pool.fetch("SELECT version, status FROM graph_snapshots WHERE job_id='j1' ORDER BY version")
    assert [(r["version"], r["status"]) for r in snaps] == [(0, "queued"), (1, "running"), (2, "completed")]
    assert [e["data"] for e in await store.events("j1")] == [{"status": "running"}]
    assert (await store.artifacts("j1"))[0]["size"] == 3
    assert [j["id"] for j in await store.list_jobs("alice")] == ["j1"]
    assert await store.unfinished_jobs() == []


async def test_transitions_without_a_graph_move_the_job_row_and_write_no_snapshot(store: Store) -> None:
    """Running jobs' hand-offs: status/progress/version each time, the full graph only when given."""
    await store.create_job("j2", "alice", GRAPH)
    later = {**GRAPH, "nodes": [{**GRAPH["nodes"][0], "status": "completed"}]}
    await store.record_snapshots([("j2", 1, "running", "gpu", 0.5, None), ("j2", 2, "running", "control", 0.6, None)])
    job = await store.get_job("j2")
    assert job and (job["version"], job["plane"]) == (2, "control") and job["progress"] == pytest.approx(0.6)
    assert job["graph"] == GRAPH  # unchanged: no snapshot at these versions
    await store.record_snapshots([("j2", 3, "running", "gpu", 0.9, json.dumps(later))])
    job = await store.get_job("j2")
    assert job and job["version"] == 3 and job["graph"] == later
    snaps = await store.pool.fetch("SELECT version FROM graph_snapshots WHERE job_id='j2' ORDER BY version")
    assert [r["version"] for r in snaps] == [0, 3]


def test_snapshots_come_every_max_of_the_setting_and_the_node_count() -> None:
    assert snapshot_interval(10, 50) == 50 and snapshot_interval(500, 50) == 500 and snapshot_interval(1, 0) == 1


async def test_profile_name_keys_migrate_without_losing_a_profile(database_url: str) -> None:
    """Migration 005 on profiles written before it: an NFD and an NFC "Zoë" of one owner both stay."""
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute("DROP INDEX profiles_owner_name_key; ALTER TABLE profiles DROP COLUMN name_key;"
                           " CREATE UNIQUE INDEX profiles_owner_name ON profiles (owner, lower(name));"
                           " DELETE FROM schema_migrations WHERE version = 5")
        for pid, owner, name in (("p1", "o1", "Zoe\u0308"), ("p2", "o1", "Zo\u00eb"), ("p3", "o2", "Zo\u00eb")):
            await conn.execute("INSERT INTO profiles (id, owner, name) VALUES ($1, $2, $3)", pid, owner, name)
    finally:
        await conn.close()
    store = await Store.connect(database_url)
    try:
        rows = await store.pool.fetch("SELECT id, name, name_key FROM profiles ORDER BY id")
    finally:
        await store.close()
    keys = {r["id"]: r["name_key"] for r in rows}
    assert len(rows) == 3 and keys["p3"] == "zo\u00eb"
    assert (keys["p1"], keys["p2"]) == ("zo\u00eb", "zo\u00eb#p2")  # the later keeps its name; its key is unique
