"""The one Ollama client (langchain-ollama), shared by the planner and the control plane's LLM services."""

from __future__ import annotations

import asyncio
import json
import ssl
import time
from dataclasses import dataclass
from functools import cache
from typing import Any

import httpx
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage
from langchain_ollama import ChatOllama

from spinbot.errors import EngineUnavailable, PermanentError, TransientError
from spinbot.settings import Settings


class LLMUnavailable(EngineUnavailable):
    code = "llm_unavailable"


class LLMTimeout(TransientError):
    code = "llm_timeout"


class LLMGarbage(PermanentError):
    """The model answered, but not with JSON that fits the schema."""

    code = "llm_garbage"


@dataclass(frozen=True, slots=True)
class LLMResult:
    data: Any
    raw: str
    model: str
    duration_s: float
    prompt_tokens: int
    completion_tokens: int


@cache
def _tls() -> ssl.SSLContext:
    """One TLS context per process: ChatOllama builds two httpx clients per instance, ~0.1 s of CA loading each."""
    return ssl.create_default_context()


def _messages(messages: list[dict[str, str]]) -> list[BaseMessage]:
    kinds = {"system": SystemMessage, "user": HumanMessage, "assistant": AIMessage}
    return [kinds[m["role"]](content=m["content"]) for m in messages]


async def _invoke(llm: ChatOllama, messages: list[dict[str, str]], timeout_s: float) -> AIMessage:
    """One call; ChatOllama never closes its httpx clients, so close them here (no leaked sockets)."""
    try:
        reply = await asyncio.wait_for(llm.ainvoke(_messages(messages)), timeout=timeout_s)
        assert isinstance(reply, AIMessage)
        return reply
    finally:
        await llm._async_client.close()
        llm._client.close()


async def structured_chat(
    settings: Settings,
    messages: list[dict[str, str]],
    schema: dict[str, Any],
    *,
    num_predict: int = 1024,
    timeout_s: float | None = None,
    model: str | None = None,
) -> LLMResult:
    """One JSON-schema-constrained chat call at temperature 0, bounded in tokens and wall time."""
    model = model or settings.ollama_model
    timeout_s = timeout_s or settings.ollama_timeout_s
    llm = ChatOllama(
        model=model,
        base_url=settings.ollama_url,
        format=schema,
        temperature=0,
        num_predict=num_predict,
        client_kwargs={"timeout": timeout_s, "verify": _tls()},
    )
    started = time.monotonic()
    try:
        reply = await _invoke(llm, messages, timeout_s)
    except (TimeoutError, httpx.TimeoutException) as e:
        raise LLMTimeout(f"Ollama ({model}) did not answer within {timeout_s:g} s") from e
    except (httpx.ConnectError, ConnectionError) as e:
        raise LLMUnavailable(
            f"Ollama is not reachable at {settings.ollama_url}",
            hint="start Ollama (ollama serve) or set SPINBOT_OLLAMA_URL",
        ) from e
    except Exception as e:  # the ollama client raises ResponseError for a missing model
        if "not found" in str(e).lower():
            raise LLMUnavailable(f"model {model!r} is not available in Ollama", hint=f"run: ollama pull {model}") from e
        raise TransientError(f"Ollama call failed: {e}") from e
    raw = reply.content if isinstance(reply.content, str) else json.dumps(reply.content)
    usage: dict[str, Any] = dict(reply.usage_metadata or {})
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as e:
        raise LLMGarbage(f"the model's answer is not JSON: {raw[:200]!r}") from e
    return LLMResult(
        data=data,
        raw=raw,
        model=model,
        duration_s=time.monotonic() - started,
        prompt_tokens=int(usage.get("input_tokens", 0)),
        completion_tokens=int(usage.get("output_tokens", 0)),
    )
