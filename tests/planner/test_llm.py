"""spinbot.llm against the fake Ollama: the real langchain-ollama client over real HTTP."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from spinbot.errors import TransientError
from spinbot.llm import LLMGarbage, LLMUnavailable, structured_chat
from spinbot.settings import Settings
from tests.fake_ollama import FakeOllama, Reply

SCHEMA = {
    "type": "object",
    "properties": {"answer": {"type": "string", "maxLength": 20}},
    "required": ["answer"],
}
MESSAGES = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}]


@pytest.fixture
def llm_settings(fake_ollama: FakeOllama, tmp_path: Path) -> Settings:
    return Settings(ollama_url=fake_ollama.url, data_dir=tmp_path, ollama_timeout_s=5)


async def test_streamed_json_reply_and_request_shape(fake_ollama: FakeOllama, llm_settings: Settings) -> None:
    fake_ollama.replies.append(Reply('{"answer": "hello there"}', chunks=5, prompt_tokens=33, completion_tokens=7))
    result = await structured_chat(llm_settings, MESSAGES, SCHEMA, num_predict=64)
    assert result.data == {"answer": "hello there"}
    assert (result.prompt_tokens, result.completion_tokens) == (33, 7)
    [req] = fake_ollama.chat_requests
    assert req.format == SCHEMA
    assert req.body["stream"] is True
    assert req.options["temperature"] == 0 and req.options["num_predict"] == 64
    assert [m["role"] for m in req.messages] == ["system", "user"]


async def test_garbage_is_llm_garbage(fake_ollama: FakeOllama, llm_settings: Settings) -> None:
    fake_ollama.replies.append("Sure! Here is your plan: {steps")
    with pytest.raises(LLMGarbage):
        await structured_chat(llm_settings, MESSAGES, SCHEMA)


async def test_missing_model_is_unavailable(fake_ollama: FakeOllama, llm_settings: Settings) -> None:
    with pytest.raises(LLMUnavailable, match="not available") as info:
        await structured_chat(llm_settings, MESSAGES, SCHEMA, model="nope:1b")
    assert info.value.hint == "run: ollama pull nope:1b"
    assert len(fake_ollama.chat_requests) == 1


async def test_unreachable_is_unavailable(tmp_path: Path) -> None:
    settings = Settings(ollama_url="http://127.0.0.1:9", data_dir=tmp_path)
    with pytest.raises(LLMUnavailable, match="not reachable"):
        await structured_chat(settings, MESSAGES, SCHEMA)


async def test_slow_reply_times_out(fake_ollama: FakeOllama, llm_settings: Settings) -> None:
    fake_ollama.replies.append(Reply('{"answer": "late"}', delay_s=1.5))
    with pytest.raises(TransientError, match="did not answer"):
        await structured_chat(llm_settings, MESSAGES, SCHEMA, timeout_s=0.5)


async def test_server_error_is_transient(fake_ollama: FakeOllama, llm_settings: Settings) -> None:
    fake_ollama.replies.append(Reply(status=500, error="llama runner process has terminated"))
    with pytest.raises(TransientError, match="runner"):
        await structured_chat(llm_settings, MESSAGES, SCHEMA)


async def test_tags_and_non_streaming(fake_ollama: FakeOllama) -> None:
    fake_ollama.replies.append(lambda body: {"answer": body["messages"][-1]["content"]})
    async with httpx.AsyncClient(base_url=fake_ollama.url) as client:
        tags = (await client.get("/api/tags")).json()
        assert [m["name"] for m in tags["models"]] == fake_ollama.models
        r = await client.post("/api/chat", json={"model": fake_ollama.models[0], "messages": MESSAGES, "stream": False})
        assert r.json()["message"]["content"] == '{"answer": "hi"}' and r.json()["done"] is True
