"""Open WebUI's own tasks (title, tags, follow-ups, ...) sent to /v1/chat/completions: known and answered at once,
by the model when one answers, by rule otherwise; never planned, never run as a job."""

from __future__ import annotations

import logging
import re
from typing import Any

import orjson

from spinbot.errors import SpinbotError
from spinbot.llm import reachable, structured_chat
from spinbot.settings import Settings
from spinbot.units import shorten
from web.v1_request import attached_files

log = logging.getLogger(__name__)

TASK_HISTORY_CHARS = 4_000  # the end of the chat a title, tags or follow-ups task shows the model
TASK_TIMEOUT_S = 30.0

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
    return shorten(title[:1].upper() + title[1:], 60) if title else "Spinbot chat"


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
