"""What the OpenAI endpoint reads of a request: the message list's models, the goal, its images, the history."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from spinbot.errors import Problem
from web.attachments import AttachmentIn
from web.limits import too_large

# Clients resend the whole chat, earlier images included, with every turn; Spinbot uses only the last user
# message's images and the text of the HISTORY_LIMIT messages before it. The raw body may be this many
# times SPINBOT_MAX_BODY_MB (web/app.py); what is used is held to SPINBOT_MAX_BODY_MB.
V1_BODY_FACTOR = 4
HISTORY_LIMIT = 200
# What the planner reads of a goal, and of each earlier message (as POST /api/chat's `message`).
MAX_TEXT = 20_000

# Reasoning we sent earlier comes back inside assistant history as Open WebUI renders it.
_REASONING = re.compile(r"<details\s+type=\"reasoning\"[^>]*>.*?</details>\s*|<think>.*?</think>\s*", re.S | re.I)
_ATTACHED = re.compile(r"<attached_files>(.*?)</attached_files>\s*", re.S | re.I)
_FILE_TAG = re.compile(r"<file\b(.*?)/?>", re.S)
_ATTR = re.compile(r'([\w-]+)="([^"]*)"')


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
            raise Problem("invalid_attachment",
                          "image_url parts must be data: URLs; Spinbot does not fetch remote URLs",
                          hint="send the image inline as data:image/...;base64,...")
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
        raise Problem("invalid_request", "there is no user message",
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
