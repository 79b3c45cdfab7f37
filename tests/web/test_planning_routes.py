"""Capabilities, evaluation, planning and the fixed pipelines (which need no LLM) through the API."""

from __future__ import annotations

from tests.web.conftest import LiveAPI, diag_graph, echo_node, read_sse


async def test_capabilities_lists_live_services(api: LiveAPI, executors) -> None:
    async with api.client() as c:
        manifest = (await c.get("/api/capabilities")).json()
    assert {"diag.echo", "gpu.info", "capabilities.get_manifest"} <= set(manifest["services"])
    assert len(manifest["planes"]["control"]["executors"]) == 1 and manifest["planes"]["gpu"]["devices"]


async def test_evaluate_reports_findings(api: LiveAPI, executors) -> None:
    bad = diag_graph({"id": "x", "service": "no.such", "plane": "control", "params": {}})
    async with api.client() as c:
        verdict = (await c.post("/api/evaluate", json={"graph": bad})).json()
        good = (await c.post("/api/evaluate", json={"graph": diag_graph(echo_node("e"))})).json()
        refused = await c.post("/api/jobs", json={"graph": bad})
    assert verdict["ok"] is False and any(f["node"] == "x" for f in verdict["findings"])
    assert good["ok"] is True and good["estimate"]["duration_s"] >= 0
    assert refused.status_code == 422 and refused.json()["code"] == "graph_refused"
    assert refused.json()["findings"] and refused.json()["hint"]


async def test_capabilities_pipeline_runs_without_an_llm(api: LiveAPI, executors) -> None:
    async with api.client() as c:
        listed = (await c.get("/api/pipelines")).json()["items"]
        assert {"f5tts_infinitetalk", "sadtalker", "capabilities"} <= {p["name"] for p in listed}
        assert all("params_schema" in p for p in listed)
        r = await c.post("/api/pipelines/capabilities/runs", json={"params": {}})
        assert r.status_code == 202, r.text
        job = r.json()
        async with c.stream("GET", job["events_url"]) as resp:
            events = await read_sse(resp)
        assert events[-1]["data"]["status"] == "completed"
        detail = (await c.get(job["url"])).json()
        assert detail["pipeline"] == "capabilities"
        outputs = {n["service"]: n["output"] for n in detail["graph"]["nodes"]}
        assert "gpu.info" in outputs and "manifest" in outputs["capabilities.get_manifest"]
        bad = await c.post("/api/pipelines/sadtalker/runs", json={"params": {"speed": 5}})
        assert bad.status_code == 422 and bad.headers["content-type"] == "application/problem+json"
        missing = await c.post("/api/pipelines/nope/runs", json={"params": {}})
        assert missing.status_code == 404 and "capabilities" in missing.json()["hint"]


async def test_plan_without_ollama_falls_back(api: LiveAPI, executors) -> None:
    async with api.client() as c:
        r = await c.post("/api/plan", json={"goal": "make a 20 second talking head video about tides"})
        reply = await c.post("/api/plan", json={"goal": "hello"})
    body = r.json()
    assert r.status_code == 200 and body["kind"] == "plan" and body["fallback"] is True
    assert body["graph"]["nodes"] and body["evaluation"]["ok"] is True
    assert any(a.get("outcome") == "unavailable" for a in body["attempts"])  # Ollama is not reachable here
    assert reply.json()["kind"] == "reply" and reply.json()["reply"]


async def test_a_read_aloud_with_a_url_is_spoken(api: LiveAPI, executors) -> None:
    """Speech fetches nothing: the URL guard applies to the params a service fetches (its `fetches`), so words
    that contain a URL are planned, admitted and spoken as written."""
    goal = 'Read this aloud: "For help, visit https://example.com/help today."'
    async with api.client() as c:
        planned = (await c.post("/api/plan", json={"goal": goal})).json()
        assert planned["evaluation"]["ok"] is True, planned["evaluation"]
        speech = next(n for n in planned["graph"]["nodes"] if n["service"] == "tts.synthesize")
        assert "https://example.com/help" in speech["params"]["text"]
        async with c.stream("POST", "/api/chat", json={"message": goal}) as resp:
            events = await read_sse(resp)
    done = events[-1]["data"]
    assert done["status"] == "completed", [e for e in events if e["event"] in ("error", "plan", "node")][-3:]


async def test_a_pipeline_runs_portrait_names_an_uploaded_image(api: LiveAPI, executors) -> None:
    """`portrait` names an image of the run by its upload key, upload id, or file name (each attachment in a run
    used to get a new random id, which no client could know in advance)."""
    import base64

    from tests.web.conftest import png_bytes

    async with api.client() as c:
        sent = await c.post("/api/uploads", files={"files": ("me.png", png_bytes(), "image/png")})
        upload = sent.json()["items"][0]
        data = "data:image/png;base64," + base64.b64encode(png_bytes(48)).decode()
        ways = [
            {"params": {"text": "Hello there.", "portrait": upload["key"]}},  # attached by naming it
            {"params": {"text": "Hello there.", "portrait": upload["id"]}, "attachments": [{"key": upload["key"]}]},
            {"params": {"text": "Hello there.", "portrait": "face.png"},
             "attachments": [{"name": "face.png", "data": data}]},
        ]
        jobs = []
        for body in ways:
            r = await c.post("/api/pipelines/sadtalker/runs", json=body)
            assert r.status_code == 202, (body, r.text)
            jobs.append(r.json()["id"])
        unknown = await c.post("/api/pipelines/sadtalker/runs",
                               json={"params": {"text": "Hi.", "portrait": "nobody.png"}})
        assert unknown.status_code == 422 and "file name" in unknown.json()["hint"]
        graph = (await c.get(f"/api/jobs/{jobs[0]}")).json()["graph"]
        talk = next(n for n in graph["nodes"] if n["id"] == "talk")
        assert talk["params"]["image"] == {"$attachment": upload["id"]}
        assert [a["key"] for a in graph["context"]["attachments"]] == [upload["key"]]
        assert not any(n["service"] == "image.render" for n in graph["nodes"])  # the upload, not a drawing
        async with c.stream("GET", f"/api/jobs/{jobs[0]}/events") as resp:
            events = await read_sse(resp)
    assert events[-1]["data"]["status"] == "completed", events[-3:]


async def test_plan_shows_the_plan_checked_against_the_request(api: LiveAPI, executors) -> None:
    """Issue 20: a length the plan cannot meet is a finding in /api/plan; an operation no service offers is a
    reply that names it, with no graph."""
    async with api.client() as c:
        planned = (await c.post("/api/plan", json={"goal": "a 20-second video about whales"})).json()
        declined = (await c.post("/api/plan", json={"goal": "transcribe my last meeting"})).json()
    codes = [f["code"] for f in planned["evaluation"]["findings"]]
    assert "request_length" in codes and "20 s" in planned["message"]
    assert declined["kind"] == "reply" and declined.get("graph") is None and "transcribe" in declined["reply"]
