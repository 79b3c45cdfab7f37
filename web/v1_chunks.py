"""The OpenAI wire format of an answer: chat.completion(.chunk) objects, and progress lines for reasoning.

Strict clients parse every chunk, so the format is exact: one id and `created` for the whole answer,
a role chunk first, progress as `reasoning_content` deltas, the answer as `content` deltas, a
finish_reason chunk, a usage chunk when asked for, then `data: [DONE]`; no SSE `id:` lines.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

import orjson

from conversation.chat import ChatEvent
from spinbot.units import estimate_text


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
                extra = f" ({estimate_text(est)})" if est.get("duration_s") is not None else ""
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
