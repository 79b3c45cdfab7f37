"""The OpenAI-compatible endpoint (for Open WebUI and any OpenAI client): /v1/models, /v1/chat/completions.

Strict clients parse every chunk, so the format is exact: one id and `created` for the whole answer,
a role chunk first, progress as `reasoning_content` deltas, the answer as `content` deltas, a
finish_reason chunk, a usage chunk when asked for, then `data: [DONE]`; no SSE `id:` lines.
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import orjson
from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from web.attachments import AttachmentIn, store_attachments
from web.chat import ChatEvent, Turn, TurnRequest, title_of
from web.deps import OwnerDep, ServicesDep
from web.limits import MB, too_large
from web.problems import Problem
from web.routes.chat import base_url
from web.sse import encode, open_stream

log = logging.getLogger(__name__)

router = APIRouter(prefix="/v1", tags=["openai"])

MODELS = {
    "spinbot": "plans the goal into a task graph and runs it; the answer links the results",
    "spinbot-plan": "plans only: shows the evaluated task graph without running it",
}
CREATED = 1_735_689_600  # 2025-01-01: a fixed `created` for the models list
# Clients resend the whole chat, earlier images included, with every turn; Spinbot uses only the last user
# message's images and the text of the HISTORY_LIMIT messages before it. The raw body may be this many
# times SPINBOT_MAX_BODY_MB (web/app.py); what is used is held to SPINBOT_MAX_BODY_MB.
V1_BODY_FACTOR = 4
HISTORY_LIMIT = 200

# Reasoning we sent earlier comes back inside assistant history as Open WebUI renders it.
_REASONING = re.compile(r"<details\s+type=\"reasoning\"[^>]*>.*?</details>\s*|<think>.*?</think>\s*", re.S | re.I)
_TASK = re.compile(r"^\s*###\s*Task:", re.M)


class _Loose(BaseModel):
    model_config = ConfigDict(extra="ignore")


class Message(_Loose):
    role: str = Field(max_length=32)
    content: str | list[dict[str, Any]] | None = None


class StreamOptions(_Loose):
    include_usage: bool = False


class CompletionRequest(_Loose):
    model: str = Field(max_length=100)
    messages: list[Message] = Field(min_length=1, description="any number; the last user message and the text "
                                    f"of the {HISTORY_LIMIT} user/assistant messages before it are used")
    stream: bool = False
    stream_options: StreamOptions | None = None


@router.get("/models", summary="The models this endpoint offers")
async def models(owner: OwnerDep) -> dict[str, Any]:
    return {"object": "list", "data": [
        {"id": mid, "object": "model", "created": CREATED, "owned_by": "spinbot", "description": desc}
        for mid, desc in MODELS.items()
    ]}


# ---- request parsing --------------------------------------------------------------------------


def text_of(content: str | list[dict[str, Any]] | None) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    return "\n".join(str(p.get("text", "")) for p in content if p.get("type") == "text")


def images_of(content: str | list[dict[str, Any]] | None) -> list[AttachmentIn]:
    if not isinstance(content, list):
        return []
    out = []
    for i, part in enumerate(content):
        if part.get("type") != "image_url":
            continue
        spec = part.get("image_url")
        url = spec.get("url") if isinstance(spec, dict) else spec
        if not isinstance(url, str) or not url.startswith("data:"):
            raise Problem(422, "image_url parts must be data: URLs; Spinbot does not fetch remote URLs",
                          code="invalid_attachment", hint="send the image inline as data:image/...;base64,...")
        out.append(AttachmentIn(name=f"image{i + 1}", data=url))
    return out


def strip_reasoning(text: str) -> str:
    return _REASONING.sub("", text).strip()


def split_request(body: CompletionRequest, max_bytes: int) -> tuple[str, list[AttachmentIn], list[dict[str, Any]]]:
    """(goal, its attachments, the history before it) from an OpenAI message list.

    Earlier messages' images are dropped unread and the history is their text, the last HISTORY_LIMIT
    user/assistant messages; what is used (the last user message, bytes of its text and data URLs) must
    fit max_bytes, else 413.
    """
    last_user = max((i for i, m in enumerate(body.messages) if m.role == "user"), default=None)
    if last_user is None:
        raise Problem(422, "there is no user message", code="invalid_request",
                      hint="the last message should be {\"role\": \"user\", \"content\": \"your goal\"}")
    content = body.messages[last_user].content
    if (used := used_size(content)) > max_bytes:
        raise too_large("the last user message (text and images)", used, max_bytes, setting="SPINBOT_MAX_BODY_MB")
    goal = text_of(content).strip()
    earlier = [m for m in body.messages[:last_user] if m.role in ("user", "assistant")][-HISTORY_LIMIT:]
    history = [{"role": m.role, "content": strip_reasoning(text_of(m.content))} for m in earlier]
    return goal, images_of(content), history


def used_size(content: str | list[dict[str, Any]] | None) -> int:
    """Characters of a message's text and image data URLs (ASCII, so bytes for the URLs)."""
    if not isinstance(content, list):
        return len(content or "")
    total = 0
    for part in content:
        spec = part.get("image_url")
        url = spec.get("url") if isinstance(spec, dict) else spec
        total += len(str(part.get("text", ""))) + (len(url) if isinstance(url, str) else 0)
    return total


def task_answer(prompt: str) -> str | None:
    """Open WebUI's own tasks (title, tags, follow-ups, queries) answered at once, no planner, no job."""
    if not _TASK.search(prompt):
        return None
    lower = prompt.lower()
    history = prompt.split("<chat_history>", 1)[-1]
    first_user = next((ln.split(":", 1)[1].strip() for ln in history.splitlines() if ln.upper().startswith("USER:")),
                      "")
    if "title" in lower:
        return orjson.dumps({"title": title_of(first_user or "Spinbot chat")[:60]}).decode()
    if "tags" in lower:
        return orjson.dumps({"tags": ["Media", "Spinbot"]}).decode()
    if "follow" in lower:
        return orjson.dumps({"follow_ups": []}).decode()
    if "quer" in lower:
        return orjson.dumps({"queries": []}).decode()
    return orjson.dumps({"text": ""}).decode()


def wants_status(request: Request, services: ServicesDep) -> bool:
    return services.settings.openwebui_status or any(h.lower().startswith("x-openwebui-") for h in request.headers)


def conversation_for(request: Request, owner: str) -> str | None:
    chat_id = request.headers.get("x-openwebui-chat-id")
    if not chat_id:
        return None
    return "owui_" + hashlib.sha256(f"{owner}\n{chat_id}".encode()).hexdigest()[:24]


# ---- responses --------------------------------------------------------------------------------


class Chunks:
    """chat.completion.chunk objects sharing one id and `created`."""

    def __init__(self, model: str, include_usage: bool) -> None:
        self.id = "chatcmpl-" + uuid.uuid4().hex[:24]
        self.created = int(time.time())
        self.model = model
        self.include_usage = include_usage

    def chunk(self, delta: dict[str, Any], finish: str | None = None) -> str:
        body: dict[str, Any] = {
            "id": self.id, "object": "chat.completion.chunk", "created": self.created, "model": self.model,
            "system_fingerprint": None,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        }
        if self.include_usage:
            body["usage"] = None
        return orjson.dumps(body).decode()

    def usage(self, prompt: int, completion: int) -> str:
        return orjson.dumps({
            "id": self.id, "object": "chat.completion.chunk", "created": self.created, "model": self.model,
            "system_fingerprint": None, "choices": [],
            "usage": {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion},
        }).decode()

    def status(self, description: str, done: bool) -> str:
        return orjson.dumps({
            "id": self.id, "object": "chat.completion.chunk", "created": self.created, "model": self.model,
            "choices": [], "event": {"type": "status", "data": {"description": description, "done": done}},
        }).decode()


class Narrator:
    """Turns chat events into short progress lines (reasoning) and status descriptions."""

    def __init__(self) -> None:
        self._last_progress: dict[str, float] = {}

    def line(self, ev: ChatEvent) -> tuple[str | None, str | None]:
        d = ev.data
        match ev.type:
            case "planning":
                stage = d.get("stage") or d.get("kind") or d.get("event") or "planning"
                attempt = f" (attempt {d['attempt']})" if d.get("attempt") else ""
                detail = d.get("message") or d.get("detail") or ""
                text = f"{stage}{attempt}" + (f": {detail}" if detail else "")
                return f"Planning: {text}\n", "Planning…"
            case "plan":
                nodes = d.get("graph", {}).get("nodes", [])
                chain = " → ".join(n.get("service", "?") for n in nodes)
                est = (d.get("evaluation") or {}).get("estimate") or {}
                extra = f" (about {est['duration_s']:.0f} s)" if est.get("duration_s") is not None else ""
                return f"Plan: {chain}{extra}\n", f"Plan ready: {len(nodes)} steps"
            case "job":
                return f"Job {d.get('status')}: {float(d.get('progress') or 0) * 100:.0f}%\n", f"Job {d.get('status')}"
            case "node":
                name = d.get("node")
                status = d.get("status")
                err = f": {d['error'].get('message', '')}" if isinstance(d.get("error"), dict) else ""
                return f"Step {name} ({d.get('service')}) {status}{err}\n", f"{name}: {status}"
            case "progress":
                node, p = str(d.get("node")), float(d.get("progress") or 0)
                if p < 1 and p - self._last_progress.get(node, -1) < 0.1:
                    return None, None
                self._last_progress[node] = p
                msg = f" {d['message']}" if d.get("message") else ""
                overall = float(d.get("job_progress") or 0) * 100
                return f"{node}: {p * 100:.0f}%{msg}\n", f"{overall:.0f}% · {node}{msg}"
            case "artifact":
                return f"Artifact: {d.get('node')} {d.get('name')} ({d.get('contentType')})\n", None
            case "error":
                return f"Error: {d.get('detail')}\n", f"Error: {d.get('detail')}"
        return None, None


@router.post("/chat/completions", summary="OpenAI-compatible chat completions (streaming and not)")
async def completions(request: Request, services: ServicesDep, owner: OwnerDep, body: CompletionRequest) -> Any:
    if body.model not in MODELS:
        raise Problem(404, f"model {body.model!r} does not exist", code="model_not_found",
                      hint=f"use one of: {', '.join(MODELS)} (GET /v1/models)")
    goal, images, history = split_request(body, int(services.settings.max_body_mb * MB))
    chunks = Chunks(body.model, bool(body.stream and body.stream_options and body.stream_options.include_usage))
    quick = task_answer(goal)
    if quick is not None or not goal:
        text = quick if quick is not None else "Tell me what to make, e.g. “a 20-second talking head about tides”."
        return _quick(services, owner, chunks, text, stream=body.stream)
    attachments = await store_attachments(services, owner, images)
    conv_id = conversation_for(request, owner)
    if conv_id and await services.repo.ensure_conversation(conv_id, owner, title_of(goal)) is None:
        conv_id = None
    turn = Turn(services, TurnRequest(
        owner=owner, message=goal, conversation_id=conv_id, attachments=attachments,
        plan_only=body.model == "spinbot-plan", wait_s=services.settings.chat_job_limit_s, history=history,
        base_url=base_url(request),
    )).start()
    if not body.stream:
        return await _collect(turn, chunks)
    status = wants_status(request, services)
    return open_stream(services, owner, _stream(turn, chunks, status, services.settings.sse_ping_s))


def _quick(services: ServicesDep, owner: str, chunks: Chunks, text: str, *, stream: bool) -> Any:
    if not stream:
        return completion(chunks, text, "", 0, 0)

    async def events() -> AsyncIterator[bytes | None]:
        yield encode(None, chunks.chunk({"role": "assistant", "content": ""}))
        yield encode(None, chunks.chunk({"content": text}))
        yield encode(None, chunks.chunk({}, "stop"))
        if chunks.include_usage:
            yield encode(None, chunks.usage(0, 0))
        yield encode(None, "[DONE]")

    return open_stream(services, owner, events())


def completion(chunks: Chunks, text: str, reasoning: str, prompt: int, completion_tokens: int) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": text}
    if reasoning:
        message["reasoning_content"] = reasoning
    return {
        "id": chunks.id, "object": "chat.completion", "created": chunks.created, "model": chunks.model,
        "system_fingerprint": None,
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": prompt, "completion_tokens": completion_tokens,
                  "total_tokens": prompt + completion_tokens},
    }


async def _collect(turn: Turn, chunks: Chunks) -> dict[str, Any]:
    narrator = Narrator()
    text, reasoning = "", ""
    try:
        async for ev in turn.events():
            if ev is None:
                continue
            if ev.type == "message":
                text += ev.data.get("delta", "")
                continue
            line, _ = narrator.line(ev)
            reasoning += line or ""
    except Exception as e:
        log.exception("reading a chat turn failed")
        reasoning += f"Error: {type(e).__name__}\n"
    return completion(chunks, final_text(turn, text), reasoning, turn.result.prompt_tokens,
                      turn.result.completion_tokens)


def _with_graph(turn: Turn, text: str) -> str:
    """spinbot-plan shows the graph itself, as JSON."""
    if turn.req.plan_only and turn.result.graph is not None:
        return text + "\n\n```json\n" + orjson.dumps(turn.result.graph, option=orjson.OPT_INDENT_2).decode() + "\n```"
    return text


def final_text(turn: Turn, text: str) -> str:
    """The answer's content, never empty: a turn that ended without one says what went wrong."""
    final = _with_graph(turn, text)
    if final.strip():
        return final
    error = turn.result.error
    if error:
        hint = f" ({error['hint']})" if error.get("hint") else ""
        return f"I could not do that: {error.get('detail')}{hint}"
    return "I could not answer: the turn ended without a reply; the server log says why."


async def _stream(turn: Turn, chunks: Chunks, status: bool, ping_s: float) -> AsyncIterator[bytes | None]:
    narrator = Narrator()
    yield encode(None, chunks.chunk({"role": "assistant", "content": ""}))
    if status:
        yield encode(None, chunks.status("Understanding the goal…", False))
    text = ""
    try:
        async for ev in turn.events(idle_s=ping_s):
            if ev is None:
                yield None
                continue
            if ev.type == "message":
                text += ev.data.get("delta", "")
                continue
            if ev.type == "done":
                break
            line, description = narrator.line(ev)
            if line:
                yield encode(None, chunks.chunk({"reasoning_content": line}))
            if status and description:
                yield encode(None, chunks.status(description, False))
    except Exception as e:  # the answer still ends properly: content, finish_reason, [DONE]
        log.exception("streaming a chat turn failed")
        yield encode(None, chunks.chunk({"reasoning_content": f"Error: {type(e).__name__}\n"}))
    yield encode(None, chunks.chunk({"content": final_text(turn, text)}))
    if status:
        result = turn.result
        done = "Done" if not result.error and result.status in (None, "completed") else (
            f"Job {result.status}" if result.status else "Stopped")
        yield encode(None, chunks.status(done, True))
    yield encode(None, chunks.chunk({}, "stop"))
    if chunks.include_usage:
        yield encode(None, chunks.usage(turn.result.prompt_tokens, turn.result.completion_tokens))
    yield encode(None, "[DONE]")
