"""HTTP as clients expect it: HEAD, CORS, 404 for unknown paths, bounded JSON depth, 4xx for malformed query
values, conditional requests on artifacts (issue 22, items 16-21)."""

from __future__ import annotations

import json

import httpx

from spinbot.settings import Settings
from tests.web.conftest import LiveAPI, diag_graph, echo_node, serve, wav_bytes

DATA = wav_bytes()


async def _upload(c: httpx.AsyncClient) -> str:
    r = await c.post("/api/uploads", files={"files": ("clip.wav", DATA, "audio/wav")})
    assert r.status_code == 201, r.text
    return str(r.json()["items"][0]["key"])


async def test_head_is_answered_wherever_get_is(api: LiveAPI) -> None:
    async with api.client() as c:
        key = await _upload(c)
        job = (await c.post("/api/jobs", json={"graph": diag_graph(echo_node("e"))})).json()["id"]
        for path in ("/health", "/", "/v1/models", "/api/jobs", "/api/capabilities", "/openapi.json", "/jobs",
                     f"/api/jobs/{job}", f"/api/artifacts/{key}", "/api/profiles", "/no/such/page"):
            get = await c.get(path)
            head = await c.head(path)
            assert head.status_code == get.status_code, (path, head.status_code, get.status_code)
            assert head.content == b"", path
            assert head.headers.get("content-type") == get.headers.get("content-type"), path
            if "content-length" in get.headers and path != "/health":  # /health's figures change between calls
                assert head.headers["content-length"] == get.headers["content-length"], path
        # a stream answers its headers and ends (HEAD never waits for events)
        head = await c.head(f"/api/jobs/{job}/events", timeout=5)
        assert head.status_code == 200 and head.headers["content-type"].startswith("text/event-stream")


async def test_cors_is_off_by_default_and_from_the_setting(api_settings: Settings) -> None:
    preflight = {"Origin": "https://chat.example", "Access-Control-Request-Method": "POST",
                 "Access-Control-Request-Headers": "authorization, content-type, x-stainless-lang"}
    async with serve(api_settings) as api, api.client() as c:
        r = await c.options("/v1/chat/completions", headers=preflight)
        assert "access-control-allow-origin" not in r.headers
    allowed = api_settings.model_copy(update={"cors_origins": ["https://chat.example"], "api_keys": ["k1"]})
    async with serve(allowed) as api, api.client("k1") as c:
        r = await c.options("/v1/chat/completions", headers=preflight)
        assert r.status_code == 200, r.text
        assert r.headers["access-control-allow-origin"] == "https://chat.example"
        assert "POST" in r.headers["access-control-allow-methods"]
        assert "x-stainless-lang" in r.headers["access-control-allow-headers"].lower()
        r = await c.get("/v1/models", headers={"Origin": "https://chat.example"})
        assert r.status_code == 200 and r.headers["access-control-allow-origin"] == "https://chat.example"
        assert "content-range" in r.headers["access-control-expose-headers"].lower()  # video seeking from a page
        # error answers carry it too, so browser code can read them: a 401, a 422 from a middleware
        async with api.client() as anonymous:
            r = await anonymous.get("/v1/models", headers={"Origin": "https://chat.example"})
            assert r.status_code == 401 and r.headers["access-control-allow-origin"] == "https://chat.example"
        r = await c.post("/v1/chat/completions", content=b"[" * 100 + b"]" * 100,
                         headers={"Origin": "https://chat.example", "content-type": "application/json"})
        assert r.status_code == 422 and r.headers["access-control-allow-origin"] == "https://chat.example"
        # another origin gets no grant
        r = await c.options("/v1/chat/completions", headers={**preflight, "Origin": "https://evil.example"})
        assert r.status_code == 400 and "access-control-allow-origin" not in r.headers
        r = await c.get("/v1/models", headers={"Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in r.headers


async def test_other_methods_on_unknown_paths_are_404(api: LiveAPI) -> None:
    async with api.client() as c:
        for method, path in (("POST", "/v1//chat/completions"), ("POST", "/api/jobz"), ("PUT", "/nope"),
                             ("DELETE", "/v1/chat/completion"), ("PATCH", "/api/conversations/x/y/z"),
                             ("POST", "/"), ("OPTIONS", "/anything")):
            r = await c.request(method, path, json={})
            assert r.status_code == 404, (method, path, r.status_code, r.text)
            assert r.headers["content-type"] == "application/problem+json", (method, path)
        # a wrong method on a route that exists is still 405
        r = await c.put("/api/jobs", json={})
        assert r.status_code == 405, r.text
        r = await c.delete("/v1/chat/completions")
        assert r.status_code == 405, r.text


async def test_json_nesting_is_bounded_at_the_door(api: LiveAPI) -> None:
    async with api.client() as c:
        for depth in (100, 500, 5_000, 200_000):
            for path in ("/api/jobs", "/v1/chat/completions", "/api/plan", "/api/evaluate", "/api/chat"):
                body = b'{"graph": ' + b"[" * depth + b"]" * depth + b"}"
                r = await c.post(path, content=body, headers={"content-type": "application/json"})
                assert r.status_code == 422, (depth, path, r.status_code, r.text[:300])
                assert r.json()["code"] == "json_too_deep" and "64" in r.json()["detail"], r.json()
        # objects nest the same way; brackets inside strings are text, not depth
        deep_objects = json.dumps({"graph": json.loads('{"a":' * 100 + "1" + "}" * 100)})
        r = await c.post("/api/evaluate", content=deep_objects, headers={"content-type": "application/json"})
        assert r.status_code == 422 and r.json()["code"] == "json_too_deep"
        text = '[[{"x": "\\"' * 300
        graph = diag_graph(echo_node("e", text=text))
        r = await c.post("/api/evaluate", json={"graph": graph})
        assert r.status_code == 200, r.text


async def test_malformed_query_values_are_4xx(api_settings: Settings) -> None:
    keyed = api_settings.model_copy(update={"api_keys": ["k1"]})
    huge = "9" * 5_000
    async with serve(keyed) as api, api.client("k1") as c:
        key = await _upload(c)
        job = (await c.post("/api/jobs", json={"graph": diag_graph(echo_node("e"))})).json()["id"]
        async with api.client() as anonymous:
            for exp in (huge, "²", "١٢٣٤٥٦٧٨٩٠", "-1", "1e9", "1_700_000_000", " 1", ""):
                for path in (f"/api/artifacts/{key}", f"/api/jobs/{job}", f"/jobs/{job}"):
                    r = await anonymous.get(path, params={"exp": exp, "sig": "x" * 24})
                    expected = 200 if path.startswith("/jobs/") else 401  # the UI page itself is public
                    assert r.status_code == expected, (path, exp, r.status_code, r.text)
        for after in (huge, "99999999999999999999999", "18446744073709551616-0", "١-0", "1_0", "-5", "1-2-3",
                      "0x10", "1-" + huge):
            async with c.stream("GET", f"/api/jobs/{job}/events", params={"after": after}, timeout=10) as r:
                assert r.status_code == 200, (after, r.status_code)
                async for line in r.aiter_lines():
                    assert "redis_unavailable" not in line, (after, line)
                    if line.startswith("event:"):
                        break  # it resumes from the start: the job's events follow
        for path, params in (("/api/jobs", {"limit": huge}), ("/api/jobs", {"limit": "²"}),
                             ("/api/jobs", {"before": "99999-01-01T00:00:00Z"}), ("/api/jobs", {"before": huge}),
                             ("/api/conversations", {"limit": "-1"}), ("/health", {"ready": huge}),
                             ("/api/jobs", {"before": "2024-01-01T00:00:00\u00b2"})):
            r = await c.get(path, params=params)
            assert 400 <= r.status_code < 500, (path, params, r.status_code, r.text)
        # valid at the edges of what a timestamp holds: an answer, never a 500
        for before in ("0001-01-01T00:00:00-23:59", "9999-12-31T23:59:59-23:59", "0001-01-01T00:00:00+23:59"):
            for path in ("/api/jobs", "/api/conversations"):
                r = await c.get(path, params={"before": before})
                assert r.status_code < 500, (path, before, r.status_code, r.text)


async def test_conditional_requests_on_artifacts(api: LiveAPI) -> None:
    async with api.client() as c:
        key = await _upload(c)
        first = await c.get(f"/api/artifacts/{key}")
        etag = first.headers["etag"]
        assert etag.startswith('"') and first.content == DATA
        for match in (etag, f"W/{etag}", "*", f'"other", {etag}'):
            r = await c.get(f"/api/artifacts/{key}", headers={"If-None-Match": match})
            assert r.status_code == 304 and r.content == b"" and r.headers["etag"] == etag, match
        r = await c.get(f"/api/artifacts/{key}", headers={"If-None-Match": '"other"'})
        assert r.status_code == 200 and r.content == DATA
        # If-Range: a current strong validator gets the range; anything else, the whole file with 200
        r = await c.get(f"/api/artifacts/{key}", headers={"Range": "bytes=0-9", "If-Range": etag})
        assert r.status_code == 206 and r.content == DATA[:10]
        for stale in ('"0123"', f"W/{etag}", "Wed, 21 Oct 2015 07:28:00 GMT", "garbage"):
            r = await c.get(f"/api/artifacts/{key}", headers={"Range": "bytes=0-9", "If-Range": stale})
            assert r.status_code == 200 and r.content == DATA and "content-range" not in r.headers, stale
