"""Who may see what: every route that takes an id answers 404 to another key and 401 to no key."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from conversation.auth import owner_of
from spinbot.settings import Settings
from tests.web.conftest import LiveAPI, diag_graph, echo_node, png_bytes, serve, wav_bytes

ALPHA, BETA = "alpha-key-123", "beta-key-456"


@pytest.fixture
async def keyed(api_settings: Settings) -> AsyncIterator[LiveAPI]:
    async with serve(api_settings.model_copy(update={"api_keys": [ALPHA, BETA]})) as live:
        yield live


async def test_owner_is_a_stable_hash() -> None:
    assert owner_of(ALPHA) == owner_of(ALPHA) != owner_of(BETA)
    assert ALPHA not in owner_of(ALPHA)


async def test_every_id_route_is_private_to_its_key(keyed: LiveAPI, executors) -> None:
    async with keyed.client(ALPHA) as a, keyed.client(BETA) as b, keyed.client() as anon:
        job = (await a.post("/api/jobs", json={"graph": diag_graph(echo_node("e"))})).json()["id"]
        upload = (await a.post("/api/uploads", files={"files": ("v.wav", wav_bytes(), "audio/wav")})).json()
        key = upload["items"][0]["key"]
        assert key.startswith(f"uploads/{owner_of(ALPHA)}/")
        conv = (await keyed.services.repo.create_conversation(owner_of(ALPHA), "mine"))["id"]

        routes = [
            ("GET", f"/api/jobs/{job}", None),
            ("GET", f"/api/jobs/{job}/events", None),
            ("POST", f"/api/jobs/{job}/cancel", None),
            ("GET", f"/api/artifacts/{key}", None),
            ("GET", f"/api/conversations/{conv}", None),
            ("POST", "/api/jobs", {"graph": diag_graph(echo_node("e")), "conversation_id": conv}),
            ("POST", "/api/chat", {"message": "hello", "conversation_id": conv}),
            ("POST", "/api/plan", {"goal": "hello", "conversation_id": conv}),
            ("POST", "/api/chat", {"message": "use this", "attachments": [{"key": key}]}),
        ]
        for method, path, body in routes:
            r = await b.request(method, path, json=body)
            assert r.status_code == 404, (method, path, r.status_code, r.text)
            assert r.headers["content-type"] == "application/problem+json"
            r = await anon.request(method, path, json=body)
            assert r.status_code == 401, (method, path, r.status_code)
            assert r.headers["www-authenticate"].startswith("Bearer")
        for method, path in [("GET", f"/api/jobs/{job}"), ("GET", f"/api/artifacts/{key}"),
                             ("GET", f"/api/conversations/{conv}")]:
            assert (await a.request(method, path)).status_code == 200, path
        # Lists show only the caller's own things.
        assert [j["id"] for j in (await a.get("/api/jobs")).json()["items"]] == [job]
        assert (await b.get("/api/jobs")).json()["items"] == []
        assert (await b.get("/api/conversations")).json()["items"] == []
        assert (await anon.get("/v1/models")).status_code == 401
        assert (await a.get("/v1/models")).status_code == 200


async def test_signed_artifact_links_work_without_a_key(keyed: LiveAPI) -> None:
    async with keyed.client(ALPHA) as a, keyed.client() as anon:
        key = (await a.post("/api/uploads", files={"files": ("p.png", png_bytes(), "image/png")}
                            )).json()["items"][0]["key"]
        query = keyed.services.links.query(key)
        r = await anon.get(f"/api/artifacts/{key}?{query}")
        assert r.status_code == 200 and r.headers["content-type"] == "image/png" and r.content == png_bytes()
        tampered = query[:-2] + ("AA" if not query.endswith("AA") else "BB")
        assert (await anon.get(f"/api/artifacts/{key}?{tampered}")).status_code == 401
        assert (await anon.get(f"/api/artifacts/{key}?api_key={ALPHA}")).status_code == 200
        assert (await anon.get(f"/api/artifacts/{key}?api_key={BETA}")).status_code == 404
