"""/v1 as Open WebUI uses it: signed job links, attached files, Stop, Continue, answer details, long input."""

from __future__ import annotations

import asyncio
import base64
import json
import re
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from conversation.answers import answer_for
from conversation.auth import LinkSigner
from spinbot.queue import JobState
from spinbot.settings import Settings
from spinbot.units import size_text
from tests.web.conftest import LiveAPI, png_bytes, serve, wait_node
from tests.web.test_chat import diag_plan
from web.v1_request import CompletionRequest, attached_files, split_request

KEY = "owui-key"
AUTH = {"Authorization": f"Bearer {KEY}"}
OWUI = {"X-OpenWebUI-Chat-Id": "chat-1", "X-OpenWebUI-User-Id": "u1"}
PNG = "data:image/png;base64," + base64.b64encode(png_bytes()).decode()
SIGNED_PAGE = re.compile(r"(https?://[^\s)]+)/jobs/([0-9a-f]{32})\?(exp=\d+&sig=[\w-]+)")


@pytest.fixture
def owui_settings(api_settings: Settings, fake_ollama: Any) -> Settings:
    # The scripted model writes diagnostic plans directly (a capable model's answer); one key, as Open WebUI has.
    return api_settings.model_copy(update={"ollama_url": fake_ollama.url, "planner_direct_plans": True,
                                           "api_keys": [KEY]})


@pytest.fixture
async def owui_api(owui_settings: Settings) -> AsyncIterator[LiveAPI]:
    async with serve(owui_settings) as live:
        yield live


def ask(text: str, **extra: Any) -> dict[str, Any]:
    return {"model": "spinbot", "messages": [{"role": "user", "content": text}], **extra}


async def answer(api: LiveAPI, body: dict[str, Any], headers: dict[str, str] | None = None) -> str:
    async with api.client(KEY) as c:
        r = await c.post("/v1/chat/completions", json=body, headers=headers or {}, timeout=60)
    assert r.status_code == 200, r.text
    return str(r.json()["choices"][0]["message"]["content"])


async def stream_chunks(api: LiveAPI, body: dict[str, Any], headers: dict[str, str] | None = None
                        ) -> list[dict[str, Any]]:
    async with api.client(KEY) as c, c.stream("POST", "/v1/chat/completions", json=body | {"stream": True},
                                               headers=headers or {}, timeout=60) as resp:
        assert resp.status_code == 200, await resp.aread()
        raw = (await resp.aread()).decode()
    assert raw.rstrip().endswith("data: [DONE]")
    return [json.loads(ln[6:]) for ln in raw.splitlines() if ln.startswith("data: {")]


def content_of(chunks: list[dict[str, Any]], part: str = "content") -> str:
    return "".join(c["choices"][0]["delta"].get(part) or "" for c in chunks if c.get("choices"))


async def job_status(api: LiveAPI, job_id: str, want: set[str], timeout_s: float = 20.0) -> str:
    status = ""
    deadline = time.monotonic() + timeout_s
    async with api.client(KEY) as c:
        while time.monotonic() < deadline:
            status = (await c.get(f"/api/jobs/{job_id}")).json()["status"]
            if status in want:
                return status
            await asyncio.sleep(0.1)
    raise AssertionError(f"job {job_id} is {status}, not one of {want}")


# ---- 1. signed, read-only job-page links -------------------------------------------------------------


def test_job_links_are_signed_apart_from_artifact_links(tmp_path: Any) -> None:
    links = LinkSigner(b"s" * 32, ttl_s=60)
    job = "0123456789abcdef0123456789abcdef"
    exp, sig = (p.split("=", 1)[1] for p in links.job_query(job).split("&"))
    assert links.verify_job(job, exp, sig)
    assert not links.verify(job, exp, sig)  # a job link is not an artifact link of the same name
    assert not links.verify_job("f" * 32, exp, sig)  # nor a link to another job
    a_exp, a_sig = (p.split("=", 1)[1] for p in links.query(job).split("&"))
    assert not links.verify_job(job, a_exp, a_sig)  # nor the other way round
    old = links.job_query(job, now=time.time() - 120)  # expired a minute ago
    o_exp, o_sig = (p.split("=", 1)[1] for p in old.split("&"))
    assert not links.verify_job(job, o_exp, o_sig)


async def test_answers_link_a_signed_job_page_that_reads_without_a_key(owui_api: LiveAPI, executors: Any,
                                                                      fake_ollama: Any) -> None:
    fake_ollama.replies.append(diag_plan())
    text = await answer(owui_api, ask("make a quick echo test"))
    m = SIGNED_PAGE.search(text)
    assert m and "Job page:" in text, text
    base, job_id, query = m.groups()
    assert base == owui_api.url and not re.search(rf"/jobs/{job_id}(?!\?exp=)", text)  # never the bare page
    async with httpx.AsyncClient(base_url=owui_api.url, timeout=30) as anon:  # a browser without the key
        page = await anon.get(f"/jobs/{job_id}?{query}")
        assert page.status_code == 200 and "<html" in page.text.lower()
        job = await anon.get(f"/api/jobs/{job_id}?{query}")
        assert job.status_code == 200, job.text
        assert job.json()["status"] == "completed" and job.json()["graph"]["nodes"]
        async with anon.stream("GET", f"/api/jobs/{job_id}/events?{query}") as events:
            assert events.status_code == 200
            body = (await events.aread()).decode()
        assert '"status":"completed"' in body.replace(" ", "")
        # Read-only: no cancelling, no other job, no tampering, nothing without the signature.
        assert (await anon.post(f"/api/jobs/{job_id}/cancel?{query}")).status_code == 401
        assert (await anon.get(f"/api/jobs/{'f' * 32}?{query}")).status_code == 401
        assert (await anon.get(f"/api/jobs/{job_id}?{query[:-2]}xx")).status_code == 401
        bare = await anon.get(f"/api/jobs/{job_id}")
        assert bare.status_code == 401
        assert (await anon.get("/api/jobs")).status_code == 401
        expired = await anon.get(f"/api/jobs/{job_id}?exp=1&sig=abc")
        assert expired.status_code == 401 and "expired" in expired.json()["detail"]
    async with owui_api.client(KEY) as c:  # the key still reads it as always
        assert (await c.get(f"/api/jobs/{job_id}")).status_code == 200


async def test_signed_events_carry_playable_artifact_urls(owui_api: LiveAPI, executors: Any) -> None:
    async with owui_api.client(KEY) as c:
        speak = {"id": "v", "service": "tts.synthesize", "plane": "gpu", "params": {"text": "A signed page plays it."}}
        r = await c.post("/api/jobs", json={"graph": {"schema": "langgraph.v1", "workflowId": "t", "nodes": [speak]}})
        assert r.status_code == 202, r.text
        job_id = r.json()["id"]
    query = owui_api.services.links.job_query(job_id)
    async with httpx.AsyncClient(base_url=owui_api.url, timeout=60) as anon:
        async with anon.stream("GET", f"/api/jobs/{job_id}/events?{query}") as events:
            body = (await events.aread()).decode()
        artifacts = [json.loads(ln[6:]) for ln in body.splitlines()
                     if ln.startswith("data: ") and '"contentType"' in ln and '"key"' in ln]
        assert artifacts, body
        url = artifacts[0]["url"]
        assert "sig=" in url
        audio = await anon.get(url)
        assert audio.status_code == 200 and audio.content[:4] == b"RIFF"


# ---- 2. Open WebUI's attached-files block ------------------------------------------------------------

BLOCK = ('<attached_files>\n<file type="file" id="f-1" url="/api/v1/files/f-1/content" content_type="image/png" '
         'name="face.png"/>\n</attached_files>\n\n')


def test_attached_files_block_is_read_and_stripped() -> None:
    text, files = attached_files(BLOCK + "make her say: hello from the garden")
    assert text == "make her say: hello from the garden"
    assert files == [{"type": "file", "id": "f-1", "url": "/api/v1/files/f-1/content", "content_type": "image/png",
                      "name": "face.png"}]
    pdf = BLOCK.replace("face.png", "notes.pdf").replace("image/png", "application/pdf")
    body = CompletionRequest.model_validate({"model": "spinbot", "messages": [
        {"role": "user", "content": BLOCK + "earlier words"},
        {"role": "assistant", "content": "ok"},
        {"role": "user", "content": [{"type": "text", "text": BLOCK + pdf}, {"type": "text", "text": "animate her"},
                                     {"type": "image_url", "image_url": {"url": PNG}}]}]})
    asked = split_request(body, 10**7)
    assert asked.goal == "animate her"
    assert [a.name for a in asked.images] == ["face.png"]  # the image_url part, once, under its file's name
    assert asked.unread == ["notes.pdf"]
    assert asked.history[0]["content"] == "earlier words"  # history is stripped too


async def test_an_attached_image_is_used_and_the_block_is_not_the_goal(api: LiveAPI, executors: Any) -> None:
    """No LLM: the rules read the goal; the portrait says the user's words, not "file"."""
    words = "hello from the garden"
    content = [{"type": "text", "text": BLOCK}, {"type": "text", "text": f'make her say "{words}"'},
               {"type": "image_url", "image_url": {"url": PNG}}]
    async with api.client() as c:
        r = await c.post("/v1/chat/completions", headers=OWUI, timeout=60, json={
            "model": "spinbot-plan", "messages": [{"role": "user", "content": content}]})
        assert r.status_code == 200, r.text
        text = r.json()["choices"][0]["message"]["content"]
        convs = (await c.get("/api/conversations")).json()
    graph = json.loads(text.split("```json", 1)[1].split("```", 1)[0])
    assert graph["context"]["goal"] == f'make her say "{words}"'
    attachments = graph["context"]["attachments"]
    assert len(attachments) == 1 and attachments[0]["kind"] == "image" and "face" in attachments[0]["name"]
    params = json.dumps([n["params"] for n in graph["nodes"]])
    assert words in params and "attached_files" not in params and "file" not in json.dumps(
        [n["params"].get("text") for n in graph["nodes"]])
    assert attachments[0]["id"] in json.dumps(graph["nodes"])  # the plan uses the image
    titles = [cv["title"] for cv in (convs.get("items") or convs.get("conversations") or convs)]
    assert titles and all("attached" not in t and "<" not in t for t in titles)


async def test_a_file_sent_only_as_a_link_is_named_in_the_answer(api: LiveAPI, executors: Any) -> None:
    pdf = BLOCK.replace("face.png", "notes.pdf").replace("image/png", "application/pdf")
    async with api.client() as c:
        r = await c.post("/v1/chat/completions", timeout=60, json={"model": "spinbot-plan", "messages": [
            {"role": "user", "content": pdf + 'say "the notes are attached"'}]})
    text = r.json()["choices"][0]["message"]["content"]
    assert "notes.pdf" in text and "Open WebUI sent only a link" in text


# ---- 3. Stop cancels; limits in a chat user's words ---------------------------------------------------


async def read_until_job(resp: httpx.Response) -> str:
    async for line in resp.aiter_lines():
        if m := re.search(r"Job `([0-9a-f]{32})`", line):
            return m.group(1)
    raise AssertionError("the stream ended before its job started")


async def test_stop_cancels_the_job(owui_api: LiveAPI, executors: Any, fake_ollama: Any) -> None:
    fake_ollama.replies.append(diag_plan(seconds=8.0))
    async with owui_api.client(KEY) as c:
        async with c.stream("POST", "/v1/chat/completions", json=ask("a slow echo", stream=True), headers=OWUI,
                            timeout=60) as resp:
            job_id = await read_until_job(resp)
        # Leaving the block closed the connection, as Open WebUI's Stop does.
    assert await job_status(owui_api, job_id, {"cancelled", "completed", "failed"}) == "cancelled"


async def test_stop_cancels_a_non_streaming_answer_too(owui_api: LiveAPI, executors: Any, fake_ollama: Any) -> None:
    fake_ollama.replies.append(diag_plan(seconds=8.0))
    async with owui_api.client(KEY) as c:
        with pytest.raises(httpx.ReadTimeout):
            await c.post("/v1/chat/completions", json=ask("a slow echo"), timeout=2.5)
        jobs = (await c.get("/api/jobs")).json()["items"]
    assert len(jobs) == 1
    assert await job_status(owui_api, jobs[0]["id"], {"cancelled", "completed", "failed"}) == "cancelled"


async def test_the_setting_keeps_the_job_running(owui_settings: Settings, executors: Any, fake_ollama: Any) -> None:
    fake_ollama.replies.append(diag_plan(seconds=1.5))
    async with serve(owui_settings.model_copy(update={"v1_cancel_on_disconnect": False})) as api:
        async with api.client(KEY) as c, c.stream("POST", "/v1/chat/completions", json=ask("a slow echo", stream=True),
                                                  timeout=60) as resp:
            job_id = await read_until_job(resp)
        assert await job_status(api, job_id, {"cancelled", "completed", "failed"}) == "completed"


async def test_the_job_limit_is_worded_for_a_chat_user(owui_settings: Settings, executors: Any,
                                                       fake_ollama: Any) -> None:
    fake_ollama.replies.append(diag_plan())
    async with serve(owui_settings.model_copy(update={"max_jobs_per_key": 1})) as api:
        async with api.client(KEY) as c:
            r = await c.post("/api/jobs", json={"graph": {"schema": "langgraph.v1", "workflowId": "busy",
                                                          "nodes": [wait_node("w", 5.0)]}})
            assert r.status_code == 202, r.text
            text = content_of(await stream_chunks(api, ask("make a quick echo test"), OWUI))
            await c.post(f"/api/jobs/{r.json()['id']}/cancel")
    assert "press Stop" in text and "already running 1 jobs" in text
    assert "/api/" not in text and "POST" not in text


# ---- 5. Continue, answer details, status lines --------------------------------------------------------


async def test_continue_resumes_the_same_job(owui_settings: Settings, executors: Any, fake_ollama: Any) -> None:
    fake_ollama.replies.append(diag_plan(seconds=3.0))
    async with serve(owui_settings.model_copy(update={"chat_job_limit_s": 0.5})) as api:
        user = {"role": "user", "content": "make a slow echo"}
        first = await answer(api, {"model": "spinbot", "messages": [user]})
        assert "keeps running" in first
        job_id = SIGNED_PAGE.search(first).group(2)  # type: ignore[union-attr]
        # Open WebUI's "Continue response" sends the answer so far as the last message.
        more = {"model": "spinbot", "messages": [user, {"role": "assistant", "content": first}]}
        async with serve(owui_settings.model_copy(update={"chat_job_limit_s": 20.0})) as patient:
            chunks = await stream_chunks(patient, more, OWUI)
        rest = content_of(chunks)
        assert rest.startswith("\n\nDone:")  # appended to the answer so far and f"/jobs/{job_id}?" in rest
        assert f"Job `{job_id}`" in content_of(chunks, "reasoning_content")
        async with api.client(KEY) as c:
            assert [j["id"] for j in (await c.get("/api/jobs")).json()["items"]] == [job_id]  # nothing re-ran
        assert len(fake_ollama.chat_requests) == 1  # nothing was planned again
        # A "keeps running" answer continued after its job ended gets the final answer at once.
        late = await answer(api, more)
        assert late.lstrip().startswith("Done:")
        # Continuing a finished answer adds no second copy of it.
        again = await answer(api, {"model": "spinbot", "messages": [
            user, {"role": "assistant", "content": first + "\n\n" + rest}]})
        assert "complete" in again and "Done:" not in again


async def test_continue_after_stop_follows_the_job_that_still_runs(owui_settings: Settings, executors: Any,
                                                                  fake_ollama: Any) -> None:
    """Open WebUI's Continue after Stop resends the chat without the stopped answer: the same request again."""
    fake_ollama.replies.append(diag_plan(seconds=2.0))
    async with serve(owui_settings.model_copy(update={"v1_cancel_on_disconnect": False})) as api:
        body = ask("a slow echo", stream=True)
        async with api.client(KEY) as c, c.stream("POST", "/v1/chat/completions", json=body, headers=OWUI,
                                                  timeout=60) as resp:
            job_id = await read_until_job(resp)
        rest = content_of(await stream_chunks(api, body, OWUI))
        assert rest.startswith("\n\nDone:") and f"/jobs/{job_id}?" in rest
        async with api.client(KEY) as c:
            assert [j["id"] for j in (await c.get("/api/jobs")).json()["items"]] == [job_id]
    assert len(fake_ollama.chat_requests) == 1


async def test_status_lines_are_not_repeated(owui_api: LiveAPI, executors: Any, fake_ollama: Any) -> None:
    fake_ollama.replies.append(diag_plan())
    chunks = await stream_chunks(owui_api, ask("make a quick echo test"), OWUI)
    status = [c["event"]["data"]["description"] for c in chunks if "event" in c]
    assert status[0] == "Understanding the goal…" and status[-1] == "Done"
    assert status.count("Planning…") == 1
    assert all(a != b for a, b in zip(status, status[1:], strict=False)), status
    assert status.index("Planning…") < status.index("Plan ready: 2 steps") < status.index("0% · running")
    reasoning = content_of(chunks, "reasoning_content")
    assert "Planning: done" in reasoning and "done (attempt" not in reasoning


def _state(graph: dict[str, Any], status: str = "completed") -> JobState:
    return JobState(id="a" * 32, status=status, progress=1.0, plane=None, version=3, owner="o", graph=graph,
                    error=None, created=0.0, updated=0.0)


def test_answer_keeps_images_out_of_bullets_and_sizes_small_files_in_kb(tmp_path: Any) -> None:
    graph = {"nodes": [
        {"id": "voice", "service": "tts.synthesize", "status": "completed",
         "output": {"audio": {"key": "jobs/x/voice/a.wav", "contentType": "audio/wav", "size": 45_310}}},
        {"id": "face", "service": "image.render", "status": "completed",
         "output": {"image": {"key": "jobs/x/face/p.png", "contentType": "image/png", "size": 80_000}}},
        {"id": "talk", "service": "video.talking_head", "status": "completed",
         "output": {"video": {"key": "jobs/x/talk/v.mp4", "contentType": "video/mp4", "size": 2_400_000}}},
    ]}

    class Svc:
        links = LinkSigner(b"k" * 32, 60)

    text = answer_for(_state(graph), "a" * 32, "http://h", Svc())  # type: ignore[arg-type]
    lines = text.splitlines()
    image = next(i for i, ln in enumerate(lines) if ln.startswith("!["))
    assert lines[image - 1] == "" and not lines[image - 1].startswith("- ")  # its own paragraph, not in a bullet
    # kinds in words, sizes counted as the settings count them (1 KB = 1024 bytes), as the web UI's cards say
    assert "(WAV audio file, 44 KB)" in text and "(MP4 video, 2.3 MB)" in text and "0.0 MB" not in text
    assert re.search(r"Job page: http://h/jobs/a{32}\?exp=\d+&sig=", text)
    assert [size_text(n) for n in (512, 1_499, 1_048_000, 1_048_576)] == ["512 bytes", "1 KB", "1023 KB", "1.0 MB"]


# ---- 6. over-long input -------------------------------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True])
async def test_over_long_input_says_the_limit(owui_api: LiveAPI, fake_ollama: Any, stream: bool) -> None:
    body = ask("x" * 31_517)
    text = content_of(await stream_chunks(owui_api, body)) if stream else await answer(owui_api, body)
    assert "31,517 characters" in text and "20,000" in text
    assert fake_ollama.chat_requests == []


async def test_a_long_earlier_message_does_not_break_the_turn(owui_api: LiveAPI, executors: Any,
                                                              fake_ollama: Any) -> None:
    fake_ollama.replies.append(diag_plan())
    text = await answer(owui_api, {"model": "spinbot-plan", "messages": [
        {"role": "user", "content": "y" * 25_000}, {"role": "assistant", "content": "z" * 30_000},
        {"role": "user", "content": "make an echo test"}]})
    assert "I planned this" in text, text
