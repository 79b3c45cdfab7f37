"""What the API says to a person: a stopped job's progress is what completed; a blank message is refused
(not an "Untitled" conversation); a too-large upload is refused with its real size and name; a follow-up's
job is listed under its own goal."""

from __future__ import annotations

import asyncio
from typing import Any

from tests.harness import InProcess
from tests.web.conftest import LiveAPI, echo_node, read_sse
from tests.web.test_chat import chat_api, diag_plan  # noqa: F401  (a fixture)
from web.limits import MB


async def finished(c: Any, job_id: str) -> dict[str, Any]:
    for _ in range(300):
        job = (await c.get(f"/api/jobs/{job_id}")).json()
        if job["status"] in ("completed", "failed", "cancelled"):
            return dict(job)
        await asyncio.sleep(0.05)
    raise AssertionError(f"job {job_id} did not finish")


async def test_failed_and_cancelled_jobs_show_what_completed(api: LiveAPI, executors: InProcess) -> None:
    half = {"schema": "langgraph.v1", "workflowId": "half", "nodes": [
        echo_node("first") | {"progressWeight": 0.5},
        {"id": "boom", "service": "diag.fail", "plane": "gpu", "progressWeight": 0.5,
         "params": {"mode": "permanent"}}], "edges": [{"from": "first", "to": "boom"}]}
    never = {"schema": "langgraph.v1", "workflowId": "never", "nodes": [
        {"id": "w", "service": "diag.wait", "plane": "control", "params": {"seconds": 30, "steps": 30}}]}
    async with api.client() as c:
        failed_id = (await c.post("/api/jobs", json={"graph": half})).json()["id"]
        failed = await finished(c, failed_id)
        cancelled_id = (await c.post("/api/jobs", json={"graph": never})).json()["id"]
        await asyncio.sleep(0.5)
        await c.post(f"/api/jobs/{cancelled_id}/cancel")
        cancelled = await finished(c, cancelled_id)
        await asyncio.sleep(0.3)  # the terminal row is written
        listed = {j["id"]: j for j in (await c.get("/api/jobs")).json()["items"]}
    assert failed["status"] == "failed" and failed["progress"] == 0.5, failed["progress"]
    assert cancelled["status"] == "cancelled" and cancelled["progress"] == 0.0
    assert listed[failed_id]["progress"] == 0.5 and listed[cancelled_id]["progress"] == 0.0


async def test_a_blank_message_is_refused(api: LiveAPI) -> None:
    async with api.client() as c:
        r = await c.post("/api/chat", json={"message": "  \n\t "})
        assert r.status_code == 422, r.text
        assert "only whitespace" in r.json()["errors"][0]["msg"]
        form = await c.post("/api/chat", data={"message": "   "})
        assert form.status_code == 422
        assert (await c.get("/api/conversations")).json()["items"] == []  # no "Untitled" conversation


async def test_a_too_large_upload_is_refused_with_its_real_size(api: LiveAPI) -> None:
    size = int(30.7 * MB)
    async with api.client() as c:
        r = await c.post("/api/uploads", files={"files": ("holiday.wav", b"\0" * size, "audio/wav")})
    assert r.status_code == 413, r.text
    detail = r.json()["detail"]
    assert detail.startswith("holiday.wav is 30.7 MB; the limit is 20.0 MB"), detail


async def test_a_follow_up_job_is_listed_under_its_own_goal(chat_api: LiveAPI, executors: InProcess,  # noqa: F811
                                                           fake_ollama: Any) -> None:
    fake_ollama.replies += [diag_plan(text="first"), diag_plan(text="second")]
    async with chat_api.client() as c:
        async with c.stream("POST", "/api/chat", json={"message": "make an echo saying first"}) as r:
            conv_id = (await read_sse(r))[0]["data"]["id"]
        async with c.stream("POST", "/api/chat", json={"message": "now make it say second",
                                                       "conversation_id": conv_id}) as r:
            await read_sse(r)
        goals = [j["goal"] for j in (await c.get("/api/jobs")).json()["items"]]
    assert goals == ["now make it say second", "make an echo saying first"]


def test_the_answer_says_which_steps_were_reused() -> None:
    from types import SimpleNamespace

    from conversation.answers import answer_for
    from conversation.auth import LinkSigner
    from spinbot.queue import JobState

    def node(nid: str, job: str) -> dict[str, Any]:
        return {"id": nid, "service": "tts.synthesize", "plane": "gpu", "status": "completed", "output": {
            "audio": {"key": f"jobs/{job}/{nid}/speech.wav", "contentType": "audio/wav", "size": 2048}}}

    graph = {"nodes": [node("first", "old"), node("second", "new")]}
    state = JobState(id="new", status="completed", progress=1.0, plane=None, version=1, owner="local", graph=graph,
                     error=None, created=0.0, updated=0.0, pipeline=None)
    services = SimpleNamespace(links=LinkSigner(b"k" * 32, 3600))
    text = answer_for(state, "new", "http://x", services)  # type: ignore[arg-type]
    assert text.startswith("Done: 1 step ran, 1 reused from an earlier job (first)"), text
    assert "[first: audio (reused)]" in text and "[second: audio](" in text, text  # step, then what it made
    assert "(WAV audio file, 2 KB)" in text, text


def test_artifacts_are_named_by_their_step_once() -> None:
    from conversation.views import artifact_label

    assert artifact_label("Draw the image", "image/png") == "Draw the image"  # not "image image"
    assert artifact_label("Speak the text", "audio/wav") == "Speak the text: audio"  # not "voice audio"
    assert artifact_label("Animate the portrait", "video/mp4") == "Animate the portrait: video"  # not "talk video"
    assert artifact_label("", "video/mp4") == "video" and artifact_label("Publish", "text/plain") == "Publish: file"


def test_a_stored_file_of_the_wrong_kind_is_said_in_words() -> None:
    import pytest

    from web.attachments import kind_of
    from web.problems import Problem

    with pytest.raises(Problem) as refused:
        kind_of("application/pdf")  # an earlier job's PDF named as an attachment (text files are words now)
    assert refused.value.detail == "a PDF file cannot be attached"  # not "attachments of type application/pdf"
