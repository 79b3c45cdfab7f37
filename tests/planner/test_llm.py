"""spinbot.llm against the fake Ollama: the real langchain-ollama client over real HTTP."""

from __future__ import annotations

import json
import re
import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from spinbot import llm
from spinbot.errors import TransientError
from spinbot.llm import (
    MIN_NUM_CTX,
    LLMCutOff,
    LLMGarbage,
    LLMPromptTooLong,
    LLMUnavailable,
    clean_text,
    num_ctx_for,
    probe,
    prompt_tokens_for,
    reachable,
    structured_chat,
)
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


# ---- num_ctx: sized from the prompt on every call, never a prompt Ollama would cut


def test_num_ctx_for_rounds_up_within_bounds() -> None:
    small = [{"role": "user", "content": "hi"}]
    assert num_ctx_for(small, 64, 8192) == MIN_NUM_CTX
    big = [{"role": "user", "content": "x" * 9000}]  # 3,000 tokens at 3 bytes each
    need = prompt_tokens_for(big) + 1024
    ctx = num_ctx_for(big, 1024, 8192)
    assert ctx % 512 == 0 and need < ctx <= 8192
    assert num_ctx_for(big, 1024, 4500) == 4500, "never more than the maximum"
    with pytest.raises(LLMPromptTooLong, match="more than the 4096 allowed") as info:
        num_ctx_for(big, 1024, 4096)
    assert info.value.code == "llm_prompt_too_long" and "SPINBOT_OLLAMA_NUM_CTX_MAX" in (info.value.hint or "")
    multibyte = [{"role": "user", "content": "日本語" * 1000}]  # 9,000 UTF-8 bytes: counted by bytes, not characters
    assert prompt_tokens_for(multibyte) >= 3000


@pytest.mark.parametrize("size", [10, 6_000, 10_000])  # "ü" is 2 UTF-8 bytes: up to ~6,700 tokens
async def test_num_ctx_is_sent_and_holds_the_prompt(fake_ollama: FakeOllama, llm_settings: Settings, size: int) -> None:
    fake_ollama.replies.append({"answer": "ok"})
    messages = [{"role": "system", "content": "be brief " + "ü" * size}, {"role": "user", "content": "hi"}]
    result = await structured_chat(llm_settings, messages, SCHEMA, num_predict=300)
    [req] = fake_ollama.chat_requests
    sent = [{"role": m["role"], "content": m["content"]} for m in req.messages]
    num_ctx = req.options["num_ctx"]
    assert num_ctx == result.num_ctx and num_ctx % 512 == 0 and num_ctx >= MIN_NUM_CTX
    assert prompt_tokens_for(sent) + req.options["num_predict"] <= num_ctx <= llm_settings.ollama_num_ctx_max


async def test_prompt_longer_than_the_maximum_is_never_sent(fake_ollama: FakeOllama, llm_settings: Settings) -> None:
    settings = llm_settings.model_copy(update={"ollama_num_ctx_max": 2048})
    messages = [{"role": "user", "content": "word " * 2000}]  # ~3,300 tokens by the estimate
    with pytest.raises(LLMPromptTooLong):
        await structured_chat(settings, messages, SCHEMA, num_predict=64)
    assert fake_ollama.requests == [], "a prompt Ollama would cut must not reach it"


async def test_answer_cut_at_num_predict_is_garbage(fake_ollama: FakeOllama, llm_settings: Settings) -> None:
    fake_ollama.replies.append(Reply('{"answer": "abc"}', done_reason="length"))  # parses, but was cut
    with pytest.raises(LLMGarbage, match="cut off at num_predict=64") as info:
        await structured_chat(llm_settings, MESSAGES, SCHEMA, num_predict=64)
    assert isinstance(info.value, LLMCutOff) and info.value.code == "llm_garbage"


async def test_nul_and_lone_surrogates_are_replaced(fake_ollama: FakeOllama, llm_settings: Settings) -> None:
    fake_ollama.replies.append(Reply('{"answer": "a\\u0000b\\ud800c", "k\\u0000": ["\\udfff"]}'))  # JSON escapes
    result = await structured_chat(llm_settings, MESSAGES, SCHEMA)
    assert result.data == {"answer": "a\ufffdb\ufffdc", "k\ufffd": ["\ufffd"]}
    for text in (result.raw, json.dumps(result.data)):
        assert "\x00" not in text and "\\u0000" not in text and not re.search("[\ud800-\udfff]", text)
        assert "\\ud800" not in text and "\\udfff" not in text
    result.raw.encode("utf-8")  # no lone surrogate left to fail on
    assert clean_text("ok \U0001f600") == "ok \U0001f600", "a real (paired) emoji is kept"


async def test_raw_nul_in_the_text_is_replaced(fake_ollama: FakeOllama, llm_settings: Settings) -> None:
    fake_ollama.replies.append(Reply('{"answer": "a\x00b"}'))  # a bare NUL: not even valid JSON until cleaned
    result = await structured_chat(llm_settings, MESSAGES, SCHEMA)
    assert result.data == {"answer": "a\ufffdb"} and "\x00" not in result.raw


async def test_unreadable_text_is_garbage_not_transient(fake_ollama: FakeOllama, llm_settings: Settings) -> None:
    fake_ollama.replies.append(Reply('{"answer": "a\ud800"}'))  # a lone surrogate as the text itself
    with pytest.raises(LLMGarbage, match="could not be read"):
        await structured_chat(llm_settings, MESSAGES, SCHEMA)


# ---- availability probe


@pytest.fixture
def fresh_probes() -> Iterator[None]:
    llm._probes.clear()
    yield
    llm._probes.clear()


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_probe_against_ollama(fake_ollama: FakeOllama, llm_settings: Settings, fresh_probes: None) -> None:
    assert probe(llm_settings) is None
    assert await reachable(llm_settings) is None
    tags = [r for r in fake_ollama.requests if r.path == "/api/tags"]
    assert len(tags) == 1, "a second probe within the cache window must not ask again"
    assert fake_ollama.chat_requests == [], "probing never runs the model"


async def test_probe_reasons(fake_ollama: FakeOllama, llm_settings: Settings, fresh_probes: None) -> None:
    down = llm_settings.model_copy(update={"ollama_url": f"http://127.0.0.1:{closed_port()}"})
    assert probe(down) == f"Ollama is not reachable at {down.ollama_url}"
    assert await reachable(down) == probe(down)
    missing = llm_settings.model_copy(update={"ollama_model": "nope:1b"})
    assert probe(missing) == "model 'nope:1b' is not pulled in Ollama (ollama pull nope:1b)"
    assert await reachable(llm_settings.model_copy(update={"ollama_model": "other:2b"})) is not None


async def test_probe_treats_latest_as_the_bare_name(
    fake_ollama: FakeOllama, tmp_path: Path, fresh_probes: None
) -> None:
    fake_ollama.models += ["llama3:latest", "gemma3"]
    for model in ("llama3", "llama3:latest", "gemma3", "gemma3:latest"):
        assert probe(Settings(ollama_url=fake_ollama.url, ollama_model=model, data_dir=tmp_path)) is None, model
    assert probe(Settings(ollama_url=fake_ollama.url, ollama_model="llama3:8b", data_dir=tmp_path)) is not None
