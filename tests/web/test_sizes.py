"""Limits count what the server uses, and answer 413 with the limit whatever the transfer encoding."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from spinbot.settings import Settings
from tests.web.conftest import LiveAPI, png_bytes, serve
from tests.web.test_chat import diag_plan
from web.limits import MB
from web.v1_request import HISTORY_LIMIT, V1_BODY_FACTOR, CompletionRequest, split_request

PNG = "data:image/png;base64," + base64.b64encode(png_bytes()).decode()


async def chunked(total: int, piece: bytes = b"A" * 65536, head: bytes = b"") -> AsyncIterator[bytes]:
    """`total` bytes with no Content-Length (httpx sends an async iterator as Transfer-Encoding: chunked)."""
    yield head
    sent = len(head)
    while sent < total:
        yield piece
        sent += len(piece)


def assert_413(r: Any, limit_mb: float) -> dict[str, Any]:
    assert r.status_code == 413, r.text
    assert r.headers["content-type"] == "application/problem+json"
    body = r.json()
    assert body["code"] == "too_large" and body["limit_mb"] == pytest.approx(limit_mb)
    assert f"the limit is {limit_mb:.1f} MB" in body["detail"] and "SPINBOT_MAX_BODY_MB" in body["hint"]
    return dict(body)


@pytest.fixture
async def small(api_settings: Settings) -> AsyncIterator[LiveAPI]:
    async with serve(api_settings.model_copy(update={"max_body_mb": 1.0})) as live:
        yield live


@pytest.mark.parametrize(("path", "ctype", "limit_mb"), [
    ("/api/uploads", "multipart/form-data; boundary=xyz", 1.0),
    ("/api/chat", "application/json", 1.0),
    ("/api/jobs", "application/json", 1.0),
    ("/api/chat", "multipart/form-data; boundary=xyz", 1.0),
    ("/v1/chat/completions", "application/json", 1.0 * V1_BODY_FACTOR),
])
async def test_chunked_bodies_over_the_limit_get_413(small: LiveAPI, path: str, ctype: str, limit_mb: float) -> None:
    head = b'--xyz\r\nContent-Disposition: form-data; name="files"; filename="a.wav"\r\n\r\n' \
        if ctype.startswith("multipart") else b'{"message": "'
    async with small.client() as c:
        r = await c.post(path, content=chunked(int((limit_mb + 2) * MB), head=head),
                         headers={"content-type": ctype})
        assert "content-length" not in r.request.headers
        body = assert_413(r, limit_mb)
        assert "over" in body["detail"]
        # The same body with Content-Length: the same answer, at once.
        sized = await c.post(path, content=b"A" * int((limit_mb + 2) * MB), headers={"content-type": ctype})
        assert_413(sized, limit_mb)
        assert (await c.get("/api/jobs")).status_code == 200  # the server is fine afterwards
    if path.startswith("/v1"):
        assert body["error"]["message"].startswith("the request body is over") and body["error"]["code"] == "too_large"


async def test_a_40_mb_chunked_upload_at_the_default_limit(api: LiveAPI) -> None:
    head = b'--xyz\r\nContent-Disposition: form-data; name="files"; filename="big.wav"\r\n' \
           b"Content-Type: audio/wav\r\n\r\n"
    async with api.client() as c:
        r = await c.post("/api/uploads", content=chunked(40 * int(MB), head=head),
                         headers={"content-type": "multipart/form-data; boundary=xyz"})
    assert_413(r, api.settings.max_body_mb)


def long_chat(turns: int, history_image: str | None = None) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []
    for i in range(turns):
        content: Any = f"make an echo number {i}"
        if history_image and i % 80 == 0:
            content = [{"type": "text", "text": content}, {"type": "image_url", "image_url": {"url": history_image}}]
        messages += [{"role": "user", "content": content}, {"role": "assistant", "content": f"Done {i}."}]
    return messages


async def test_v1_long_chats_with_history_images_are_answered(api_settings: Settings, executors,
                                                             fake_ollama) -> None:
    # History images are never decoded or stored: this one is not even an image.
    big = "data:image/png;base64," + "A" * int(0.6 * MB)
    settings = api_settings.model_copy(update={"max_body_mb": 1.0, "ollama_url": fake_ollama.url,
                                               "planner_direct_plans": True})
    fake_ollama.replies.append(diag_plan())
    messages = long_chat(250, big) + [{"role": "user", "content": [
        {"type": "text", "text": "make an echo about this"}, {"type": "image_url", "image_url": {"url": PNG}}]}]
    raw = json.dumps({"model": "spinbot-plan", "messages": messages}).encode()
    assert len(messages) == 501 and len(raw) > 1.5 * MB  # over the old cap (500) and over SPINBOT_MAX_BODY_MB
    async with serve(settings) as api, api.client() as c:
        r = await c.post("/v1/chat/completions", content=raw, headers={"content-type": "application/json"})
    assert r.status_code == 200, r.text
    text = r.json()["choices"][0]["message"]["content"]
    graph = json.loads(text.split("```json", 1)[1].split("```", 1)[0])
    assert len(graph["context"]["attachments"]) == 1  # the last message's image only


async def test_v1_what_is_used_is_still_limited(small: LiveAPI) -> None:
    big = "data:image/png;base64," + "A" * int(1.5 * MB)
    body = {"model": "spinbot", "messages": [{"role": "user", "content": [
        {"type": "text", "text": "make an echo"}, {"type": "image_url", "image_url": {"url": big}}]}]}
    async with small.client() as c:
        r = await c.post("/v1/chat/completions", json=body)
    problem = assert_413(r, 1.0)
    assert "the last user message" in problem["detail"] and problem["error"]["type"] == "invalid_request_error"


def test_split_request_keeps_the_last_messages_that_matter() -> None:
    garbage = "data:image/png;base64,!!not-base64!!"
    messages = long_chat(400, garbage) + [{"role": "system", "content": "be brief"},
                                          {"role": "user", "content": "make it say goodbye"}]
    asked = split_request(CompletionRequest.model_validate({"model": "spinbot", "messages": messages}), int(MB))
    goal, images, history = asked.goal, asked.images, asked.history
    assert goal == "make it say goodbye" and images == []
    assert len(history) == HISTORY_LIMIT and history[-1] == {"role": "assistant", "content": "Done 399."}
    assert all(isinstance(m["content"], str) and "base64" not in m["content"] for m in history)
