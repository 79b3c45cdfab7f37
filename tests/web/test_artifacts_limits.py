"""Range requests for media seeking, and the limits' 413/429 answers."""

from __future__ import annotations

import asyncio

from spinbot.settings import Settings
from tests.web.conftest import LiveAPI, diag_graph, echo_node, serve, wait_node, wav_bytes

DATA = wav_bytes()  # a real WAV (uploads must decode), about 11 KB


async def _upload(c, data: bytes = DATA) -> str:
    r = await c.post("/api/uploads", files={"files": ("clip.wav", data, "audio/wav")})
    assert r.status_code == 201, r.text
    return r.json()["items"][0]["key"]


async def test_range_requests(api: LiveAPI) -> None:
    async with api.client() as c:
        key = await _upload(c)
        full = await c.get(f"/api/artifacts/{key}")
        assert full.status_code == 200 and full.content == DATA and full.headers["accept-ranges"] == "bytes"
        part = await c.get(f"/api/artifacts/{key}", headers={"Range": "bytes=100-199"})
        assert part.status_code == 206 and part.content == DATA[100:200]
        assert part.headers["content-range"] == f"bytes 100-199/{len(DATA)}"
        tail = await c.get(f"/api/artifacts/{key}", headers={"Range": "bytes=-16"})
        assert tail.status_code == 206 and tail.content == DATA[-16:]
        open_end = await c.get(f"/api/artifacts/{key}", headers={"Range": "bytes=10000-"})
        assert open_end.content == DATA[10000:]
        bad = await c.get(f"/api/artifacts/{key}", headers={"Range": "bytes=20000-"})
        assert bad.status_code == 416 and bad.headers["content-range"] == f"bytes */{len(DATA)}"
        head = await c.head(f"/api/artifacts/{key}")
        assert head.status_code == 200 and head.headers["content-length"] == str(len(DATA))


async def test_limits_answer_413_and_429(api_settings: Settings, executors) -> None:
    tight = api_settings.model_copy(update={"max_body_mb": 0.05, "max_attachment_mb": 0.01, "max_graph_nodes": 3,
                                            "max_jobs_per_key": 1, "max_streams_per_key": 1})
    async with serve(tight) as api, api.client() as c:
        r = await c.post("/api/jobs", content=b"{" + b" " * 60_000 + b"}", headers={"content-type": "application/json"})
        assert r.status_code == 413 and r.headers["content-type"] == "application/problem+json"
        r = await c.post("/api/uploads", files={"files": ("big.wav", b"0" * 20_000, "audio/wav")})
        assert r.status_code == 413
        r = await c.post("/api/jobs", json={"graph": diag_graph(*(echo_node(f"n{i}") for i in range(4)))})
        assert r.status_code == 413 and "limit is 3" in r.json()["detail"]
        first = await c.post("/api/jobs", json={"graph": diag_graph(wait_node("w", 2.0, steps=4))})
        assert first.status_code == 202
        second = await c.post("/api/jobs", json={"graph": diag_graph(echo_node("e"))})
        assert second.status_code == 429 and int(second.headers["retry-after"]) > 0
        assert "cancel" in second.json()["hint"]
        job = first.json()["id"]
        async with c.stream("GET", f"/api/jobs/{job}/events") as held:
            assert held.status_code == 200
            r = await c.get(f"/api/jobs/{job}/events")
            assert r.status_code == 429 and r.headers["retry-after"]
        for _ in range(100):  # the slot is released once the server notices the first stream closed
            async with c.stream("GET", f"/api/jobs/{job}/events") as again:
                if again.status_code == 200:
                    break
            await asyncio.sleep(0.05)
        assert again.status_code == 200
        assert (await c.post(f"/api/jobs/{job}/cancel")).json()["cancelled"] in (True, False)
