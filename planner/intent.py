"""What a goal asks for, read with rules: reply or plan, which fixed pipeline, and the params it names.

No LLM here: these rules decide the cheap cases (greetings, capability and job questions) and fill
the fallback pipeline's params, so Spinbot still works when Ollama does not.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

from evaluator.core import URL_RE
from spinbot.graph import Attachment

Kind = Literal["greeting", "capabilities", "job_status", "chat", "plan"]

GREETING = re.compile(
    r"^\s*(hi|hello|hey|hallo|good (morning|afternoon|evening)|thanks|thank you|cheers|bye|goodbye|yo)\b[\s!.,?]*"
    r"(there|spinbot|bot|a lot|so much)?[\s!.,?]*$",
    re.I,
)
CAPABILITIES = re.compile(
    r"\b(what can (you|spinbot|it) do|what are you able|what do you (do|offer|support)|capabilit|"
    r"which (services|tools|models)|what (services|tools)|help me\?*$|^help\b|list (the )?services)",
    re.I,
)
JOB_STATUS = re.compile(
    r"\b(status|progress|how('s| is) (it|my|the) (going|job|video)|is it (done|ready|finished)|"
    r"are you done|how long (will|does) it|when will it be (done|ready)|eta)\b",
    re.I,
)
DELIVERABLE = re.compile(
    r"\b(video|clip|movie|film|talking[- ]head|avatar|presenter|portrait|picture|image|photo|audio|voice|"
    r"narrat\w*|speech|speak|say|says|read|recite|tts|animate|render|draw|script|subtitle\w*|caption\w*|"
    r"explain\w*|make|create|generate|produce|record)\b",
    re.I,
)
FOLLOW_UP = re.compile(
    r"\b(instead|make it|change|switch|use a|now with|again|longer|shorter|faster|slower|same but|redo)\b", re.I
)


def classify(goal: str, *, has_previous: bool = False, has_attachments: bool = False) -> Kind:
    """Reply-only kinds first; anything asking for a deliverable (or changing the last plan) is a plan."""
    text = goal.strip()
    if not text:
        return "chat"
    if GREETING.match(text):
        return "greeting"
    if CAPABILITIES.search(text) and not DELIVERABLE.search(text.replace("what can you do", "")):
        return "capabilities"
    if has_previous and JOB_STATUS.search(text) and not FOLLOW_UP.search(text):
        return "job_status"
    if DELIVERABLE.search(text) or has_attachments or (has_previous and FOLLOW_UP.search(text)):
        return "plan"
    if JOB_STATUS.search(text):
        return "job_status"
    return "chat"


# ---- params from words -----------------------------------------------------------------------

_NUMBER_WORDS = {
    "five": 5, "ten": 10, "fifteen": 15, "twenty": 20, "thirty": 30, "forty": 40, "forty-five": 45,
    "fifty": 50, "sixty": 60, "ninety": 90, "one": 1, "two": 2, "three": 3, "four": 4, "half a": 0.5, "a": 1,
}  # fmt: skip
_DURATION = re.compile(
    r"\b(\d+(?:\.\d+)?|" + "|".join(sorted(map(re.escape, _NUMBER_WORDS), key=len, reverse=True)) + r")"
    r"[\s-]*(seconds?|secs?|s|minutes?|mins?|m)\b",
    re.I,
)
_VOICE = [
    ("female", re.compile(r"\b(female|woman'?s?|women|girl'?s?|feminine|her voice|she)\b", re.I)),
    ("male", re.compile(r"\b(male|man'?s?|men|boy'?s?|masculine|his voice|he)\b", re.I)),
]
_STYLES = ("scientific", "funny", "humorous", "formal", "casual", "dramatic", "friendly", "educational",
           "informative", "serious", "playful", "poetic", "enthusiastic", "calm")  # fmt: skip
_LANGUAGES = {"english": "en", "german": "de", "french": "fr", "spanish": "es", "italian": "it",
              "portuguese": "pt", "dutch": "nl"}  # fmt: skip
_QUOTED = re.compile(r"[\"“”']([^\"“”']{2,5000})[\"“”']")
_SAY = re.compile(r"\b(?:say|says|saying|read|reads|recite|speak|speaks)\b[:,]?\s+(.{2,5000})$", re.I | re.S)


def duration_s(goal: str) -> float | None:
    m = _DURATION.search(goal)
    if m is None:
        return None
    raw, unit = m.group(1).lower(), m.group(2).lower()
    value = float(raw) if raw[0].isdigit() else float(_NUMBER_WORDS[raw])
    seconds = value * 60 if unit.startswith("m") else value
    return seconds if 1 <= seconds <= 3600 else None


def voice(goal: str) -> str | None:
    for name, pattern in _VOICE:
        if pattern.search(goal):
            return name
    return None


def style(goal: str) -> str | None:
    lowered = goal.lower()
    return next((s for s in _STYLES if s in lowered), None)


def language(goal: str) -> str | None:
    lowered = goal.lower()
    return next((code for word, code in _LANGUAGES.items() if f"in {word}" in lowered), None)


def spoken_text(goal: str) -> str | None:
    """What a "say ..." goal wants said: quoted text first, else what follows the verb."""
    if m := _QUOTED.search(goal):
        return m.group(1).strip()
    if m := _SAY.search(goal):
        return m.group(1).strip().rstrip(".")
    return None


_LEAD = re.compile(
    r"^\s*(please\s+)?(can you\s+|could you\s+|i want\s+|i'd like\s+|i would like\s+)?"
    r"(make|create|generate|produce|render|build|give me|do)?\s*(me\s+)?(an?\s+|the\s+)?",
    re.I,
)
_KIND = re.compile(
    r"^[\w\s,-]*?\b(video|clip|movie|film|explainer|presentation|talking[- ]head|avatar)\b\s*"
    r"(video\s*)?(about|on|explaining|that explains|which explains|describing|showing|of)?\s*",
    re.I,
)
_TAIL = re.compile(
    r"(,|\bwith\b|\bin\b|\busing\b)\s*(an?\s+)?(female|male|woman'?s?|man'?s?|\w+)?\s*(voice|narrator|speaker|style|"
    r"tone|english|german|french|spanish|subtitles?|captions?)\b.*$",
    re.I,
)


def topic(goal: str) -> str:
    """The subject of a video goal: "a 30-second video explaining how solar panels work, female voice"."""
    text = URL_RE.sub("", goal).strip()
    text = _DURATION.sub("", text)
    text = _LEAD.sub("", text, count=1)
    text = _KIND.sub("", text, count=1)
    text = _TAIL.sub("", text)
    text = re.sub(r"\s+", " ", text).strip(" ,.;:-")
    return (text or URL_RE.sub("", goal).strip() or "an introduction to Spinbot")[:2000]


def goal_constraints(goal: str) -> dict[str, Any]:
    """Constraints a goal states in words, e.g. "30-second" -> max_duration_s 30."""
    d = duration_s(goal)
    return {"max_duration_s": d} if d is not None else {}


# ---- the fallback's choice --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Choice:
    pipeline: str
    params: dict[str, Any]
    score: int


def pipeline_params(name: str, goal: str, attachments: list[Attachment]) -> dict[str, Any]:
    """The params a fixed pipeline needs, read from the goal (and an attached image for sadtalker)."""
    found: dict[str, Any] = {}
    if (v := voice(goal)) is not None:
        found["voice"] = v
    if (lang := language(goal)) is not None:
        found["language"] = lang
    if name in ("f5tts_infinitetalk", "svd_wav2lip"):
        found["topic"] = topic(goal)
        if (d := duration_s(goal)) is not None:
            found["duration_s"] = min(600.0, max(5.0, d))
        if (s := style(goal)) is not None:
            found["style"] = s
        if name == "svd_wav2lip" and re.search(r"\b(no|without) (subtitles|captions)\b", goal, re.I):
            found["subtitles"] = False
    elif name == "sadtalker":
        found["text"] = URL_RE.sub("", spoken_text(goal) or topic(goal))[:5000] or "Hello!"
        image = next((a for a in attachments if a.kind == "image"), None)
        if image is not None:
            found["portrait"] = image.id
        elif "voice" in found:  # the drawn presenter matches the voice asked for
            who = "woman" if found["voice"] == "female" else "man"
            found["portrait_prompt"] = f"a friendly {who} presenting, head and shoulders, studio light"
    return found


def rank_pipelines(goal: str, attachments: list[Attachment], intents: dict[str, list[str]]) -> list[Choice]:
    """Pipelines by how well the goal's words (and attachments) match their intents, best first."""
    lowered = goal.lower()
    has_image = any(a.kind == "image" for a in attachments)
    choices = []
    for name, words in intents.items():
        score = sum(3 if " " in w else 2 for w in words if re.search(rf"\b{re.escape(w)}\b", lowered))
        if name == "sadtalker" and (has_image or spoken_text(goal) and _SAY.search(goal)):
            score += 3
        if name == "f5tts_infinitetalk":
            score += 1  # the default deliverable: a talking-head explainer
        if name == "capabilities" and score == 0:
            score = -1
        choices.append(Choice(name, pipeline_params(name, goal, attachments), score))
    return sorted(choices, key=lambda c: -c.score)
