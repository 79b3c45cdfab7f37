"""The planner's replies without a plan: greetings, capabilities, job status, questions, and what cannot be done
(with what can, in the services' own words from planner.vocab)."""

from __future__ import annotations

import re

from planner.intent import Intent
from planner.models import PlanRequest
from planner.vocab import Vocabulary
from spinbot.manifest import MergedManifest

__all__ = ["SAID", "can_do", "cannot_text", "capabilities_text", "first_sentence", "left_out", "reply_text"]


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
    ops = " and ".join(intent.unoffered) or "that"
    if intent.reply_kind == "bad_input" and intent.problem:  # the input problem, and what else was asked in vain
        return intent.problem + (f" Not something I can do either: {ops} (no service here does it)."
                                 if intent.unoffered else "")
    return f"Not something I can do: {ops} (no service here does it). What I can do: {can_do(manifest)}."


#: the llm_note of a conversation's later answers: no-LLM mode was said in its first one (planner.agent)
SAID = "(no-LLM mode, said before)"


def capabilities_text(manifest: MergedManifest) -> str:
    """What can run now, in the services' own user words (no service ids, no pipeline names), then what
    cannot run now and why, then an example goal."""
    vocab = Vocabulary(manifest)
    now = [f"- {does}" for does in vocab.menu()] or ["- nothing right now: no executor is running (start them "
                                                      "with `spinbot up`)"]
    off = [f"- not now: {d.does} ({manifest.services[d.service].unavailable_reason or 'its service is not running'})"
           for d in vocab.deliverables.values() if not manifest.services[d.service].available]
    return ("Here is what I can make for you now:\n" + "\n".join(now + off) + "\n\n"
            "Attach a portrait or a voice sample to use your own (the Profiles page keeps them for later). "
            'Tell me a goal, e.g. "a 30-second talking-head video explaining how solar panels work, female voice".')


def reply_text(kind: str, req: PlanRequest, manifest: MergedManifest, llm_note: str = "") -> str:
    if kind == "capabilities":
        return capabilities_text(manifest)
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
    why = f" {llm_note}" if llm_note and llm_note != SAID else ""
    return (  # a question no model answered, or a request for nothing I make: say so, then what I make
        f"That is not a question I can answer or a task I can do here. I make media from a goal: {can_do(manifest)}. "
        f"Tell me what to make, or ask \"what can you do?\".{why}"
    )
