"""Reading a chat turn (or its continuation) as an OpenAI answer: streamed chunks or one completion."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import AsyncIterator, Callable
from typing import Any, Protocol

import orjson
from fastapi import Request

from conversation.answers import DONE_BUT, answer_for
from conversation.chat import ChatEvent, TurnRequest, TurnResult
from conversation.services import Services
from conversation.views import job_page_link
from spinbot.errorcodes import CODES
from spinbot.queue import ZERO, is_terminal
from spinbot.settings import Settings
from web.problems import openai_error
from web.sse import encode
from web.v1_chunks import Chunks, Narrator, completion
from web.v1_request import MAX_TEXT, strip_reasoning

log = logging.getLogger(__name__)

DISCONNECT_POLL_S = 1.0  # how often a non-streaming answer checks that its client is still there
_JOB_LINK = re.compile(r"/jobs/([0-9a-f]{32})\b")


class Answering(Protocol):
    """What an answer is read from: a chat turn, or the continuation of one (Resumed)."""

    services: Services
    req: TurnRequest
    result: TurnResult

    def events(self, idle_s: float | None = None) -> AsyncIterator[ChatEvent | None]: ...

    def abandon(self) -> None: ...


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
                last = await services.queue.recent_events(job_id, 1)  # follow only what comes next
                deadline = time.monotonic() + (self.req.wait_s or 0)
                followed = services.queue.follow(job_id, last[-1].id if last else ZERO,
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


def narrator_for(turn: Answering) -> Narrator:
    services, base = turn.services, turn.req.base_url
    return Narrator(lambda job_id: job_page_link(base, job_id, services.links))


async def collect_unless_left(request: Request, turn: Answering, chunks: Chunks, note: str,
                               cancel: Callable[[], None] | None) -> Any:
    """collect_answer(), watching the client: one that leaves before the answer abandons the turn (when `cancel`)."""
    collect = asyncio.create_task(collect_answer(turn, chunks, note))
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


async def collect_answer(turn: Answering, chunks: Chunks, note: str = "") -> dict[str, Any]:
    narrator = narrator_for(turn)
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


def cut_by_shutdown(turn: Answering, chunks: Chunks) -> bytes:
    """The end of a /v1 stream that the server's shutdown cuts short: the answer says what happened and
    where the job goes on, an OpenAI error object (SDKs raise it, Open WebUI shows it), the finish_reason
    and `[DONE]`, so no client takes the cut for a finished answer."""
    job_id = turn.result.job_id
    if job_id is not None:
        page = job_page_link(turn.req.base_url, job_id, turn.services.links)
        text = (f"The server stopped (a restart or an update) while writing this answer. Your job goes on: "
                f"{page} . Send the same message again, or press Continue, to follow it here.")
    else:
        text = ("The server stopped (a restart or an update) before your job started. Send your message again "
                "in a moment.")
    out = encode(None, chunks.chunk({"content": text}))
    out += encode(None, {"error": openai_error(CODES["server_shutting_down"].status, text, "server_shutting_down")})
    out += encode(None, chunks.chunk({}, "stop"))
    return out + encode(None, "[DONE]")


async def stream_answer(turn: Answering, chunks: Chunks, status: bool, ping_s: float,
                  note: str = "") -> AsyncIterator[bytes | None]:
    narrator = narrator_for(turn)
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
    final = final_text(turn, text, note)
    yield encode(None, chunks.chunk({"content": final}))
    if status:
        result = turn.result
        done = "Done" if not result.error and result.status in (None, "completed") else (
            f"Job {result.status}" if result.status and result.status != "queued" else "Not done")
        if done == "Done" and final.lstrip().startswith(DONE_BUT):
            done = f"{DONE_BUT} not as asked: see the answer"
        yield encode(None, chunks.status(done, True))
    yield encode(None, chunks.chunk({}, "stop"))
    if chunks.include_usage:
        yield encode(None, chunks.usage(turn.result.prompt_tokens, turn.result.completion_tokens))
    yield encode(None, "[DONE]")
