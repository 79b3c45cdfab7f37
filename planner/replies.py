"""The planner's replies without a plan: greetings, capabilities, job status, questions, and what cannot be done
(with what can, in the services' own words from planner.vocab)."""

from __future__ import annotations

import re

from planner.intent import Intent
from planner.models import PlanRequest
from planner.pipelines import list_pipelines
from planner.vocab import Vocabulary
from spinbot.manifest import MergedManifest

__all__ = ["can_do", "cannot_text", "first_sentence", "left_out", "reply_text"]


def first_sentence(text: str) -> str:
    """The first sentence of a description; "e.g." and "i.e." do not end one."""
    for m in re.finditer(r"\.(\s|$)", text):
        before = text[: m.start() + 1]
        if not re.search(r"(?:\be\.g|\bi\.e|\betc|\bvs)\.$", before, re.I):
            return before.rstrip(".").strip()
    return text.strip().rstrip(".")


def can_do(manifest: MergedManifest) -> str:
    """What Spinbot can do now, in the services' own words: "read text aloud; draw an image; ..."."""
    return "; ".join(Vocabulary(manifest).menu()) or "nothing right now: no executor is running"


def left_out(unoffered: list[str], manifest: MergedManifest) -> str:
    return (f"left out: {' and '.join(unoffered)} (no service here does that); the rest of the request is "
            f"planned")


def cannot_text(intent: Intent, manifest: MergedManifest) -> str:
    """The reply to a request that cannot be planned: the operation no service offers, or the input problem."""
    if intent.reply_kind == "bad_input" and intent.problem:
        return intent.problem
    ops = " and ".join(intent.unoffered) or "that"
    return f"Not something I can do: {ops} (no service here does it). What I can do: {can_do(manifest)}."


def reply_text(kind: str, req: PlanRequest, manifest: MergedManifest, llm_note: str = "") -> str:
    services = sorted(manifest.available(), key=lambda s: s.id)
    if kind == "capabilities":
        lines = [f"- {s.id} ({'/'.join(s.planes)}): {first_sentence(s.description)}" for s in services]
        pipelines = ", ".join(p.name for p in list_pipelines())
        planes = ", ".join(f"{p}: {len(st.executors)} executor(s)" for p, st in manifest.planes.items()) or "none"
        body = "\n".join(lines) or "- nothing right now: no executor is running"
        off = [s for s in manifest.services.values() if not s.available and not s.hidden]
        missing = "".join(f"\n- {s.id} is unavailable: {s.unavailable_reason}" for s in off)
        return (
            f"I can {can_do(manifest)}.\n\nThe services behind it (executors online: {planes}):\n{body}{missing}\n\n"
            f'Fixed pipelines: {pipelines}. Tell me a goal, e.g. "a 30-second talking-head video '
            'explaining how solar panels work, female voice".'
        )
    if kind == "job_status":
        job = next((m.job_id for m in reversed(req.conversation) if m.job_id), None)
        if req.previous_graph is None and job is None:
            return "There is no job in this conversation yet. Tell me what to make and I will plan it."
        where = f" Job {job}: its live progress is in the job panel." if job else ""
        return f"Your latest job is the last plan in this conversation.{where}"
    if kind == "greeting":
        return (
            f"Hello! I'm Spinbot. I plan and run short media jobs: {can_do(manifest)}. "
            'Tell me what you\'d like, e.g. "a 30-second video explaining how solar panels work, female voice".'
        )
    why = f" (I could not ask the LLM: {llm_note})" if llm_note else ""
    return (
        f"I make media from a goal: {can_do(manifest)}. Tell me what to make, or ask \"what can you do?\".{why}"
    )
