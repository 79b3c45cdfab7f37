"""The intent: what a goal asks for, as a small typed record that a model or the rules fill.

A plan starts here, not from a graph. `Intent` says reply or plan, which deliverables (speech, an
image, a talking video, a script, an upscale of an attachment), the exact words to speak, voice,
duration, style, language and which attachment is which. `read_rules` fills it without a model;
`planner.reading` asks a model for the same record and checks it against these rules;
`planner.builder` turns it into a graph.

The rules cover the goal's cues in several languages (read-aloud verbs, media nouns) and the
signals that need no language at all: quoted text, text after a colon, attachments and their kinds,
the script a text is written in.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from evaluator.core import URL_RE
from planner import asks
from planner.cues import (
    CAPABILITIES,
    COLON,
    CREATE,
    CUE_LANGUAGE,
    DURATION,
    FASTER,
    FILE_NAME,
    FILE_NAMED,
    FOLLOW_UP,
    GREETING,
    JOB_STATUS,
    LANGUAGE_NAMES,
    MARKED_WORDS,
    MODIFIER_ONLY,
    NUMBER_WORDS,
    QUESTION,
    QUOTES,
    REFERENCE,
    SAME_MEDIUM,
    SAY_EN,
    SLOWER,
    SPEECH,
    STYLES,
    UNSPACED,
    VOICE,
)
from planner.vocab import Vocabulary, declared
from spinbot.graph import Attachment
from spinbot.units import shorten

#: A deliverable is a name some service offers (planner.vocab); the builder refuses one no service offers.
Deliverable = Annotated[str, Field(pattern=r"^[a-z][a-z_]{1,30}$")]
ReplyKind = Literal["greeting", "capabilities", "job_status", "question", "unoffered", "bad_input"]
MAX_SAY = 20_000  # tts.synthesize takes up to 20,000 characters: a read-aloud is never cut shorter


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


# ---- cues, in the languages eSpeak NG speaks best (English first) ---------------------------------


def duration_s(goal: str) -> float | None:
    """Seconds a goal names ("a 30-second video", "two minutes", "45s"), within 1..3600; else None."""
    m = DURATION.search(goal)
    if m is None:
        return None
    raw, unit = (m.group(1) or m.group(3)).lower(), (m.group(2) or m.group(4)).lower()
    value = float(raw) if raw[0].isdigit() else float(NUMBER_WORDS[raw])
    seconds = value * 60 if unit.startswith("m") else value
    return seconds if 1 <= seconds <= 3600 else None


def voice(goal: str) -> Literal["female", "male"] | None:
    for name, pattern in VOICE:
        if pattern.search(goal):
            return name  # type: ignore[return-value]
    return None


def style(goal: str) -> str | None:
    lowered = goal.lower()
    return next((s for s in STYLES if re.search(rf"\b{s}\b", lowered)), None)


def script_language(text: str) -> str | None:
    """The language a text's own script implies (Arabic, Cyrillic, CJK, Greek letters); None for Latin."""
    counts: dict[str, int] = {}
    for ch in text:
        if not ch.isalpha():
            continue
        name = unicodedata.name(ch, "")
        for prefix, code in (("ARABIC", "ar"), ("CYRILLIC", "ru"), ("CJK", "zh"), ("HIRAGANA", "ja"),
                             ("KATAKANA", "ja"), ("GREEK", "el"), ("HEBREW", "he"), ("HANGUL", "ko")):
            if name.startswith(prefix):
                counts[code] = counts.get(code, 0) + 1
    if not counts:
        return None
    if "ja" in counts:  # Japanese mixes kana and kanji
        return "ja"
    return max(counts, key=lambda c: counts[c])


def language(goal: str, said: str | None = None) -> str | None:
    """"in German" names it; else the script of the words to speak; else the cue words' language."""
    lowered = goal.lower()
    for word, code in LANGUAGE_NAMES.items():
        if re.search(rf"\bin {word}\b", lowered):
            return code
    found = script_language(said or goal)
    if found:
        return found
    return next((code for code, cue in CUE_LANGUAGE if cue.search(goal)), None)


def speed(goal: str) -> int | None:
    if SLOWER.search(goal):
        return 120
    if FASTER.search(goal):
        return 200
    return None


def spoken_text(goal: str, speech: re.Pattern[str] | None = None) -> str | None:
    """The exact words a goal wants spoken: quoted text, else what follows a colon or a "say" verb.

    Quotes or a colon count after a read-aloud verb or a marker ("with the following text: '...'"); a
    quoted file name is no words. The result is always a substring of the goal (stripped), up to 20,000
    characters, never cut. `speech`: the speaking deliverable's own cues (planner.vocab), read as markers too.
    """
    marked = MARKED_WORDS.search(goal)

    def speaks(text: str) -> bool:
        return bool(SPEECH.search(text) or (speech is not None and speech.search(text)))

    if not speaks(goal) and not SAY_EN.search(goal) and not marked:
        return None
    quoted = _quoted(goal)
    if quoted:
        return quoted
    m = COLON.search(goal)
    if m and m.end() < len(goal) and not URL_RE.match(goal[m.start() - 5: m.end() + 2]):
        rest = goal[m.end():].strip()
        if rest and (speaks(goal[: m.start()]) or MARKED_WORDS.search(goal[: m.end()])):
            return rest[:MAX_SAY]
    m2 = SAY_EN.search(goal)
    if m2:
        said = m2.group(1).strip()
        said = re.sub(r"^(?:this|that|it|the following)\s*(?:aloud|out loud)?\s*[:,]?\s*", "", said, flags=re.I)
        said = re.sub(r"\s+(?:in an? \w+ voice|with an? \w+ voice|in a \w+ tone)\.?$", "", said, flags=re.I)
        said = said.strip().rstrip(".")
        if MODIFIER_ONLY.match(said) or FILE_NAMED.search(said) and len(said) < 140:  # how or what file, not words
            return None
        return said[:MAX_SAY] or None
    return None


def without(goal: str, said: str) -> str:
    """`goal` with the words to speak blanked out (their last whole occurrence: "say 'hi'" keeps "this")."""
    edge = rf"[^\W{UNSPACED}]"
    found = list(re.finditer(rf"(?<!{edge}){re.escape(said)}(?!{edge})", goal)) or list(
        re.finditer(re.escape(said), goal))
    if not found:
        return goal
    m = found[-1]
    return goal[: m.start()] + " " + goal[m.end():]


def _quoted(goal: str) -> str | None:
    """The longest quoted text (2+ characters, not a file name). A straight or curly single quote opens only
    after a non-letter and closes only before one, so apostrophes ("Don't", "world's") stay inside."""
    best: str | None = None
    for open_q, close_q in QUOTES:
        single = open_q in "'‘"
        start = goal.find(open_q)
        while start != -1:
            if single and start > 0 and goal[start - 1].isalnum():  # an apostrophe inside a word is no quote
                start = goal.find(open_q, start + 1)
                continue
            end = goal.find(close_q, start + 1)
            while single and end != -1 and end + 1 < len(goal) and goal[end + 1].isalnum():
                end = goal.find(close_q, end + 1)
            if end == -1:
                break
            inner = goal[start + 1: end].strip()
            if len(inner) >= 2 and not FILE_NAME.match(inner) and (best is None or len(inner) > len(best)):
                best = inner
            start = goal.find(open_q, end + 1)
        if best:
            return best[:MAX_SAY]
    return best


_LEAD = re.compile(
    r"^\s*(please\s+)?(can you\s+|could you\s+|i want\s+|i'd like\s+|i would like\s+)?"
    r"(?:(make|create|generate|produce|render|build|give me|do|draw|paint|write)\b)?\s*(me\s+)?(an?\s+|the\s+)?",
    re.I,
)
_KIND = re.compile(
    r"^[\w\s,-]*?\b(video|clip|movie|film|explainer|presentation|talking[- ]head|avatar|script|image|picture|"
    r"poster|drawing|illustration|voice[- ]?over|narration|audio|speech|recording)\b\s*(video\s*)?"
    r"(about|on|explaining|that explains|which explains|describing|showing|of)?\s*",
    re.I,
)
#: "a man explaining why the sky is blue": the narration is about why the sky is blue
_WHO = re.compile(r"^(?:an? |the )?(?:[\w'-]+ ){0,3}?(?:explaining|explains|describing|describes|talking about|"
                  r"talks about|presenting|presents|who explains|about)\s+", re.I)
_TAIL = re.compile(
    r"(,|\bwith\b|\bin\b|\busing\b)\s*(an?\s+)?(female|male|woman'?s?|man'?s?|\w+)?\s*(voice|narrator|speaker|style|"
    r"tone|english|german|french|spanish|subtitles?|captions?)\b.*$",
    re.I,
)


def topic(goal: str) -> str:
    """The subject of a goal: "a 30-second video explaining how solar panels work, female voice" ->
    "how solar panels work". URLs are removed whole (services cannot fetch them)."""
    text = URL_RE.sub(" ", goal).strip()
    text = DURATION.sub(" ", text)
    text = re.sub(r"\s+", " ", text).strip()
    text = _LEAD.sub("", text, count=1)
    text = _KIND.sub("", text, count=1)
    text = _WHO.sub("", text, count=1)
    text = _TAIL.sub("", text)
    text = re.sub(r"\s+", " ", text).strip(" ,.;:-")
    return (text or re.sub(r"\s+", " ", URL_RE.sub(" ", goal)).strip() or "an introduction to Spinbot")[:2000]


def goal_constraints(goal: str) -> dict[str, Any]:
    """Constraints a goal states in words, e.g. "30-second" -> max_duration_s 30."""
    d = duration_s(goal)
    return {"max_duration_s": d} if d is not None else {}


# ---- the rules' reading -------------------------------------------------------------------------


def reply_kind(goal: str, *, has_previous: bool) -> ReplyKind | None:
    """The reply a goal asks for when it asks for no deliverable; None when it asks for something made."""
    text = goal.strip()
    if not text or GREETING.match(text):
        return "greeting"
    if CAPABILITIES.search(text):
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
    speaker = vocab.deliverables.get(vocab.speaking() or "")
    said = spoken_text(spoken, speaker.cue if speaker else None)
    frame = without(spoken, said) if said else spoken  # the words to speak are data, not the request
    asked = asks.choose(frame, said, attachments, vocab, goal)
    speaking = vocab.speaking()
    named = [d for d in asked.deliverables if d != speaking]
    medium = bool(asked.deliverables)
    reply = reply_kind(goal, has_previous=previous is not None)
    if reply in ("greeting", "capabilities") and not medium and not asked.unoffered:
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
