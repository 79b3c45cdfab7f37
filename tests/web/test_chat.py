"""Native chat end to end: planning (replayed Ollama), the job on real executors, history in Postgres."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator
from typing import Any

import pytest

from spinbot.settings import Settings
from tests.web.conftest import LiveAPI, png_bytes, read_sse, serve, wav_bytes

PNG = base64.b64encode(png_bytes()).decode()


def diag_plan(seconds: float = 0.3, text: str = "hello") -> dict[str, Any]:
    """What the LLM answers: two diagnostic steps, the second wired to the first's output."""
    return {"steps": [
        {"id": "say", "service": "diag.echo", "params": {"text": text}, "inputs": {}},
        {"id": "wait", "service": "diag.wait", "params": {"seconds": seconds, "steps": 3},
         "inputs": {"text": "say.text"}},
    ]}


@pytest.fixture
async def chat_api(api_settings: Settings, fake_ollama) -> AsyncIterator[LiveAPI]:
    # the scripted model writes diagnostic plans directly (a capable model's answer)
    direct = {"ollama_url": fake_ollama.url, "planner_direct_plans": True}
    async with serve(api_settings.model_copy(update=direct)) as live:
        yield live


async def chat(c, **body: Any) -> list[dict[str, Any]]:
    async with c.stream("POST", "/api/chat", json=body) as resp:
        assert resp.status_code == 200, await resp.aread()
        return await read_sse(resp)


async def test_chat_plans_runs_and_answers(chat_api: LiveAPI, executors, fake_ollama) -> None:
    fake_ollama.replies.append(diag_plan())
    async with chat_api.client() as c:
        events = await chat(c, message="make a quick echo test")
        kinds = [e["event"] for e in events]
        assert kinds[0] == "conversation" and kinds[-1] == "done"
        for expected in ("planning", "plan", "job", "node", "progress", "message"):
            assert expected in kinds, (expected, kinds)
        assert kinds.index("plan") < kinds.index("job") < kinds.index("message")
        assert all(e["id"] for e in events)
        assert len({e["id"] for e in events}) == len(events)
        plan = next(e for e in events if e["event"] == "plan")["data"]
        assert [n["service"] for n in plan["graph"]["nodes"]] == ["diag.echo", "diag.wait"]
        assert plan["evaluation"]["ok"] is True
        done = events[-1]["data"]
        assert done["status"] == "completed" and done["job_id"]
        answer = "".join(e["data"]["delta"] for e in events if e["event"] == "message")
        assert "Done" in answer and f"/jobs/{done['job_id']}" in answer
        conv = (await c.get(f"/api/conversations/{done['conversation_id']}")).json()
    assert [m["role"] for m in conv["messages"]] == ["user", "assistant"]
    assert conv["messages"][1]["job_id"] == done["job_id"] and "Done" in conv["messages"][1]["content"]


async def test_follow_up_sees_the_conversation(chat_api: LiveAPI, executors, fake_ollama) -> None:
    fake_ollama.replies += [diag_plan(text="first"), diag_plan(text="second")]
    async with chat_api.client() as c:
        first = await chat(c, message="make an echo saying first")
        conv_id = first[0]["data"]["id"]
        second = await chat(c, message="make it say second instead", conversation_id=conv_id)
        assert second[0]["data"]["id"] == conv_id and second[-1]["data"]["status"] == "completed"
        conv = (await c.get(f"/api/conversations/{conv_id}")).json()
    assert [m["role"] for m in conv["messages"]] == ["user", "assistant", "user", "assistant"]
    prompt = fake_ollama.chat_requests[-1].messages
    said = " ".join(m["content"] for m in prompt)
    assert "make an echo saying first" in said  # the earlier turn is in the planner's prompt
    assert '"first"' in said or "first" in prompt[-1]["content"]  # and the previous plan


async def test_disconnect_does_not_cancel_the_job(chat_api: LiveAPI, executors, fake_ollama) -> None:
    fake_ollama.replies.append(diag_plan(seconds=1.0))
    async with chat_api.client() as c:
        async with c.stream("POST", "/api/chat", json={"message": "make a slow echo"}) as resp:
            seen = []
            async for ev in _events(resp):
                seen.append(ev)
                if ev["event"] == "job":
                    break  # the client goes away mid-job
        job_id = seen[-1]["data"]["job_id"]
        conv_id = seen[0]["data"]["id"]
        for _ in range(100):
            job = (await c.get(f"/api/jobs/{job_id}")).json()
            if job["status"] == "completed":
                break
            await asyncio.sleep(0.1)
        assert job["status"] == "completed"
        for _ in range(50):  # the turn still writes its answer
            conv = (await c.get(f"/api/conversations/{conv_id}")).json()
            if "Done" in conv["messages"][-1]["content"]:
                break
            await asyncio.sleep(0.1)
        assert "Done" in conv["messages"][-1]["content"]
        # And what it missed can be replayed from the last id it saw.
        async with c.stream("GET", f"/api/jobs/{job_id}/events", headers={"Last-Event-ID": seen[-1]["id"]}) as r:
            rest = await read_sse(r)
        assert rest[-1]["data"]["status"] == "completed" and rest[0]["id"] != seen[-1]["id"]


async def _events(resp) -> AsyncIterator[dict[str, Any]]:
    import json

    cur: dict[str, Any] = {"id": None, "event": "message", "data": []}
    async for line in resp.aiter_lines():
        if line == "":
            if cur["data"]:
                yield {"id": cur["id"], "event": cur["event"], "data": json.loads("\n".join(cur["data"]))}
            cur = {"id": None, "event": "message", "data": []}
        elif not line.startswith(":"):
            k, _, v = line.partition(": ")
            if k == "data":
                cur["data"].append(v)
            else:
                cur[k] = v


async def test_review_before_run_then_confirm(chat_api: LiveAPI, executors, fake_ollama) -> None:
    fake_ollama.replies.append(diag_plan())
    async with chat_api.client() as c:
        events = await chat(c, message="make an echo test", auto_run=False)
        kinds = [e["event"] for e in events]
        assert "plan" in kinds and "job" not in kinds
        graph = next(e for e in events if e["event"] == "plan")["data"]["graph"]
        conv_id = events[0]["data"]["id"]
        answer = "".join(e["data"]["delta"] for e in events if e["event"] == "message")
        assert "Press **Run**" in answer and "POST /api/jobs" not in answer  # said to a person, not a developer
        assert (await c.get("/api/jobs")).json()["items"] == []
        r = await c.post("/api/jobs", json={"graph": graph, "conversation_id": conv_id})
        assert r.status_code == 202
        conv = (await c.get(f"/api/conversations/{conv_id}")).json()
        message = conv["messages"][-1]
        assert message["job_id"] == r.json()["id"]
        assert "Press **Run**" not in message["content"] and f"Running as job `{r.json()['id']}`" in message["content"]
        # At the job's end the final answer with its links is stored in the turn (an API's turn sweep writes it).
        deadline = asyncio.get_running_loop().time() + 40
        while message.get("metadata", {}).get("status") is None:
            assert asyncio.get_running_loop().time() < deadline, message
            await asyncio.sleep(0.5)
            message = (await c.get(f"/api/conversations/{conv_id}")).json()["messages"][-1]
    assert message["metadata"]["status"] == "completed"
    text = message["content"]
    assert "Done:" in text and "Job page:" in text and "Running as" not in text


async def test_attachments_become_artifacts_in_the_graph(chat_api: LiveAPI, executors, fake_ollama) -> None:
    fake_ollama.replies.append(diag_plan())
    async with chat_api.client() as c:
        events = await chat(c, message="make an echo about this picture", auto_run=False,
                            attachments=[{"name": "me.png", "data": f"data:image/png;base64,{PNG}"}])
        plan = next(e for e in events if e["event"] == "plan")["data"]
        att = plan["graph"]["context"]["attachments"]
        assert len(att) == 1 and att[0]["kind"] == "image" and att[0]["key"].startswith("uploads/local/")
        got = await c.get(f"/api/artifacts/{att[0]['key']}")
        assert got.status_code == 200 and got.content == base64.b64decode(PNG)
        # The same as a multipart upload.
        r = await c.post("/api/chat", data={"message": "hello", "auto_run": "false"},
                         files={"files": ("a.wav", wav_bytes(), "audio/wav")})
        assert r.status_code == 200
        conv = (await c.get("/api/conversations")).json()["items"]
        detail = (await c.get(f"/api/conversations/{conv[0]['id']}")).json()
    assert detail["messages"][0]["attachments"][0]["kind"] == "audio"
    assert "sig=" in detail["messages"][0]["attachments"][0]["url"]


async def test_greeting_and_status_questions_need_no_job(chat_api: LiveAPI, executors, fake_ollama) -> None:
    async with chat_api.client() as c:
        hello = await chat(c, message="hello")
        assert "job" not in [e["event"] for e in hello] and hello[-1]["data"]["job_id"] is None
        assert fake_ollama.chat_requests == []
        fake_ollama.replies.append(diag_plan(seconds=1.0))
        async with c.stream("POST", "/api/chat", json={"message": "make a slow echo"}) as resp:
            async for ev in _events(resp):
                if ev["event"] == "job":
                    conv_id, job_id = None, ev["data"]["job_id"]
                    break
        conv_id = (await c.get("/api/conversations")).json()["items"][0]["id"]
        status = await chat(c, message="what's the progress?", conversation_id=conv_id)
    answer = "".join(e["data"]["delta"] for e in status if e["event"] == "message")
    assert job_id in answer and "%" in answer
    assert len(fake_ollama.chat_requests) == 1  # the status answer came from the job, not the LLM


async def test_bad_requests_are_problems(chat_api: LiveAPI) -> None:
    async with chat_api.client() as c:
        r = await c.post("/api/chat", json={"message": ""})
        assert r.status_code == 422 and r.headers["content-type"] == "application/problem+json"
        zipped = "data:application/zip;base64,UEsDBAAA"  # no picture, recording, video or text
        r = await c.post("/api/chat", json={"message": "x", "attachments": [{"data": zipped}]})
        assert r.status_code == 415
        r = await c.post("/api/chat", json={"message": "x", "conversation_id": "c_nope"})
        assert r.status_code == 404


async def test_spinbot_chat_client(chat_api: LiveAPI, executors, fake_ollama) -> None:
    import io

    from rich.console import Console

    from shell.client import EXIT_OK, EXIT_UNREACHABLE, chat_command

    fake_ollama.replies.append(diag_plan())
    out = io.StringIO()
    settings = chat_api.settings.model_copy(update={"api_url": chat_api.url})
    # a terminal 80 columns wide: lines are not cut there (a URL stays whole, to click or copy)
    code = await chat_command(settings, "make a quick echo test", console=Console(file=out, width=80, soft_wrap=True))
    text = out.getvalue()
    assert code == EXIT_OK, text
    assert "plan (2 steps" in text and "diag.wait" in text and "Done" in text
    job_urls = [line for line in text.splitlines() if "/jobs/" in line]
    assert len(job_urls) == 1 and job_urls[0].startswith("Job page: http"), text  # the job URL once, whole
    assert "attempt" not in text and "planning: " in text  # one reading attempt: not numbered
    gone = settings.model_copy(update={"api_url": "http://127.0.0.1:9"})
    assert await chat_command(gone, "x", console=Console(file=io.StringIO())) == EXIT_UNREACHABLE
