"""A model's reading of a goal: one structured-output call that fills the intent, checked by the rules.

The schema is tight (enums, bounded strings, every key required, keys in the order the prompt shows
them) so even a 135M model answers valid JSON; the prompt is one fixed prefix (the same bytes on
every call, so a server can cache it) and a short user part. The answer is never trusted as is:
`merge` keeps what the rules read for certain (quoted or colon-led words, a medium word, a named
voice or length) and takes the model's answer only where the rules found nothing, and only where
it can be checked (words to speak must occur in the goal; a number must be in the goal).
"""

from __future__ import annotations

import json
import re
import unicodedata
from typing import Any

from planner import asks, slots
from planner.cues import QUESTION
from planner.intent import Intent
from planner.vocab import Vocabulary, declared
from spinbot import prompts
from spinbot.graph import Attachment
from spinbot.llm import LLMResult, structured_chat
from spinbot.manifest import MergedManifest
from spinbot.settings import Settings

PROMPT_VERSION = "intent.v2"
NUM_PREDICT = 384
LANGUAGES = ("en", "fr", "de", "es", "it", "pt", "nl", "ru", "ar", "zh", "ja", "pl", "tr", "el", "")
EXAMPLES: list[tuple[str, dict[str, Any]]] = [
    ("a 20-second talking-head video about bees, male voice",
     {"kind": "plan", "deliverables": ["talking_video"], "say": "", "topic": "bees", "voice": "male",
      "duration_s": 20, "language": "en", "answer": ""}),
    ("read this aloud: good morning",
     {"kind": "plan", "deliverables": ["speech"], "say": "good morning", "topic": "", "voice": "", "duration_s": 0,
      "language": "en", "answer": ""}),
    ("what can you do?",
     {"kind": "reply", "deliverables": [], "say": "", "topic": "", "voice": "", "duration_s": 0, "language": "en",
      "answer": "I read text aloud, draw images and make talking-head videos. Tell me what to make."}),
]  # fmt: skip
#: The words the model copies are bounded tighter than the intent's (a long read-aloud is the rules' to copy);
#: a length the model reads is bounded like the intent's.
SAY_CHARS, TOPIC_CHARS = 600, 120
MAX_SECONDS = int(next(m.le for m in Intent.model_fields["duration_s"].metadata if hasattr(m, "le")))


def schema(vocab: Vocabulary | None = None) -> dict[str, Any]:
    """The answer's JSON schema: keys in prompt order, every array and string bounded; the deliverables are
    the names the services offer (planner.vocab)."""
    names = list((vocab or declared()).deliverables)
    return {
        "type": "object",
        "properties": {
            "kind": {"enum": ["plan", "reply"]},
            "deliverables": {"type": "array", "items": {"enum": names}, "maxItems": 3},
            "say": {"type": "string", "maxLength": SAY_CHARS},
            "topic": {"type": "string", "maxLength": TOPIC_CHARS},
            "voice": {"enum": ["female", "male", ""]},
            "duration_s": {"type": "integer", "minimum": 0, "maximum": MAX_SECONDS},
            "language": {"enum": list(LANGUAGES)},
            "answer": {"type": "string", "maxLength": 400},
        },
        "required": ["kind", "deliverables", "say", "topic", "voice", "duration_s", "language", "answer"],
        "additionalProperties": False,
    }


def plan_schema(manifest: MergedManifest, max_steps: int = 8) -> dict[str, Any]:
    """The compact plan a capable model may write instead: each step's schema is its service's own.

    A step is {"id", "service", "params", "inputs"}: `params` holds that service's plain params (its
    own JSON Schema properties, nothing else), `inputs` its data inputs as "step.output" strings.
    """
    steps = []
    for spec in sorted(manifest.available(), key=lambda s: s.id):
        props = spec.params.get("properties", {})
        plain = {k: v for k, v in props.items() if k not in spec.inputs}
        ref = {"type": "string", "maxLength": 64}
        inputs = {k: {"anyOf": [ref, {"type": "array", "maxItems": 8, "items": ref}]} for k in spec.inputs}
        steps.append({
            "type": "object",
            "properties": {
                "service": {"const": spec.id},
                "id": {"type": "string", "minLength": 1, "maxLength": 24},
                "params": {"type": "object", "properties": plain, "additionalProperties": False},
                "inputs": {"type": "object", "properties": inputs, "additionalProperties": False},
            },
            "required": ["service", "id", "params", "inputs"],
            "additionalProperties": False,
        })
    return {
        "type": "object",
        "properties": {"steps": {"type": "array", "minItems": 1, "maxItems": max_steps, "items": {"anyOf": steps}}},
        "required": ["steps"],
        "additionalProperties": False,
    }


def answer_schema(settings: Settings, manifest: MergedManifest) -> dict[str, Any]:
    """The intent schema, or (SPINBOT_PLANNER_DIRECT_PLANS) the intent or a compact plan."""
    vocab = Vocabulary(manifest)
    if settings.planner_direct_plans:
        return {"anyOf": [schema(vocab), plan_schema(manifest)]}
    return schema(vocab)


def system_prompt(manifest: MergedManifest) -> str:
    """The fixed prefix: what each deliverable does (the services' own words), the keys, the examples."""
    vocab = Vocabulary(manifest)
    offers = [(d.name, d.does) for d in vocab.deliverables.values() if manifest.services[d.service].available]
    examples = [(goal, json.dumps(answer, ensure_ascii=False)) for goal, answer in EXAMPLES]
    return prompts.render(f"{PROMPT_VERSION}.system.j2", offers=offers, examples=examples)


def previous_plan(graph: dict[str, Any] | None, previous: Intent | None) -> str:
    """The plan shown before, in one bounded line: its intent and its steps with their plain params."""
    if not graph:
        return ""
    steps = []
    for n in graph.get("nodes") or []:
        plain = {k: v for k, v in (n.get("params") or {}).items() if isinstance(v, str | int | float | bool)}
        steps.append(f"{n.get('service')} {json.dumps(plain, ensure_ascii=False)[:120]}")
    head = f"{previous.summary()}; " if previous is not None else ""
    return (head + "steps: " + ", ".join(steps))[:600]


#: The goal's characters the model sees: a long read-aloud's words are the rules' to copy (a colon or
#: quotes mark them); the model reads the request around them, and the prompt stays under ~1,200 tokens.
GOAL_CHARS = 1200


def user_prompt(goal: str, attachments: list[Attachment], previous: str) -> str:
    atts = ", ".join(f"{a.id} ({a.kind})" for a in attachments)
    shown = goal if len(goal) <= GOAL_CHARS else goal[:GOAL_CHARS] + " [...]"
    return prompts.render(f"{PROMPT_VERSION}.user.j2", goal=shown, attachments=atts, previous=previous)


#: The conversation the model sees: the last few turns, each cut short (the prompt stays small).
HISTORY_TURNS, HISTORY_CHARS = 4, 300


async def ask(
    settings: Settings,
    manifest: MergedManifest,
    goal: str,
    attachments: list[Attachment],
    previous: str = "",
    history: list[dict[str, str]] | None = None,
) -> LLMResult:
    """One model call for the intent (raises spinbot.llm errors: unavailable, timeout, garbage).

    Messages: the fixed system prompt, the last HISTORY_TURNS turns (HISTORY_CHARS each), the goal.
    """
    turns = [{"role": m["role"], "content": m["content"][:HISTORY_CHARS]} for m in (history or [])
             if m["role"] in ("user", "assistant") and m["content"].strip()][-HISTORY_TURNS:]
    messages = [{"role": "system", "content": system_prompt(manifest)}, *turns,
                {"role": "user", "content": user_prompt(goal, attachments, previous)}]
    num_predict = NUM_PREDICT * 3 if settings.planner_direct_plans else NUM_PREDICT
    return await structured_chat(settings, messages, answer_schema(settings, manifest), num_predict=num_predict,
                                 timeout_s=settings.ollama_timeout_s)


def _norm(text: str) -> str:
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())


def in_goal(words: str, goal: str) -> bool:
    """Words to speak are the user's own: they must occur in the goal (case and spacing aside)."""
    w = _norm(words).strip(" .!?\"'«»“”")
    return bool(w) and w in _norm(goal)


def merge(
    ruled: Intent, answer: Any, goal: str, attachments: list[Attachment], trusted: frozenset[str] = frozenset(),
    vocab: Vocabulary | None = None, distrusted: frozenset[str] = frozenset(),
) -> tuple[Intent, dict[str, str]]:
    """The rules' intent, completed by the model's answer where the rules were silent and the answer checks.

    A field in `trusted` (measured by planner.trust) takes the model's value over the rules' when the
    value checks; a field in `distrusted` (measured below the threshold) fills no gap where the rules
    decided (today: kind, whose gap is the rules' reply to a goal they could not read). Returns the intent
    and, per field, where it came from or why the model's value was dropped.
    """
    trace: dict[str, str] = {}
    vocab = vocab or declared()
    if not isinstance(answer, dict):
        return ruled, {"model": "not an object: ignored"}
    if trusted:
        ruled = _trusted_values(ruled, answer, goal, trusted, trace, vocab)
    # A model measured below the threshold on kind (`distrusted`) does not change the rules' kind either: on the
    # public requests (bench/planning_public.py) the embedded 1.5B model, at 73 % on kind, turned 6 of the rules'
    # replies into wrong jobs (a 3D model, audio inpainting, a greeting) and 1 into a right one.
    sure_kind = "kind" not in trusted and ("kind" in distrusted or ruled.kind == "plan" or bool(QUESTION.search(goal)))
    update: dict[str, Any] = {}
    kind = answer.get("kind")
    if not sure_kind and kind in ("plan", "reply") and kind != ruled.kind:
        update["kind"] = kind
        trace["kind"] = "model"
    final_kind = update.get("kind", ruled.kind)
    if final_kind == "plan":
        raw = answer.get("deliverables")
        delivered = [d for d in raw if isinstance(d, str) and d in vocab.deliverables] if isinstance(raw, list) else []
        if not ruled.deliverables and delivered:
            update["deliverables"] = list(dict.fromkeys(delivered))
            trace["deliverables"] = "model"
        say = answer.get("say")
        if isinstance(say, str) and say.strip() and ruled.say is None:
            if in_goal(say, goal):
                update["say"] = say.strip()
                trace["say"] = "model"
            else:
                trace["say"] = "model's words are not in the goal: dropped"
        topic = answer.get("topic")
        if isinstance(topic, str) and topic.strip() and not ruled.topic and not update.get("say") and not ruled.say:
            update["topic"] = topic.strip()[:2000]
            trace["topic"] = "model"
        if answer.get("voice") in ("female", "male") and ruled.voice is None:
            update["voice"] = answer["voice"]
            trace["voice"] = "model"
        seconds = answer.get("duration_s")
        if isinstance(seconds, int) and not isinstance(seconds, bool) and 1 <= seconds <= 600 \
                and ruled.duration_s is None:
            if re.search(rf"(?<!\d){seconds}(?!\d)", goal):
                update["duration_s"] = float(seconds)
                trace["duration_s"] = "model"
            else:
                trace["duration_s"] = f"model's {seconds} s is not in the goal: dropped"
        lang = answer.get("language")
        if isinstance(lang, str) and lang in LANGUAGES and lang and ruled.language is None and lang != "en":
            update["language"] = lang
            trace["language"] = "model"
        if update.get("kind") == "plan" and not update.get("deliverables"):
            fallback = vocab.speaking() if update.get("say") else vocab.default()
            update["deliverables"] = [fallback] if fallback else []
    if final_kind == "reply":
        update.setdefault("deliverables", [])
        if ruled.kind == "plan":  # the model says reply, but the rules read a plan for certain
            update.pop("deliverables")
    merged = ruled.model_copy(update=update)
    if trace.get("deliverables", "").startswith("model") and merged.kind == "plan":  # bind the files to them
        merged = merged.model_copy(update=asks.bound(merged.deliverables, attachments, vocab, goal, merged.say))
    if merged.kind == "plan" and merged.reply_kind is not None:
        merged = merged.model_copy(update={"reply_kind": None})
    if merged.kind == "reply" and merged.reply_kind is None:
        merged = merged.model_copy(update={"reply_kind": "question"})
    if merged.kind == "plan" and "topic" not in trace and not merged.say and not merged.topic:
        merged = merged.model_copy(update={"topic": slots.topic(goal)})
    return merged, trace


def _trusted_values(ruled: Intent, answer: dict[str, Any], goal: str, trusted: frozenset[str],
                    trace: dict[str, str], vocab: Vocabulary) -> Intent:
    """The rules' intent with the trusted fields' checked model values put first."""
    update: dict[str, Any] = {}
    kind = answer.get("kind")
    if "kind" in trusted and kind in ("plan", "reply") and kind != ruled.kind:
        update["kind"] = kind
        update["reply_kind"] = "question" if kind == "reply" else None
        trace["kind"] = "model (trusted)"
    raw = answer.get("deliverables")
    delivered = list(dict.fromkeys(d for d in raw if isinstance(d, str) and d in vocab.deliverables)) \
        if isinstance(raw, list) else []
    if "deliverables" in trusted and delivered and update.get("kind", ruled.kind) == "plan":
        update["deliverables"] = delivered
        trace["deliverables"] = "model (trusted)"
    say = answer.get("say")
    if "say" in trusted and isinstance(say, str) and say.strip() and in_goal(say, goal):
        if ruled.say and (_part_of(say, ruled.say) or _part_of(ruled.say, say)):
            # the model left words out (cut short, markup dropped) or took the request in with them
            trace["say"] = "rules (the model's words are a part of them, or they of the model's)"
        else:
            update["say"] = say.strip()
            trace["say"] = "model (trusted)"
    if "voice" in trusted and answer.get("voice") in ("female", "male"):
        update["voice"] = answer["voice"]
        trace["voice"] = "model (trusted)"
    seconds = answer.get("duration_s")
    if "duration_s" in trusted and isinstance(seconds, int) and not isinstance(seconds, bool) \
            and 1 <= seconds <= 600 and re.search(rf"(?<!\d){seconds}(?!\d)", goal):
        update["duration_s"] = float(seconds)
        trace["duration_s"] = "model (trusted)"
    lang = answer.get("language")
    if "language" in trusted and isinstance(lang, str) and lang in LANGUAGES and lang:
        update["language"] = lang
        trace["language"] = "model (trusted)"
    if update.get("kind") == "reply":
        update["deliverables"] = []
    return ruled.model_copy(update=update)


def _part_of(part: str, whole: str) -> bool:
    """Whether `part` is a strict piece of `whole` (casefolded, spaces collapsed): "The tide comes in" of a
    longer passage, "alert(1)" of "<script>alert(1)</script>", the words of "请使用 sparktts 朗读：科技改变世界"."""
    a, b = (" ".join(t.casefold().split()) for t in (part, whole))
    return a != b and a in b


def model_answer_text(answer: Any) -> str | None:
    """The model's short answer to a question, if it wrote one (bounded by the schema)."""
    if isinstance(answer, dict) and isinstance(answer.get("answer"), str):
        text = " ".join(answer["answer"].split())
        return text or None
    return None
