"""Health, metrics, problem details, jobs through the API on real executors."""

from __future__ import annotations

from tests.web.conftest import LiveAPI, diag_graph, echo_node, read_sse


async def test_health_reports_every_part(api: LiveAPI, executors) -> None:
    async with api.client() as c:
        r = await c.get("/health")
    assert r.status_code == 200
    body = r.json()
    assert body["checks"]["redis"]["ok"] and body["checks"]["postgres"]["ok"] and body["checks"]["store"]["ok"]
    assert body["checks"]["ollama"]["ok"] is False  # nothing listens on the test's Ollama URL
    assert body["status"] == "degraded"
    assert len(body["planes"]["control"]["executors"]) == 1 and len(body["planes"]["gpu"]["executors"]) == 1


async def test_unknown_route_is_problem_json(api: LiveAPI) -> None:
    async with api.client() as c:
        r = await c.get("/api/nope")
    assert r.status_code == 404
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["status"] == 404 and r.json()["hint"]


async def test_job_runs_and_streams(api: LiveAPI, executors) -> None:
    graph = diag_graph(echo_node("a", "hello"), echo_node("b", "gpu side", plane="gpu"))
    async with api.client() as c:
        r = await c.post("/api/jobs", json={"graph": graph})
        assert r.status_code == 202, r.text
        job_id = r.json()["id"]
        async with c.stream("GET", f"/api/jobs/{job_id}/events") as resp:
            assert resp.status_code == 200
            events = await read_sse(resp)
        assert events[-1]["event"] == "job" and events[-1]["data"]["status"] == "completed"
        r = await c.get(f"/api/jobs/{job_id}")
        assert r.json()["status"] == "completed"
        outputs = {n["id"]: n["output"] for n in r.json()["graph"]["nodes"]}
        assert outputs["a"]["text"] == "hello" and outputs["b"]["text"] == "gpu side"
        listing = (await c.get("/api/jobs")).json()
        assert [j["id"] for j in listing["items"]] == [job_id]
        metrics = (await c.get("/metrics")).text
    assert 'spinbot_http_requests_total{method="POST",route="/api/jobs",status="202"}' in metrics
    assert 'spinbot_jobs_current{status="completed"} 1.0' in metrics
    assert "spinbot_sse_streams_open 0.0" in metrics  # the stream above was counted and released


def test_without_keys_only_loopback_is_bound() -> None:
    from spinbot.settings import Settings
    from web.app import bind_host

    host, warning = bind_host(Settings(host="0.0.0.0", api_keys=[]))
    assert host == "127.0.0.1" and warning and "127.0.0.1 only" in warning
    host, warning = bind_host(Settings(host="127.0.0.1", api_keys=[]))
    assert host == "127.0.0.1" and warning and "loopback only" in warning
    assert bind_host(Settings(host="0.0.0.0", api_keys=["k"])) == ("0.0.0.0", None)


async def test_static_ui_and_spa_paths(api: LiveAPI) -> None:
    async with api.client() as c:
        index = await c.get("/")
        job_page = await c.get("/jobs/0123456789abcdef0123456789abcdef")
        script = await c.get("/js/app.js")
        traversal = await c.get("/..%2F..%2Fpyproject.toml")
    assert index.status_code == 200 and "<html" in index.text
    assert job_page.status_code == 200 and job_page.text == index.text
    assert script.status_code == 200 and "javascript" in script.headers["content-type"]
    assert traversal.status_code == 404


async def test_redis_outage_answers_503_with_retry_after(api_settings) -> None:
    from tests.web.conftest import serve

    dead = api_settings.model_copy(update={"redis_url": "redis://127.0.0.1:9/0"})
    async with serve(dead) as api, api.client() as c:
        job = await c.get("/api/jobs/0123456789abcdef0123456789abcdef")
        health = await c.get("/health")
    assert job.status_code == 503 and job.headers["retry-after"] and job.json()["code"] == "redis_unavailable"
    assert health.status_code == 503 and health.json()["checks"]["redis"]["ok"] is False
    assert health.json()["checks"]["postgres"]["ok"] is True
