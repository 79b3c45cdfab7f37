"""The OpenAI-compatible endpoint (for Open WebUI and any OpenAI client): /v1/models, /v1/chat/completions.

The request is read by web.v1_request, Open WebUI's own tasks are answered by web.v1_tasks, a goal becomes
a chat turn (conversation.chat) whose events web.v1_answer turns into the answer (format: web.v1_chunks).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request

from conversation.answers import title_of
from conversation.chat import Turn, TurnRequest
from spinbot.errors import Problem
from web.attachments import store_attachments
from web.deps import OwnerDep, ServicesDep
from web.limits import MB
from web.routes.chat import base_url
from web.sse import encode, open_stream
from web.v1_answer import (
    Answering,
    Resumed,
    collect_unless_left,
    cut_by_shutdown,
    stream_answer,
    too_long,
    unread_note,
)
from web.v1_chunks import Chunks, completion
from web.v1_request import MAX_TEXT, CompletionRequest, split_request
from web.v1_tasks import task_answer, task_kind, without_task_heading

log = logging.getLogger(__name__)

router = APIRouter(prefix="/v1", tags=["openai"])

MODELS = {
    "spinbot": "plans the goal into a task graph and runs it; the answer links the results",
    "spinbot-plan": "plans only: shows the evaluated task graph without running it",
}
CREATED = 1_735_689_600  # 2025-01-01: a fixed `created` for the models list


@router.get("/models", summary="The models this endpoint offers")
async def models(owner: OwnerDep) -> dict[str, Any]:
    return {"object": "list", "data": [
        {"id": mid, "object": "model", "created": CREATED, "owned_by": "spinbot", "description": desc}
        for mid, desc in MODELS.items()
    ]}


def wants_status(request: Request, services: ServicesDep) -> bool:
    return services.settings.openwebui_status or any(h.lower().startswith("x-openwebui-") for h in request.headers)


def conversation_for(request: Request, owner: str, model: str) -> str | None:
    """The stored conversation of an Open WebUI chat, one per model: a multi-model chat (one chat id, an answer
    from each model) keeps each model's turns, jobs and Continue apart. `spinbot`'s id is the one it always had."""
    chat_id = request.headers.get("x-openwebui-chat-id")
    if not chat_id:
        return None
    scope = f"{owner}\n{chat_id}" + ("" if model == "spinbot" else f"\n{model}")
    return "owui_" + hashlib.sha256(scope.encode()).hexdigest()[:24]


@router.post("/chat/completions", summary="OpenAI-compatible chat completions (streaming and not)")
async def completions(request: Request, services: ServicesDep, owner: OwnerDep, body: CompletionRequest) -> Any:
    if body.model not in MODELS:
        raise Problem("model_not_found", f"model {body.model!r} does not exist",
                      hint=f"use one of: {', '.join(MODELS)} (GET /v1/models)")
    asked = split_request(body, int(services.settings.max_body_mb * MB))
    chunks = Chunks(body.model, bool(body.stream and body.stream_options and body.stream_options.include_usage))
    if (kind := task_kind(asked.goal)) is not None and asked.continued is None:
        return await _quick(services, owner, chunks, await task_answer(services.settings, kind, asked.goal),
                      stream=body.stream)
    goal = without_task_heading(asked.goal)
    if len(goal) > MAX_TEXT:
        return await _quick(services, owner, chunks, too_long(len(goal)), stream=body.stream)
    conv_id = conversation_for(request, owner, body.model)
    if conv_id and await services.repo.ensure_conversation(conv_id, owner, title_of(goal)) is None:
        conv_id = None
    answering: Answering
    if asked.continued is None and conv_id is not None and goal and (
            running := await Resumed.running(services, owner, conv_id, goal, base_url(request))) is not None:
        answering = running  # the same message again while its job runs (Continue after Stop): no second job
    elif asked.continued is not None:
        resumed = await Resumed.find(services, owner, asked.continued, conv_id, base_url(request))
        if resumed is None:
            return await _quick(services, owner, chunks, "That answer is complete: it has no job to continue. Send a "
                          "message to ask for something new.", stream=body.stream)
        answering = resumed
    elif not goal:
        what = f" with {', '.join(a.name or 'the image' for a in asked.images)}" if asked.images else ""
        return await _quick(services, owner, chunks, f"Tell me what to make{what}, e.g. “a 20-second talking head "
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
        return await collect_unless_left(request, answering, chunks, note, cancel)
    status = wants_status(request, services)
    answer = stream_answer(answering, chunks, status, services.settings.sse_ping_s, note)
    return await open_stream(services, owner, answer, on_disconnect=cancel,
                             on_shutdown=lambda: cut_by_shutdown(answering, chunks))


async def _quick(services: ServicesDep, owner: str, chunks: Chunks, text: str, *, stream: bool) -> Any:
    if not stream:
        return completion(chunks, text, "", 0, 0)

    async def events() -> AsyncIterator[bytes | None]:
        yield encode(None, chunks.chunk({"role": "assistant", "content": ""}))
        yield encode(None, chunks.chunk({"content": text}))
        yield encode(None, chunks.chunk({}, "stop"))
        if chunks.include_usage:
            yield encode(None, chunks.usage(0, 0))
        yield encode(None, "[DONE]")

    return await open_stream(services, owner, events())
