"""The OpenAI-compatible endpoint through the official `openai` SDK against a live server."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator

import pytest
from openai import AsyncOpenAI, NotFoundError

from spinbot.settings import Settings
from tests.web.conftest import LiveAPI, png_bytes, serve
from tests.web.test_chat import diag_plan

PNG = "data:image/png;base64," + base64.b64encode(png_bytes()).decode()


@pytest.fixture
async def oai_api(api_settings: Settings, fake_ollama) -> AsyncIterator[LiveAPI]:
    # the scripted model writes diagnostic plans directly (a capable model's answer)
    direct = {"ollama_url": fake_ollama.url, "planner_direct_plans": True}
    async with serve(api_settings.model_copy(update=direct)) as live:
        yield live


def client(api: LiveAPI) -> AsyncOpenAI:
    return AsyncOpenAI(base_url=f"{api.url}/v1", api_key="unused-without-keys", max_retries=0)


async def test_models(oai_api: LiveAPI) -> None:
    async with client(oai_api) as oa:
        models = await oa.models.list()
    assert [m.id for m in models.data] == ["spinbot", "spinbot-plan"]
    with pytest.raises(NotFoundError):
        async with client(oai_api) as oa:
            await oa.chat.completions.create(model="gpt-4", messages=[{"role": "user", "content": "hi"}])


async def test_non_streaming_runs_the_job(oai_api: LiveAPI, executors, fake_ollama) -> None:
    fake_ollama.replies.append(diag_plan())
    async with client(oai_api) as oa:
        out = await oa.chat.completions.create(
            model="spinbot", messages=[{"role": "user", "content": "make a quick echo test"}], temperature=0.2,
            extra_body={"some_unknown_field": {"x": 1}},
        )
    assert out.object == "chat.completion" and out.id.startswith("chatcmpl-")
    choice = out.choices[0]
    assert choice.finish_reason == "stop" and choice.message.role == "assistant"
    assert "Done" in choice.message.content and f"{oai_api.url}/jobs/" in choice.message.content
    assert "Plan: diag.echo → diag.wait" in (choice.message.model_extra or {}).get("reasoning_content", "")
    assert out.usage is not None and out.usage.prompt_tokens > 0  # the planner's LLM call
    assert out.usage.total_tokens == out.usage.prompt_tokens + out.usage.completion_tokens


async def test_streaming_chunks_are_exact(oai_api: LiveAPI, executors, fake_ollama) -> None:
    fake_ollama.replies.append(diag_plan())
    async with client(oai_api) as oa:
        stream = await oa.chat.completions.create(
            model="spinbot", messages=[{"role": "user", "content": "make a quick echo test"}], stream=True,
            stream_options={"include_usage": True},
        )
        chunks = [c async for c in stream]
    assert len({c.id for c in chunks}) == 1 and len({c.created for c in chunks}) == 1
    assert all(c.object == "chat.completion.chunk" and c.model == "spinbot" for c in chunks)
    assert chunks[0].choices[0].delta.role == "assistant"
    reasoning = "".join((c.choices[0].delta.model_extra or {}).get("reasoning_content") or ""
                        for c in chunks if c.choices)
    content = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert "Planning" in reasoning and "Step wait (diag.wait) completed" in reasoning
    assert "Done" in content
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == ["stop"]
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert all(c.usage is None for c in chunks[:-1])


async def test_raw_stream_has_no_ids_and_ends_with_done(oai_api: LiveAPI, executors, fake_ollama) -> None:
    body = {"model": "spinbot-plan", "stream": True, "messages": [{"role": "user", "content": "make an echo test"}]}
    fake_ollama.replies.append(diag_plan())
    async with oai_api.client() as c, c.stream("POST", "/v1/chat/completions", json=body) as resp:
        raw = (await resp.aread()).decode()
    lines = [ln for ln in raw.splitlines() if ln]
    assert not any(ln.startswith("id:") or ln.startswith("event:") for ln in lines)
    assert lines[-1] == "data: [DONE]"
    assert '"event"' not in raw  # no Open WebUI status events for other clients


async def test_plan_only_model_shows_the_graph(oai_api: LiveAPI, executors, fake_ollama) -> None:
    fake_ollama.replies.append(diag_plan())
    async with client(oai_api) as oa:
        out = await oa.chat.completions.create(model="spinbot-plan", messages=[
            {"role": "user", "content": [{"type": "text", "text": "make an echo about this"},
                                         {"type": "image_url", "image_url": {"url": PNG}}]}])
    text = out.choices[0].message.content
    graph = json.loads(text.split("```json", 1)[1].split("```", 1)[0])
    assert [n["service"] for n in graph["nodes"]] == ["diag.echo", "diag.wait"]
    assert graph["context"]["attachments"][0]["kind"] == "image"  # the image_url part became an attachment
    async with oai_api.client() as c:
        assert (await c.get("/api/jobs")).json()["items"] == []  # plan only: nothing ran


async def test_title_generation_is_answered_without_a_job(oai_api: LiveAPI, fake_ollama) -> None:
    prompt = ("### Task:\nGenerate a concise, 3-5 word title with an emoji summarizing the chat history.\n"
              "### Output:\nJSON format: { \"title\": \"your concise title here\" }\n"
              "<chat_history>\nUSER: a video about tides\nASSISTANT: Done\n</chat_history>")
    async with client(oai_api) as oa:
        out = await oa.chat.completions.create(model="spinbot", messages=[{"role": "user", "content": prompt}])
        tag_prompt = "### Task:\nGenerate 1-3 broad tags\n<chat_history>\n</chat_history>"
        tags = await oa.chat.completions.create(model="spinbot", messages=[{"role": "user", "content": tag_prompt}])
    # The scripted model has no answer left (a 500): the title comes by rule, the tags are none.
    assert json.loads(out.choices[0].message.content)["title"] == "Video about tides"
    assert json.loads(tags.choices[0].message.content) == {"tags": []}
    async with oai_api.client() as c:
        assert (await c.get("/api/jobs")).json()["items"] == []


async def test_openwebui_status_events_and_reasoning_stripped(oai_api: LiveAPI, executors, fake_ollama) -> None:
    fake_ollama.replies.append(diag_plan())
    history = [
        {"role": "user", "content": "make an echo test"},
        {"role": "assistant", "content": '<details type="reasoning" done="true">\n<summary>Thought</summary>\n'
                                         "> SECRET-REASONING\n</details>\nHere is the plan."},
        {"role": "user", "content": "make it say goodbye instead"},
    ]
    body = {"model": "spinbot-plan", "stream": True, "messages": history}
    headers = {"X-OpenWebUI-Chat-Id": "chat-1", "X-OpenWebUI-User-Id": "u1"}
    async with oai_api.client() as c, c.stream("POST", "/v1/chat/completions", json=body, headers=headers) as resp:
        raw = (await resp.aread()).decode()
    chunks = [json.loads(ln[6:]) for ln in raw.splitlines() if ln.startswith("data: {")]
    status = [c["event"]["data"] for c in chunks if "event" in c]
    assert status and status[-1]["done"] is True and not any(s["done"] for s in status[:-1])
    assert all(c["choices"] == [] for c in chunks if "event" in c)
    sent = json.dumps(fake_ollama.chat_requests[-1].body)
    assert "SECRET-REASONING" not in sent and "Here is the plan." in sent


async def test_a_job_outliving_the_limit_ends_with_its_page(api_settings: Settings, executors, fake_ollama) -> None:
    fake_ollama.replies.append(diag_plan(seconds=3.0))
    settings = api_settings.model_copy(update={"ollama_url": fake_ollama.url, "chat_job_limit_s": 0.5,
                                               "planner_direct_plans": True})
    async with serve(settings) as api, client(api) as oa:
        ask = [{"role": "user", "content": "make a slow echo"}]
        out = await oa.chat.completions.create(model="spinbot", messages=ask)
        text = out.choices[0].message.content
        assert "keeps running" in text and f"{api.url}/jobs/" in text
        job_id = text.split("/jobs/", 1)[1][:32]
        async with api.client() as c:
            assert (await c.get(f"/api/jobs/{job_id}")).json()["status"] in ("queued", "running")
            # Asking about it later in the same chat reports its progress.
            later = await oa.chat.completions.create(model="spinbot", messages=[
                {"role": "user", "content": "make a slow echo"}, {"role": "assistant", "content": text},
                {"role": "user", "content": "what's the status?"}])
    assert job_id in later.choices[0].message.content and "%" in later.choices[0].message.content


async def test_follow_up_without_headers_revises_the_shown_plan(oai_api: LiveAPI, executors, fake_ollama) -> None:
    fake_ollama.replies += [diag_plan(text="first"), diag_plan(text="second")]
    ask = [{"role": "user", "content": "make an echo saying first"}]
    async with client(oai_api) as oa:
        shown = await oa.chat.completions.create(model="spinbot-plan", messages=ask)
        await oa.chat.completions.create(model="spinbot-plan", messages=[
            *ask, {"role": "assistant", "content": shown.choices[0].message.content},
            {"role": "user", "content": "make it say second instead"}])
    prompt = fake_ollama.chat_requests[-1].messages[-1]["content"]
    assert "The current plan" in prompt and '"first"' in prompt  # the graph it showed came back as the plan
