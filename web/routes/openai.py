"""The OpenAI-compatible endpoint (for Open WebUI and any OpenAI client): /v1/models, /v1/chat/completions.

Strict clients parse every chunk, so the format is exact: one id and `created` for the whole answer,
a role chunk first, progress as `reasoning_content` deltas, the answer as `content` deltas, a
finish_reason chunk, a usage chunk when asked for, then `data: [DONE]`; no SSE `id:` lines.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import re
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson
from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from spinbot import constants as C
from spinbot.settings import Settings
from web.attachments import AttachmentIn, store_attachments
from web.chat import ChatEvent, Turn, TurnRequest, TurnResult, answer_for, title_of
from web.deps import OwnerDep, Services, ServicesDep
from web.limits import MB, too_large
from web.problems import Problem
from web.routes.chat import base_url
from web.sse import ZERO, encode, follow_job, is_terminal, open_stream
from web.views import job_page_link

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
# What the planner reads of a goal, and of each earlier message (as POST /api/chat's `message`).
MAX_TEXT = 20_000
TASK_HISTORY_CHARS = 4_000  # the end of the chat a title, tags or follow-ups task shows the model
TASK_TIMEOUT_S = 30.0
DISCONNECT_POLL_S = 1.0  # how often a non-streaming answer checks that its client is still there

# Reasoning we sent earlier comes back inside assistant history as Open WebUI renders it.
_REASONING = re.compile(r"<details\s+type=\"reasoning\"[^>]*>.*?</details>\s*|<think>.*?</think>\s*", re.S | re.I)
_ATTACHED = re.compile(r"<attached_files>(.*?)</attached_files>\s*", re.S | re.I)
_FILE_TAG = re.compile(r"<file\b(.*?)/?>", re.S)
_ATTR = re.compile(r'([\w-]+)="([^"]*)"')
_JOB_LINK = re.compile(r"/jobs/([0-9a-f]{32})\b")


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


def attached_files(text: str) -> tuple[str, list[dict[str, str]]]:
    """(text without them, the files) for Open WebUI's `<attached_files><file .../></attached_files>` blocks.

    Open WebUI 0.12 puts one in front of a user message's text for each upload; the words are the user's.
    """
    files: list[dict[str, str]] = []

    def take(block: re.Match[str]) -> str:
        files.extend(dict(_ATTR.findall(tag.group(1))) for tag in _FILE_TAG.finditer(block.group(1)))
        return ""

    return _ATTACHED.sub(take, text).strip(), files


def images_of(content: str | list[dict[str, Any]] | None, names: list[str] | None = None) -> list[AttachmentIn]:
    """The image_url parts as attachments, named after the image files Open WebUI named (in order)."""
    if not isinstance(content, list):
        return []
    names = list(names or [])
    out = []
    for i, part in enumerate(content):
        if part.get("type") != "image_url":
            continue
        spec = part.get("image_url")
        url = spec.get("url") if isinstance(spec, dict) else spec
        if not isinstance(url, str) or not url.startswith("data:"):
            raise Problem(422, "image_url parts must be data: URLs; Spinbot does not fetch remote URLs",
                          code="invalid_attachment", hint="send the image inline as data:image/...;base64,...")
        out.append(AttachmentIn(name=names.pop(0) if names else f"image{i + 1}", data=url))
    return out


def strip_reasoning(text: str) -> str:
    return _REASONING.sub("", text).strip()


@dataclass
class V1Request:
    """What Spinbot uses of an OpenAI message list."""

    goal: str  # the last user message's text, without Open WebUI's attached-files block
    images: list[AttachmentIn]
    history: list[dict[str, Any]]  # the text of the messages before it
    unread: list[str] = field(default_factory=list)  # files Open WebUI named but did not send (only their link)
    continued: str | None = None  # "Continue response": the answer so far (the last message is the assistant's)


def split_request(body: CompletionRequest, max_bytes: int) -> V1Request:
    """The goal, its attachments and the history before it from an OpenAI message list.

    Earlier messages' images are dropped unread and the history is their text, the last HISTORY_LIMIT
    user/assistant messages, each cut to MAX_TEXT; what is used (the last user message, bytes of its
    text and data URLs) must fit max_bytes, else 413.
    """
    last_user = max((i for i, m in enumerate(body.messages) if m.role == "user"), default=None)
    if last_user is None:
        raise Problem(422, "there is no user message", code="invalid_request",
                      hint="the last message should be {\"role\": \"user\", \"content\": \"your goal\"}")
    content = body.messages[last_user].content
    if (used := used_size(content)) > max_bytes:
        raise too_large("the last user message (text and images)", used, max_bytes, setting="SPINBOT_MAX_BODY_MB")
    goal, files = attached_files(text_of(content))
    # The image files also arrive as image_url parts (the data itself): those are used, once each.
    image_names = [f.get("name") or "" for f in files if f.get("content_type", "").startswith("image/")]
    images = images_of(content, [n for n in image_names if n])
    unread = [f.get("name") or f.get("id") or "a file" for f in files
              if not f.get("content_type", "").startswith("image/") and f.get("type") != "chat"]
    unread += image_names[len(images):]
    earlier = [m for m in body.messages[:last_user] if m.role in ("user", "assistant")][-HISTORY_LIMIT:]
    history = [{"role": m.role, "content": attached_files(strip_reasoning(text_of(m.content)))[0][:MAX_TEXT]}
               for m in earlier]
    last = body.messages[-1]
    continued = text_of(last.content) if len(body.messages) - 1 > last_user and last.role == "assistant" else None
    return V1Request(goal, images, history, unread, continued)


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


# ---- Open WebUI's own tasks (title, tags, follow-ups, ...) ------------------------------------

# Classified on the task's instruction only, never on the chat history inside the prompt (which may say anything).
_TASK_HEADING = re.compile(r"\A\s*###\s*Task:[ \t]*\n?", re.I)
_TASK_KINDS = (
    ("title", re.compile(r"\b(title|header)\b")),
    ("tags", re.compile(r"\btags?\b")),
    ("follow_ups", re.compile(r"follow[- ]?ups?\b|\b(messages?|questions?|prompts?)\b.{0,80}\bnext\b"
                              r"|\bnext\b.{0,80}\b(messages?|questions?|prompts?)\b")),
    ("queries", re.compile(r"\bsearch quer|\bqueries\b")),
    ("text", re.compile(r"\bautocomplet")),
    ("prompt", re.compile(r"\bimage generation\b")),
    ("emoji", re.compile(r"\bemoji\b")),
)
# A title prompt without the heading (a custom template, an older Open WebUI): known by its instruction.
_TITLE_INSTRUCTION = re.compile(r"\A\s*(please\s+)?(create|generate|write|give|suggest|provide)\b[^\n]{0,120}?"
                                r"\b(title|header)\b", re.I)
_TITLE_EVIDENCE = re.compile(r"\b\d\s*-\s*\d\s*word|\bconcise\b|chat history|<chat_history>|\bquery\b"
                             r"|respond only", re.I)
_EMOJI_INSTRUCTION = re.compile(r"\A\s*your task is to\b[^\n]{0,200}\bemoji\b", re.I)
_HISTORY = re.compile(r"<chat_history>(.*?)(?:</chat_history>|\Z)", re.S)


def task_line(prompt: str) -> str:
    """The instruction of a task prompt: under `### Task:` up to the next heading, else the first paragraph;
    never past the start of an embedded chat history."""
    head = prompt.split("<chat_history>", 1)[0]
    if (m := _TASK_HEADING.match(head)) is not None:
        return re.split(r"^\s*###", head[m.end():], maxsplit=1, flags=re.M)[0].strip()
    return re.split(r"\n\s*\n", head.strip(), maxsplit=1)[0].strip()


def task_kind(prompt: str) -> str | None:
    """Which Open WebUI task a prompt is (title, tags, follow_ups, queries, text, prompt, emoji), None for a goal."""
    line = task_line(prompt)
    if _TASK_HEADING.match(prompt):
        # Open WebUI's task prompts embed a chat history (or the text to complete) and ask for JSON.
        if not re.search(r"<chat_history>|<text>|\bjson\b", prompt, re.I):
            return None
        lower = line.lower()
        return next((kind for kind, pattern in _TASK_KINDS if pattern.search(lower)), None)
    if _TITLE_INSTRUCTION.search(line) and _TITLE_EVIDENCE.search(prompt):
        return "title"
    if _EMOJI_INSTRUCTION.search(line):
        return "emoji"
    return None


def without_task_heading(goal: str) -> str:
    """A goal written under a `### Task:` heading (not one of Open WebUI's tasks), without the heading."""
    return _TASK_HEADING.sub("", goal, count=1).strip() or goal


def chat_history_of(prompt: str) -> str:
    m = _HISTORY.search(prompt)
    history = m.group(1) if m else prompt
    return attached_files(history)[0][-TASK_HISTORY_CHARS:].strip()


_LEADING = re.compile(r"^(please|can you|could you|would you|i want|i need|i'd like|make|create|generate|produce|"
                      r"render|give me|show me|me|a|an|the)\b[\s,:]*", re.I)


def rule_title(history: str) -> str:
    """A short title by rule: the first user message's first few words, without leading fillers."""
    first = next((ln.split(":", 1)[1].strip() for ln in history.splitlines()
                  if ln.strip().upper().startswith("USER:") and ":" in ln), "") or history.strip()
    words = re.sub(r"[\"'`*#_<>\[\]“”‘’«»]", "", first).split()
    text = " ".join(words[:12])
    while (stripped := _LEADING.sub("", text, count=1)) != text and stripped:
        text = stripped
    title = " ".join(text.split()[:5]).rstrip(".,;:!?")
    return (title[:1].upper() + title[1:])[:60] if title else "Spinbot chat"


def _tight(kind: str) -> tuple[str, dict[str, Any], int]:
    """(instruction, JSON schema with every array and string bounded, num_predict) for a task the model answers."""
    about = ("The chat is with Spinbot, which turns goals into media: speech, images, talking-head videos. ")
    if kind == "title":
        return (about + "Write a 3-5 word title for the chat. No emojis, no quotes. Answer as JSON.",
                {"type": "object", "additionalProperties": False, "required": ["title"],
                 "properties": {"title": {"type": "string", "minLength": 3, "maxLength": 60}}}, 48)
    if kind == "tags":
        return (about + "Give 1-3 short topic tags for the chat. Answer as JSON.",
                {"type": "object", "additionalProperties": False, "required": ["tags"],
                 "properties": {"tags": {"type": "array", "minItems": 1, "maxItems": 3,
                                         "items": {"type": "string", "minLength": 2, "maxLength": 24}}}}, 64)
    return (about + "Write 3 short messages the user might send Spinbot next, from the user's point of view, "
            "to change or extend what was made (the words, the voice, the length, a picture). Answer as JSON.",
            {"type": "object", "additionalProperties": False, "required": ["follow_ups"],
             "properties": {"follow_ups": {"type": "array", "minItems": 3, "maxItems": 3,
                                           "items": {"type": "string", "minLength": 3, "maxLength": 120}}}}, 160)


async def model_task(settings: Settings, kind: str, history: str) -> Any:
    """The model's answer to a title, tags or follow-ups task; None when no model answers (or badly)."""
    from spinbot.errors import SpinbotError
    from spinbot.llm import reachable, structured_chat

    if kind not in ("title", "tags", "follow_ups") or not history or await reachable(settings) is not None:
        return None
    instruction, schema, num_predict = _tight(kind)
    messages = [{"role": "system", "content": instruction}, {"role": "user", "content": f"The chat:\n{history}"}]
    try:
        result = await structured_chat(settings, messages, schema, num_predict=num_predict,
                                       timeout_s=min(settings.ollama_timeout_s, TASK_TIMEOUT_S))
    except SpinbotError as e:
        log.info("Open WebUI %s task answered by rule: %s", kind, e.message)
        return None
    value = result.data.get(kind) if isinstance(result.data, dict) else None
    if kind == "title":
        words = re.sub(r"[\"'`*#“”‘’«»]", "", str(value or "")).split()
        return " ".join(words[:5]).rstrip(".,;:!?") if len(words) >= 1 else None
    items = [re.sub(r"\s+", " ", str(v)).strip() for v in value or [] if str(v).strip()]
    items = list(dict.fromkeys(items))
    return items[:3] if items else None


async def task_answer(settings: Settings, kind: str, prompt: str) -> str:
    """Open WebUI's own tasks answered at once, no planner, no job: titles, tags and follow-ups by the model
    when one answers (a title by rule otherwise; tags and follow-ups then empty), the rest empty."""
    history = chat_history_of(prompt)
    answer = await model_task(settings, kind, history)
    if kind == "title":
        title = answer or rule_title(history)
        return orjson.dumps({"title": title}).decode() if re.search(r"\bjson\b", prompt, re.I) else title
    if kind in ("tags", "follow_ups"):
        return orjson.dumps({kind: answer or []}).decode()
    if kind == "queries":
        return orjson.dumps({"queries": []}).decode()
    if kind == "prompt":
        return orjson.dumps({"prompt": ""}).decode()
    if kind == "emoji":
        return "🎬"
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
    """Turns chat events into short progress lines (reasoning) and status descriptions.

    A status is sent only when it changes (Open WebUI lists each one), and the first event of a job
    names its page (a signed link), so the answer links the job from its start: "Continue response"
    finds the job there, and a reader can follow it while it runs.
    """

    def __init__(self, page_link: Callable[[str], str] | None = None) -> None:
        self._last_progress: dict[str, float] = {}
        self._page_link = page_link
        self._jobs: set[str] = set()
        self._last_status: str | None = None

    def status(self, description: str | None) -> str | None:
        """description if it differs from the last one sent, else None."""
        if not description or description == self._last_status:
            return None
        self._last_status = description
        return description

    def line(self, ev: ChatEvent) -> tuple[str | None, str | None]:
        line, description = self._line(ev)
        job_id = ev.data.get("job_id")
        if ev.type in ("job", "node", "progress", "artifact") and isinstance(job_id, str) and job_id not in self._jobs:
            self._jobs.add(job_id)
            page = f": {self._page_link(job_id)}" if self._page_link else ""
            line = f"Job `{job_id}`{page}\n" + (line or "")
        return line, description

    def _line(self, ev: ChatEvent) -> tuple[str | None, str | None]:
        d = ev.data
        match ev.type:
            case "planning":
                stage = d.get("stage") or d.get("kind") or d.get("event") or "planning"
                attempt = int(d.get("attempt") or 0)
                # "done" reports how many attempts were made, not a new one: it is never numbered.
                numbered = f" (attempt {attempt})" if attempt > 1 and stage != "done" else ""
                detail = d.get("message") or d.get("detail") or ""
                text = f"{stage}{numbered}" + (f": {detail}" if detail else "")
                return f"Planning: {text}\n", "Replanning…" if stage == "replanning" else "Planning…"
            case "plan":
                nodes = d.get("graph", {}).get("nodes", [])
                chain = " → ".join(n.get("service", "?") for n in nodes)
                est = (d.get("evaluation") or {}).get("estimate") or {}
                extra = f" (about {est['duration_s']:.0f} s)" if est.get("duration_s") is not None else ""
                return f"Plan: {chain}{extra}\n", f"Plan ready: {len(nodes)} steps"
            case "job":
                status, pct = d.get("status"), float(d.get("progress") or 0) * 100
                # A running job says how far it is: "Job running" twice would read as going back.
                description = f"{pct:.0f}% · running" if status == "running" else f"Job {status}"
                return f"Job {status}: {pct:.0f}%\n", description
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


class Answering(Protocol):
    """What an answer is read from: a chat turn, or the continuation of one (Resumed)."""

    services: Services
    req: TurnRequest
    result: TurnResult

    def events(self, idle_s: float | None = None) -> AsyncIterator[ChatEvent | None]: ...

    def abandon(self) -> None: ...


@router.post("/chat/completions", summary="OpenAI-compatible chat completions (streaming and not)")
async def completions(request: Request, services: ServicesDep, owner: OwnerDep, body: CompletionRequest) -> Any:
    if body.model not in MODELS:
        raise Problem(404, f"model {body.model!r} does not exist", code="model_not_found",
                      hint=f"use one of: {', '.join(MODELS)} (GET /v1/models)")
    asked = split_request(body, int(services.settings.max_body_mb * MB))
    chunks = Chunks(body.model, bool(body.stream and body.stream_options and body.stream_options.include_usage))
    if (kind := task_kind(asked.goal)) is not None and asked.continued is None:
        return _quick(services, owner, chunks, await task_answer(services.settings, kind, asked.goal),
                      stream=body.stream)
    goal = without_task_heading(asked.goal)
    if len(goal) > MAX_TEXT:
        return _quick(services, owner, chunks, too_long(len(goal)), stream=body.stream)
    conv_id = conversation_for(request, owner)
    if conv_id and await services.repo.ensure_conversation(conv_id, owner, title_of(goal)) is None:
        conv_id = None
    answering: Answering
    if asked.continued is None and conv_id is not None and goal and (
            running := await Resumed.running(services, owner, conv_id, goal, base_url(request))) is not None:
        answering = running  # the same message again while its job runs (Continue after Stop): no second job
    elif asked.continued is not None:
        resumed = await Resumed.find(services, owner, asked.continued, conv_id, base_url(request))
        if resumed is None:
            return _quick(services, owner, chunks, "That answer is complete: it has no job to continue. Send a "
                          "message to ask for something new.", stream=body.stream)
        answering = resumed
    elif not goal:
        what = f" with {', '.join(a.name or 'the image' for a in asked.images)}" if asked.images else ""
        return _quick(services, owner, chunks, f"Tell me what to make{what}, e.g. “a 20-second talking head "
                      "about tides”.", stream=body.stream)
    else:
        attachments = await store_attachments(services, owner, asked.images)
        answering = Turn(services, TurnRequest(
            owner=owner, message=goal, conversation_id=conv_id, attachments=attachments,
            plan_only=body.model == "spinbot-plan", wait_s=services.settings.chat_job_limit_s,
            history=asked.history, base_url=base_url(request),
        )).start()
    note = unread_note(asked.unread)
    cancel = answering.abandon if services.settings.v1_cancel_on_disconnect else None
    if not body.stream:
        return await _collect_unless_left(request, answering, chunks, note, cancel)
    status = wants_status(request, services)
    return open_stream(services, owner, _stream(answering, chunks, status, services.settings.sse_ping_s, note),
                       on_disconnect=cancel)


def too_long(chars: int) -> str:
    return (f"Your message is {chars:,} characters long; I read at most {MAX_TEXT:,} characters of a goal. "
            "Say what to make in fewer words (for words to be spoken, send at most that much text).")


def unread_note(names: list[str]) -> str:
    """What the answer says about files Open WebUI named but sent only as links to itself."""
    if not names:
        return ""
    return (f"I could not use {', '.join(names)}: Open WebUI sent only a link to its own copy. I read images "
            "attached to the message; other files can be attached in Spinbot's own web UI.")


class Resumed:
    """Open WebUI's "Continue response": the chat's job followed on from now, then its answer; nothing is
    planned or run again."""

    def __init__(self, services: Services, owner: str, job_id: str, base: str) -> None:
        self.services = services
        self.req = TurnRequest(owner=owner, message="", base_url=base, wait_s=services.settings.chat_job_limit_s)
        self.result = TurnResult(job_id=job_id)
        self.finished = False

    @classmethod
    async def find(cls, services: Services, owner: str, continued: str, conv_id: str | None,
                   base: str) -> Resumed | None:
        """The continuation of the answer so far, None when it has no job of this owner's to continue, or
        already ends with the job's answer."""
        found = _JOB_LINK.findall(continued)
        job_id = found[-1] if found else None
        if job_id is None and conv_id is not None:
            stored = await services.repo.messages(conv_id, limit=5)
            job_id = next((m["job_id"] for m in reversed(stored) if m["role"] == "assistant" and m.get("job_id")),
                          None)
        if job_id is None:
            return None
        state = await services.queue.get(job_id)
        if state is None or state.owner != owner:
            return None
        if state.terminal and re.search(rf"(Job page|Details): \S*/jobs/{job_id}\b", strip_reasoning(continued)):
            return None  # the answer it continues already is the job's final answer (answer_for's last line)
        return cls(services, owner, job_id, base)

    @classmethod
    async def running(cls, services: Services, owner: str, conv_id: str, goal: str, base: str) -> Resumed | None:
        """The job of this chat's last turn when the request repeats that turn's message and the job still runs.

        Open WebUI's Continue after Stop (and Regenerate) sends the chat without the stopped answer, so the
        request looks like the first one; a job that is still running is followed instead of run twice.
        """
        stored = await services.repo.messages(conv_id, limit=4)
        last_user = max((i for i, m in enumerate(stored) if m["role"] == "user"), default=None)
        if last_user is None or stored[last_user]["content"] != goal:
            return None
        job_id = next((m["job_id"] for m in stored[last_user + 1:] if m["role"] == "assistant" and m.get("job_id")),
                      None)
        state = await services.queue.get(job_id) if job_id else None
        if job_id is None or state is None or state.owner != owner or state.terminal:
            return None
        return cls(services, owner, job_id, base)

    def abandon(self) -> None:
        """Stop pressed on the continued answer: the job is cancelled as for the first answer."""
        job_id = self.result.job_id
        if not self.finished and job_id is not None:
            self.services.spawn(self.services.queue.cancel(job_id), name=f"chat-cancel-{job_id}")

    async def events(self, idle_s: float | None = None) -> AsyncIterator[ChatEvent | None]:
        services, job_id = self.services, self.result.job_id
        assert job_id is not None
        try:
            state = await services.queue.get(job_id)
            if state is not None and not state.terminal:
                last: Any = await services.redis.xrevrange(C.job_events_key(job_id), count=1)
                deadline = time.monotonic() + (self.req.wait_s or 0)
                followed: Any = follow_job(services.queue, services.hub, job_id, last[0][0] if last else ZERO,
                                           idle_s=min(idle_s or 5.0, 5.0))  # an async generator: closed below
                try:
                    async for ev in followed:
                        if ev is not None:
                            yield ChatEvent(ev.type, ev.data | {"job_id": job_id}, ev.id)
                            if is_terminal(ev):
                                break
                        elif idle_s is not None:
                            yield None
                        if time.monotonic() > deadline:
                            break
                finally:
                    await followed.aclose()
                state = await services.queue.get(job_id)
            if state is None:
                text = f"Job `{job_id}` is gone."
            else:
                self.result.status = state.status
                text = answer_for(state, job_id, self.req.base_url, services)
            self.result.text = text
            yield ChatEvent("message", {"delta": "\n\n" + text}, "")  # clients append it to the answer so far
        finally:
            self.finished = True


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


def _narrator(turn: Answering) -> Narrator:
    services, base = turn.services, turn.req.base_url
    return Narrator(lambda job_id: job_page_link(base, job_id, services.links))


async def _collect_unless_left(request: Request, turn: Answering, chunks: Chunks, note: str,
                               cancel: Callable[[], None] | None) -> Any:
    """_collect, watching the client: one that leaves before the answer abandons the turn (when `cancel`)."""
    collect = asyncio.create_task(_collect(turn, chunks, note))
    while not collect.done():
        await asyncio.wait({collect}, timeout=DISCONNECT_POLL_S)
        if not collect.done() and await request.is_disconnected():
            if cancel is not None:
                cancel()
            collect.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await collect
            return completion(chunks, "", "", 0, 0)  # nobody reads it
    return collect.result()


async def _collect(turn: Answering, chunks: Chunks, note: str = "") -> dict[str, Any]:
    narrator = _narrator(turn)
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
    return completion(chunks, final_text(turn, text, note), reasoning, turn.result.prompt_tokens,
                      turn.result.completion_tokens)


def _with_graph(turn: Answering, text: str) -> str:
    """spinbot-plan shows the graph itself, as JSON."""
    if turn.req.plan_only and turn.result.graph is not None:
        return text + "\n\n```json\n" + orjson.dumps(turn.result.graph, option=orjson.OPT_INDENT_2).decode() + "\n```"
    return text


def chat_wording(error: dict[str, Any], settings: Settings) -> str | None:
    """An API error as a chat user can act on it (they have no key and no API), where it needs other words."""
    if error.get("code") == "too_many_jobs":
        return (f"Spinbot is already running {settings.max_jobs_per_key} jobs for this connection, its limit "
                "(everyone using this chat app shares it). Wait for one to finish, or press Stop on an answer "
                "that is still running (that cancels its job), then send your message again.")
    return None


def final_text(turn: Answering, text: str, note: str = "") -> str:
    """The answer's content, never empty: a turn that ended without one says what went wrong."""
    error = turn.result.error
    final = (error and chat_wording(error, turn.services.settings)) or _with_graph(turn, text)
    if not final.strip():
        if error:
            hint = f" ({error['hint']})" if error.get("hint") else ""
            final = f"I could not do that: {error.get('detail')}{hint}"
        else:
            final = "I could not answer: the turn ended without a reply; the server log says why."
    return f"{final}\n\n{note}" if note else final


async def _stream(turn: Answering, chunks: Chunks, status: bool, ping_s: float,
                  note: str = "") -> AsyncIterator[bytes | None]:
    narrator = _narrator(turn)
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
            if status and (description := narrator.status(description)):
                yield encode(None, chunks.status(description, False))
    except Exception as e:  # the answer still ends properly: content, finish_reason, [DONE]
        log.exception("streaming a chat turn failed")
        yield encode(None, chunks.chunk({"reasoning_content": f"Error: {type(e).__name__}\n"}))
    yield encode(None, chunks.chunk({"content": final_text(turn, text, note)}))
    if status:
        result = turn.result
        done = "Done" if not result.error and result.status in (None, "completed") else (
            f"Job {result.status}" if result.status and result.status != "queued" else "Not done")
        yield encode(None, chunks.status(done, True))
    yield encode(None, chunks.chunk({}, "stop"))
    if chunks.include_usage:
        yield encode(None, chunks.usage(turn.result.prompt_tokens, turn.result.completion_tokens))
    yield encode(None, "[DONE]")
