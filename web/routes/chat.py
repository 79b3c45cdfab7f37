"""Native chat: POST /api/chat answers as Server-Sent Events; uploads for attachments."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Sequence
from typing import Any

import orjson
from fastapi import APIRouter, Request, UploadFile
from pydantic import BaseModel, Field, ValidationError, field_validator
from pydantic_core import PydanticCustomError
from starlette.datastructures import UploadFile as StarletteUpload

from conversation.chat import ChatEvent, Turn, TurnRequest
from conversation.profiles import owned_profile
from spinbot.errors import Problem, not_found
from spinbot.text import BadText, first_bad
from web.attachments import AttachmentIn, store_attachments, store_uploads
from web.deps import OwnerDep, ServicesDep
from web.limits import invalid_text
from web.sse import encode, open_stream

log = logging.getLogger(__name__)

router = APIRouter(tags=["chat"])


class ChatRequest(BaseModel):
    message: str = Field(min_length=1, max_length=20_000, description="the goal or question, in words",
                         json_schema_extra={"pattern": r"\S"})  # not only whitespace (checked below)
    conversation_id: str | None = Field(default=None, description="continue this conversation")
    attachments: list[AttachmentIn] = Field(default_factory=list, max_length=8,
                                            description="images or audio as data: URLs (or keys of uploads)")
    auto_run: bool = Field(default=True, description="false: show the plan; run it later with POST /api/jobs")
    profile: str | None = Field(default=None, max_length=64,
                                description="plan against this profile (GET /api/profiles): its portrait and voice")

    @field_validator("message")
    @classmethod
    def _not_blank(cls, v: str) -> str:
        if not v.strip():  # it would start an "Untitled" conversation that asks nothing
            raise PydanticCustomError("blank", "the message holds only whitespace: write a goal or a question")
        return v


def _schema() -> dict[str, Any]:
    # AttachmentIn is in the components already (POST /api/plan uses it).
    schema = ChatRequest.model_json_schema(ref_template="#/components/schemas/{model}")
    schema.pop("$defs", None)
    return schema


CHAT_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": _schema()},
            "multipart/form-data": {"schema": {
                "type": "object", "required": ["message"],
                "properties": {
                    "message": {"type": "string", "minLength": 1, "maxLength": 20_000, "pattern": r"\S"},
                    "conversation_id": {"type": "string"},
                    "auto_run": {"type": "boolean"},
                    "profile": {"type": "string", "maxLength": 64},
                    "files": {"type": "array", "items": {"type": "string", "format": "binary"}},
                },
            }},
        },
    },
    "responses": {"200": {"description": "text/event-stream: conversation, planning, plan, job, node, progress, "
                                         "artifact, message, done, error", "content": {"text/event-stream": {}}}},
}


async def _read_request(request: Request) -> tuple[ChatRequest, list[StarletteUpload]]:
    ctype = request.headers.get("content-type", "")
    if ctype.startswith("multipart/form-data"):
        form = await request.form()  # its files are closed by request.close() in chat()
        files = [f for f in form.getlist("files") + form.getlist("file") if isinstance(f, StarletteUpload)]
        fields = {k: v for k, v in form.items() if isinstance(v, str)}
        if (bad := first_bad(fields)) is not None:
            raise invalid_text(bad)
        check_file_names(files)
        if "auto_run" in fields:
            fields["auto_run"] = fields["auto_run"].lower() not in ("0", "false", "no", "off")  # type: ignore[assignment]
        raw: Any = fields
    else:
        try:
            raw = orjson.loads(await request.body())
        except orjson.JSONDecodeError:
            raise Problem("invalid_request", "the body is not JSON",
                          hint="send application/json {\"message\": ...} or multipart/form-data") from None
        files = []
    try:
        return ChatRequest.model_validate(raw), files
    except ValidationError as e:
        errors = [{"loc": [str(x) for x in err["loc"]], "msg": err["msg"]} for err in e.errors()[:20]]
        raise Problem("invalid_request", "the chat request does not match the schema", errors=errors,
                      hint="send {\"message\": \"...\"}; see ChatRequest in /docs") from None


@router.post("/api/chat", summary="Chat: plan, run and answer, streamed as Server-Sent Events",
             openapi_extra=CHAT_BODY)
async def chat(request: Request, services: ServicesDep, owner: OwnerDep) -> Any:
    try:  # uploaded files are closed however this ends
        body, files = await _read_request(request)
        if body.conversation_id and await services.repo.get_conversation(body.conversation_id, owner) is None:
            raise not_found("conversation", body.conversation_id)
        if body.profile:
            await owned_profile(services, body.profile, owner)  # 404 for another key's, as for an absent one
        lease = await services.streams.acquire(owner)  # the stream's slot before any work (429 when none)
        with services.streams.holding(owner, lease):
            attachments = await store_attachments(services, owner, body.attachments)
            attachments += await store_uploads(services, owner, files)
    finally:
        await request.close()
    turn = Turn(services, TurnRequest(
        owner=owner, message=body.message, conversation_id=body.conversation_id, attachments=attachments,
        auto_run=body.auto_run, base_url=base_url(request), profile=body.profile,
    )).start()

    return await open_stream(services, owner, ending(turn, services.settings.sse_ping_s), lease=lease)


async def ending(turn: Turn, idle_s: float) -> AsyncIterator[bytes | None]:
    """The turn's events as SSE (None: a keep-alive), ending with `done`, or `error` then `done` when
    reading them broke: a client never sees a stream end without one."""
    last: ChatEvent | None = None
    try:
        async for ev in turn.events(idle_s=idle_s):
            if ev is not None:
                last = ev
            yield None if ev is None else encode(ev.type, ev.data, ev.id)
    except Exception as e:
        log.exception("chat stream failed")
        error = {"code": "internal", "detail": f"the stream failed: {type(e).__name__}",
                 "hint": "the turn goes on; see the conversation (GET /api/conversations/{id}) for its answer"}
        yield encode("error", error)
        yield encode("done", {"conversation_id": turn.result.conversation_id, "job_id": turn.result.job_id,
                              "status": turn.result.status, "error": error})
        return
    if last is None or last.type != "done":  # the turn ended without one (it never should)
        yield encode("done", {"conversation_id": turn.result.conversation_id, "job_id": turn.result.job_id,
                              "status": turn.result.status, "error": turn.result.error})


def check_file_names(files: Sequence[StarletteUpload]) -> None:
    """422 invalid_text when an uploaded file's name or content type holds a NUL (multipart names are
    decoded as UTF-8 or Latin-1, so a lone surrogate cannot occur; a NUL can)."""
    for i, f in enumerate(files):
        for name, text in (("filename", f.filename), ("content_type", f.content_type)):
            if text and "\x00" in text:
                raise invalid_text(BadText(f"files[{i}].{name}", text.index("\x00"), "U+0000"))


@router.post("/api/uploads", status_code=201, summary="Upload attachments (multipart); use their keys in chat")
async def upload(services: ServicesDep, owner: OwnerDep, files: list[UploadFile]) -> dict[str, Any]:
    try:
        check_file_names(files)
        return {"items": await store_uploads(services, owner, files)}
    finally:
        for f in files:
            await f.close()


def base_url(request: Request) -> str:
    """Where clients reach this API (SPINBOT_PUBLIC_URL, else what the request says)."""
    configured = request.app.state.settings.public_url
    return (configured or str(request.base_url)).rstrip("/")

