"""POST /api/evaluate with the learned estimates and the owner's node cache (web.routes.planning)."""

from __future__ import annotations

from conversation.auth import LOCAL_OWNER
from spinbot.capabilities import committed_manifest
from spinbot.nodecache import NodeCache, node_key
from spinbot.store import Store
from tests.web.conftest import LiveAPI

SPECS = committed_manifest().services
GRAPH = {
    "schema": "langgraph.v1", "workflowId": "w",
    "nodes": [
        {"id": "script", "service": "llm.generate_script", "plane": "control", "params": {"topic": "tides"}},
        {"id": "say", "service": "tts.synthesize", "plane": "gpu",
         "params": {"text": {"$node": "script", "output": "narration"}}},
    ],
}


async def test_evaluate_shows_a_range_and_what_the_cache_reuses(api: LiveAPI, store: Store) -> None:
    async with api.client() as c:
        fresh = (await c.post("/api/evaluate", json={"graph": GRAPH})).json()
        llm = SPECS["llm.generate_script"]
        outputs = {"title": "Tides", "narration": "The moon pulls.", "stage": "a beach", "script": {}}
        key = node_key(llm, {"topic": "tides"}, api.services.settings)
        await NodeCache(store.pool).record(LOCAL_OWNER, key, llm, outputs, job_id="j0", node_id="script")
        again = (await c.post("/api/evaluate", json={"graph": GRAPH})).json()
    est = fresh["estimate"]
    assert est["low_s"] < est["duration_s"] < est["high_s"] and est["summary"].startswith("about ")
    assert est["reused"] == [] and again["estimate"]["reused"] == ["script"]
    assert again["estimate"]["by_node"]["script"] == 0 and again["estimate"]["duration_s"] < est["duration_s"]
    assert again["estimate"]["summary"].endswith("script is reused")
