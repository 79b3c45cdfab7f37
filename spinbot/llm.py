"""The one Ollama client (langchain-ollama), shared by the planner and the control plane's LLM services."""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
import threading
import time
from dataclasses import dataclass
from functools import cache
from typing import Any

import httpx
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage
from langchain_ollama import ChatOllama
from pydantic import ValidationError

from spinbot.errors import EngineUnavailable, PermanentError, TransientError
from spinbot.settings import Settings
from spinbot.text import clean as clean_text
from spinbot.text import clean_value

log = logging.getLogger(__name__)


class LLMUnavailable(EngineUnavailable):
    code = "llm_unavailable"


class LLMTimeout(TransientError):
    code = "llm_timeout"


class LLMGarbage(PermanentError):
    """The model answered, but not with JSON that fits the schema (or its answer was cut off)."""

    code = "llm_garbage"


class LLMCutOff(LLMGarbage):
    """The answer hit num_predict before it was complete (Ollama's done_reason "length")."""


class LLMPromptTooLong(PermanentError):
    """The prompt plus the answer's token budget would not fit the largest context Spinbot may ask for."""

    code = "llm_prompt_too_long"


#: Ollama's own context sizes are 2,048 or 4,096 tokens and it cuts a longer prompt silently, so every
#: call asks for a context sized to its prompt: never below this, in steps of CTX_STEP.
MIN_NUM_CTX = 2048
CTX_STEP = 512
#: Tokens the chat template adds per message (role markers, separators), and once per call (its
#: preamble, a default system prompt) plus slack for the estimate.
MESSAGE_OVERHEAD_TOKENS = 8
CTX_MARGIN_TOKENS = 256
#: A conservative tokenizer bound: byte-level BPE vocabularies average ~4 English characters per token,
#: and one CJK character is 3 UTF-8 bytes and at most about one token.
BYTES_PER_TOKEN = 3
#: How long one availability probe's answer is reused (seconds, monotonic clock).
PROBE_TTL_S = 10.0
PROBE_TIMEOUT_S = 2.0


@dataclass(frozen=True, slots=True)
class LLMResult:
    data: Any
    raw: str
    model: str
    duration_s: float
    prompt_tokens: int
    completion_tokens: int
    num_ctx: int  # the context window this call asked Ollama for (tokens)


@cache
def _tls() -> ssl.SSLContext:
    """One TLS context per process: ChatOllama builds two httpx clients per instance, ~0.1 s of CA loading each."""
    return ssl.create_default_context()


def prompt_tokens_for(messages: list[dict[str, str]]) -> int:
    """A conservative (high) estimate of the tokens `messages` take in the model's context.

    messages: [{"role": ..., "content": ...}]; returns UTF-8 bytes / BYTES_PER_TOKEN (rounded up) plus
    MESSAGE_OVERHEAD_TOKENS per message.
    """
    total = 0
    for m in messages:
        size = len(m["content"].encode("utf-8", "surrogatepass"))
        total += -(-size // BYTES_PER_TOKEN) + MESSAGE_OVERHEAD_TOKENS
    return total


def num_ctx_for(messages: list[dict[str, str]], num_predict: int, max_ctx: int) -> int:
    """The context window (Ollama's `num_ctx`, tokens) that holds `messages` and a `num_predict`-token answer.

    The estimate (prompt_tokens_for + num_predict + CTX_MARGIN_TOKENS) is rounded up to a multiple of
    CTX_STEP, at least MIN_NUM_CTX and at most max_ctx. Raises LLMPromptTooLong when the estimate itself
    exceeds max_ctx: a prompt Ollama would have to cut is never sent.
    """
    need = prompt_tokens_for(messages) + num_predict + CTX_MARGIN_TOKENS
    if need > max_ctx:
        raise LLMPromptTooLong(
            f"the prompt (~{need - num_predict - CTX_MARGIN_TOKENS} tokens) and the answer ({num_predict} tokens) "
            f"need a context of ~{need} tokens, more than the {max_ctx} allowed",
            hint="shorten the input, or raise SPINBOT_OLLAMA_NUM_CTX_MAX if the model and memory allow",
        )
    return min(max_ctx, max(MIN_NUM_CTX, -(-need // CTX_STEP) * CTX_STEP))


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
    """One JSON-schema-constrained chat call at temperature 0, bounded in tokens and wall time.

    messages: [{"role": "system" | "user" | "assistant", "content": str}]; schema: a JSON schema for
    Ollama's `format`; num_predict: the answer's token cap; timeout_s: wall-clock limit (default
    settings.ollama_timeout_s). `num_ctx` is set from the prompt's size (num_ctx_for), so Ollama never
    cuts the prompt. Every string in the result's data and raw has passed clean_text.

    Raises LLMPromptTooLong (before any request) when the prompt would not fit settings.ollama_num_ctx_max,
    LLMUnavailable (Ollama unreachable, model not pulled), LLMTimeout, LLMGarbage (not JSON; its subclass
    LLMCutOff: cut off at num_predict tokens) and TransientError (any other failure of the call).
    """
    model = model or settings.ollama_model
    timeout_s = timeout_s or settings.ollama_timeout_s
    num_ctx = num_ctx_for(messages, num_predict, settings.ollama_num_ctx_max)
    llm = ChatOllama(
        model=model,
        base_url=settings.ollama_url,
        format=schema,
        temperature=0,
        num_predict=num_predict,
        num_ctx=num_ctx,
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
    except ValidationError as e:  # langchain refuses text that is not valid Unicode (a lone surrogate)
        raise LLMGarbage(f"the model's answer could not be read: {e.errors()[0].get('msg', e)}") from e
    except Exception as e:  # the ollama client raises ResponseError for a missing model
        if "not found" in str(e).lower():
            raise LLMUnavailable(f"model {model!r} is not available in Ollama", hint=f"run: ollama pull {model}") from e
        raise TransientError(f"Ollama call failed: {e}") from e
    raw = clean_text(reply.content if isinstance(reply.content, str) else json.dumps(reply.content))
    usage: dict[str, Any] = dict(reply.usage_metadata or {})
    if (reply.response_metadata or {}).get("done_reason") == "length":
        raise LLMCutOff(
            f"the model's answer was cut off at num_predict={num_predict} tokens: ...{raw[-120:]!r}",
            hint="ask for a shorter answer, or raise num_predict with the schema's bounds",
        )
    try:
        parsed = json.loads(raw)
    except json.JSONDecodeError as e:
        raise LLMGarbage(f"the model's answer is not JSON: {raw[:200]!r}") from e
    data = clean_value(parsed)
    if data != parsed:  # escaped in the JSON text (\u0000, \ud800): raw must not carry them either
        raw = json.dumps(data, ensure_ascii=False)
    return LLMResult(
        data=data,
        raw=raw,
        model=model,
        duration_s=time.monotonic() - started,
        prompt_tokens=int(usage.get("input_tokens", 0)),
        completion_tokens=int(usage.get("output_tokens", 0)),
        num_ctx=num_ctx,
    )


# ---- availability

_probes: dict[tuple[str, str], tuple[float, str | None]] = {}
_probes_lock = threading.Lock()
_digests: dict[tuple[str, str], str] = {}  # (url, model) -> the digest /api/tags last listed for it


def _same_model(listed: str, wanted: str) -> bool:
    """Ollama names `x` and `x:latest` the same model."""

    def full(name: str) -> str:
        return name if ":" in name else f"{name}:latest"

    return full(listed) == full(wanted)


def _verdict(url: str, model: str, response: httpx.Response | None, error: Exception | None) -> str | None:
    """probe's reason from one GET /api/tags (or the error it raised)."""
    if response is None:
        if isinstance(error, httpx.TimeoutException):
            return f"Ollama at {url} did not answer within {PROBE_TIMEOUT_S:g} s"
        return f"Ollama is not reachable at {url}"
    if response.status_code != 200:
        return f"Ollama at {url} answered /api/tags with HTTP {response.status_code}"
    try:
        listed = [str(m.get("name") or m.get("model") or "") for m in response.json().get("models") or []]
    except (ValueError, AttributeError):
        return f"Ollama at {url} answered /api/tags with something other than its model list"
    if not any(_same_model(name, model) for name in listed):
        return f"model {model!r} is not pulled in Ollama (ollama pull {model})"
    for m in response.json().get("models") or []:
        if _same_model(str(m.get("name") or m.get("model") or ""), model) and m.get("digest"):
            with _probes_lock:
                _digests[(url, model)] = str(m["digest"])
    return None


def _cached(key: tuple[str, str]) -> tuple[bool, str | None]:
    with _probes_lock:
        hit = _probes.get(key)
    if hit is not None and time.monotonic() - hit[0] < PROBE_TTL_S:
        return True, hit[1]
    return False, None


def _remember(key: tuple[str, str], reason: str | None) -> str | None:
    with _probes_lock:
        before = _probes.get(key)
        _probes[key] = (time.monotonic(), reason)
    if before is None or before[1] != reason:  # one line per change, not per probe
        if reason is None:
            log.info("LLM available: %s at %s", key[1], key[0])
        else:
            log.warning("LLM unavailable: %s", reason)
    return reason


def probe(settings: Settings) -> str | None:
    """None when Ollama at settings.ollama_url answers within ~2 s and has settings.ollama_model, else why not.

    The reason is one short sentence for a manifest's unavailable_reason ("Ollama is not reachable at
    ...", "model 'x' is not pulled in Ollama (ollama pull x)"). Blocking (up to PROBE_TIMEOUT_S); each
    (url, model) answer is reused for PROBE_TTL_S seconds. Never raises.
    """
    url, model = settings.ollama_url.rstrip("/"), settings.ollama_model
    hit, reason = _cached((url, model))
    if hit:
        return reason
    response, error = None, None
    try:
        with httpx.Client(timeout=PROBE_TIMEOUT_S, verify=_tls()) as client:
            response = client.get(f"{url}/api/tags")
    except (httpx.HTTPError, OSError, ValueError) as e:  # ValueError: a malformed URL
        error = e
    return _remember((url, model), _verdict(url, model, response, error))


def digest(settings: Settings) -> str | None:
    """The digest Ollama's /api/tags last listed for settings.ollama_model (from probe's answers), None if unknown."""
    with _probes_lock:
        return _digests.get((settings.ollama_url.rstrip("/"), settings.ollama_model))


async def reachable(settings: Settings) -> str | None:
    """probe without blocking the event loop: None when the model can answer, else why not (same cache)."""
    hit, reason = _cached((settings.ollama_url.rstrip("/"), settings.ollama_model))
    if hit:
        return reason
    return await asyncio.to_thread(probe, settings)
