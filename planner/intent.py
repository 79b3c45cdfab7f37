"""The intent: what a goal asks for, as a small typed record that a model or the rules fill.

A plan starts here, not from a graph. `Intent` says reply or plan, which deliverables (speech, an
image, a talking video, a script, an upscale of an attachment), the exact words to speak, voice,
duration, style, language and which attachment is which. `read_rules` fills it without a model;
`planner.reading` asks a model for the same record and checks it against these rules;
`planner.builder` turns it into a graph.

The rules cover the goal's cues in several languages (read-aloud verbs, media nouns) and the
signals that need no language at all: quoted text, text after a colon, attachments and their kinds,
the script a text is written in. planner.asks reads which deliverables and attachments; planner.slots
reads the values (the words to speak, topic, length, voice, language, speed).
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from evaluator.core import URL_RE
from planner import asks
from planner.cues import (
    CAPABILITIES,
    CREATE,
    FOLLOW_UP,
    GREETING,
    JOB_STATUS,
    QUESTION,
    REFERENCE,
    SAME_MEDIUM,
    SUPPORT_QUESTION,
)
from planner.slots import MAX_SAY, duration_s, language, speed, spoken_text, style, topic, voice, without
from planner.vocab import Vocabulary, declared
from spinbot.graph import Attachment
from spinbot.languages import without_trailing_language
from spinbot.units import shorten

#: A deliverable is a name some service offers (planner.vocab); the builder refuses one no service offers.
Deliverable = Annotated[str, Field(pattern=r"^[a-z][a-z_]{1,30}$")]
ReplyKind = Literal["greeting", "capabilities", "job_status", "question", "unoffered", "bad_input"]


class Intent(BaseModel):
    """What a goal asks for. Every string is bounded; `say` must occur in the goal (see `verify`)."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["reply", "plan"]
    reply_kind: ReplyKind | None = None
    deliverables: list[Deliverable] = Field(default_factory=list, max_length=8)
    say: str | None = Field(default=None, max_length=MAX_SAY, description="the exact words to speak")
    topic: str | None = Field(default=None, max_length=2000, description="what a script or narration is about")
    image_prompt: str | None = Field(default=None, max_length=2000, description="what an image shows")
    voice: Literal["female", "male"] | None = None
    speed: int | None = Field(default=None, ge=80, le=450, description="words per minute")
    duration_s: float | None = Field(default=None, ge=1, le=3600)
    style: str | None = Field(default=None, max_length=60)
    language: str | None = Field(default=None, pattern=r"^[a-z]{2,3}$")
    portrait: str | None = Field(default=None, max_length=64, description="attachment id: the face to animate")
    source_video: str | None = Field(default=None, max_length=64, description="attachment id: the video to upscale")
    clips: list[str] = Field(default_factory=list, max_length=31, description="attachment ids: more videos, in order")
    text_file: str | None = Field(default=None, max_length=64, description="attachment id: a text file whose "
                                  "contents are the words (to speak, or the subtitles)")
    soundtrack: str | None = Field(default=None, max_length=64, description="attachment id: the audio a video uses "
                                   "instead of synthesised speech")
    voice_sample: str | None = Field(default=None, max_length=64, description="attachment id: the voice to speak in")
    voice_words: str | None = Field(default=None, max_length=2000, description="the exact words of voice_sample")
    unoffered: list[str] = Field(default_factory=list, max_length=16, description="operations asked that no service "
                                 "offers (left out of the plan, named in the answer)")
    problem: str | None = Field(default=None, max_length=600, description="why the goal gets a reply, not a plan")
    upscale_factor: Literal[2, 4] | None = None
    profile: str | None = Field(default=None, max_length=40, description="the caller's profile whose face and "
                                "voice are used (set from their profiles, never from the model's answer)")
    presenter: Literal["woman", "man", "person"] | None = Field(
        default=None, description="who a drawn presenter portrait shows; a follow-up keeps the previous plan's, so "
        "changing only the voice does not redraw the face (and the node cache reuses it)")

    def presenter_or_voice(self) -> str:
        """Who a drawn presenter shows: the pinned presenter, else one that matches the voice."""
        return self.presenter or ("woman" if self.voice == "female" else "man" if self.voice == "male" else "person")

    def summary(self) -> str:
        """One line for people: "talking_video, say 'hi', male voice, 30 s"."""
        if self.kind == "reply":
            return f"reply ({self.reply_kind or 'question'})"
        if not self.deliverables and self.profile:
            return f"save profile {self.profile}"
        parts = [", ".join(self.deliverables) or "nothing"]
        if self.say:
            parts.append(f"say {shorten(self.say, 40)!r}")
        elif self.topic:
            parts.append(f"about {shorten(self.topic, 40)!r}")
        if self.profile:
            parts.append(f"profile {self.profile}")
        for label, value in (("voice", self.voice), ("s", self.duration_s), ("language", self.language)):
            if value is not None:
                parts.append(f"{value:g} s" if label == "s" else f"{value} {label}")  # type: ignore[str-format]
        return ", ".join(parts)


# ---- the rules' reading -------------------------------------------------------------------------


def reply_kind(goal: str, *, has_previous: bool) -> ReplyKind | None:
    """The reply a goal asks for when it asks for no deliverable; None when it asks for something made."""
    text = goal.strip()
    if not text or GREETING.match(text):
        return "greeting"
    if CAPABILITIES.search(text) or SUPPORT_QUESTION.search(text) and QUESTION.search(text):
        return "capabilities"
    if JOB_STATUS.search(text) and not FOLLOW_UP.search(text):
        return "job_status"
    return None


def read_rules(goal: str, attachments: list[Attachment], *, previous: Intent | None = None,
               vocab: Vocabulary | None = None) -> Intent:
    """The intent from the goal's words and attachments alone (no model), in `vocab`'s terms (default: the
    declared services). A follow-up (`previous` given) keeps the previous intent and changes what the goal names.
    """
    vocab = vocab or declared()
    spoken = REFERENCE.sub(" ", goal)  # what a voice sample says is not what to say
    said = spoken_text(spoken, vocab)
    said = without_trailing_language(said) if said else said  # "say good morning in German"
    frame = without(spoken, said) if said else spoken  # the words to speak are data, not the request
    asked = asks.choose(frame, said, attachments, vocab, goal)
    speaking = vocab.speaking()
    named = [d for d in asked.deliverables if d != speaking]
    medium = bool(asked.deliverables)
    reply = reply_kind(goal, has_previous=previous is not None)
    if reply in ("greeting", "capabilities") and not medium and not asked.unoffered or \
            reply == "capabilities" and said is None and previous is None:  # "is it possible to ...?": what can be done
        return Intent(kind="reply", reply_kind=reply)
    if reply == "job_status" and previous is not None and not medium:
        return Intent(kind="reply", reply_kind="job_status")
    # "say it with a male voice", "make it slower": how to redo the last plan, not a new request
    new_request = (bool(named) or said is not None) and not (
        previous is not None and said is None and SAME_MEDIUM.search(goal))
    if previous is not None and not new_request and not asked.unoffered and (
            FOLLOW_UP.search(goal) or _changes(goal) or medium):
        return _follow_up(previous, goal)
    problem = asks.input_problem(frame, attachments, vocab) or asked.problem
    if problem:
        return Intent(kind="reply", reply_kind="bad_input", problem=problem, unoffered=asked.unoffered)
    if not medium:
        if asked.unoffered:
            return Intent(kind="reply", reply_kind="unoffered", unoffered=asked.unoffered)
        if QUESTION.search(goal) or not CREATE.search(goal) or vocab.default() is None:
            return Intent(kind="reply", reply_kind="job_status" if reply == "job_status" else "question")
        asked.deliverables = [vocab.default() or ""]  # "make something about volcanoes": the default deliverable
    deliverables = asked.deliverables
    frame = asked.frame
    subject = None if said else topic(frame)
    d = duration_s(frame)
    return Intent(
        kind="plan",
        deliverables=deliverables,
        say=said,
        topic=subject,
        image_prompt=_image_prompt(spoken) if any(vocab.deliverables[x].output_type == "image" for x in deliverables
                                                 if x in vocab.deliverables) else None,
        voice=voice(frame),
        speed=speed(frame),
        duration_s=d,
        style=style(frame),
        language=language(frame, said),
        portrait=asked.portrait,
        source_video=asked.source_video,
        clips=asked.clips,
        soundtrack=asked.soundtrack,
        text_file=asked.text_file,
        voice_sample=asked.voice_sample,
        voice_words=asked.voice_words,
        unoffered=asked.unoffered,
        upscale_factor=4 if re.search(r"\b4 ?x\b|\bfour times\b", frame, re.I) else None,
    )


def _image_prompt(goal: str) -> str:
    text = URL_RE.sub(" ", goal)
    text = re.sub(r"^\s*(please\s+)?(can you\s+|could you\s+)?(draw|paint|make|create|generate|render|give me)"
                  r"\s+(me\s+)?", "", text.strip(), flags=re.I)
    return re.sub(r"\s+", " ", text).strip(" .") or "an image"


def _changes(goal: str) -> dict[str, Any]:
    """What a follow-up changes in words: voice, duration, style, language, speed, the words to speak."""
    found: dict[str, Any] = {}
    if (v := voice(goal)) is not None:
        found["voice"] = v
    if (d := duration_s(goal)) is not None:
        found["duration_s"] = d
    if (s := style(goal)) is not None:
        found["style"] = s
    if (lang := language(goal)) is not None:
        found["language"] = lang
    if (sp := speed(goal)) is not None:
        found["speed"] = sp
    if (said := spoken_text(goal)) is not None:
        found["say"] = said
    return found


def _follow_up(previous: Intent, goal: str) -> Intent:
    changes = _changes(goal)
    if previous.say is None:
        changes.pop("say", None)
    if "talking_video" in previous.deliverables:  # the face drawn before stays, whatever the new voice
        changes.setdefault("presenter", previous.presenter_or_voice())
    return previous.model_copy(update=changes)


def changed_fields(before: Intent, after: Intent) -> dict[str, tuple[Any, Any]]:
    """Field -> (old, new) for what a follow-up changed, to tell the user."""
    out = {}
    for name in Intent.model_fields:
        old, new = getattr(before, name), getattr(after, name)
        if old != new:
            out[name] = (old, new)
    return out
