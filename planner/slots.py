"""What a goal says besides its deliverables: the exact words to speak, the topic, and the values a plan
takes from it (length, voice, style, language, speed), in the languages eSpeak NG speaks best (English first).

Each reader takes the goal's text and returns one value or None; planner.intent's `read_rules` combines them
into an Intent, and a follow-up reads the same values to know what it changes.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any, Literal

from evaluator.core import URL_RE
from planner.cues import (
    COLON,
    CUE_LANGUAGE,
    DURATION,
    FASTER,
    FILE_NAME,
    FILE_NAMED,
    FILE_REFERENCE,
    MARKED_WORDS,
    MODIFIER_ONLY,
    NUMBER_WORDS,
    QUOTES,
    SLOWER,
    STYLES,
    UNSPACED,
    VOICE,
)
from planner.vocab import Vocabulary, declared
from spinbot.languages import named_language

#: tts.synthesize takes up to 20,000 characters: a read-aloud is never cut shorter
MAX_SAY = 20_000


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
    named = named_language(goal)
    if named is not None:
        return named[0]
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


def spoken_text(goal: str, vocab: Vocabulary | None = None) -> str | None:
    """The exact words a goal wants spoken: quoted text, else what follows a colon or a "say" verb.

    Quotes or a colon count after a read-aloud verb or a marker ("with the following text: '...'"); a
    quoted file name is no words. The result is always a substring of the goal (stripped), up to 20,000
    characters, never cut. The speaking deliverable's cues in `vocab` (default: the declared one) mark words too.
    """
    marked = MARKED_WORDS.search(goal)
    vocab = vocab or declared()
    speaker = vocab.deliverables.get(vocab.speaking() or "")
    speech = speaker.cue if speaker else None
    say = speaker.says if speaker else None

    def speaks(text: str) -> bool:
        return speech is not None and speech.search(text) is not None

    if not speaks(goal) and not marked:
        return None
    quoted = _quoted(goal)
    if quoted:
        return quoted
    links = [u.span() for u in URL_RE.finditer(goal)]  # the colon of "https://" leads no words
    m = next((c for c in COLON.finditer(goal) if not any(a <= c.start() < b for a, b in links)), None)
    if m and m.end() < len(goal):
        rest = goal[m.end():].strip()
        if rest and (speaks(goal[: m.start()]) or MARKED_WORDS.search(goal[: m.end()])):
            return rest[:MAX_SAY]
    m2 = say.search(goal) if say else None
    if m2:
        said = m2.group(1).strip()
        said = re.sub(r"^(?:this|that|it|the following)\s*(?:aloud|out loud)?\s*[:,]?\s*", "", said, flags=re.I)
        said = re.sub(r"\s+(?:in an? \w+ voice|with an? \w+ voice|in a \w+ tone)\.?$", "", said, flags=re.I)
        said = said.strip().rstrip(".")
        if MODIFIER_ONLY.match(said) or (FILE_NAMED.search(said) or FILE_REFERENCE.search(said)) and len(said) < 140:
            return None  # how to say it, or which file holds the words: no words
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
    """The longest quoted text (2+ characters, not a file name or a link). A straight or curly single quote opens
    only after a non-letter and closes only before one, so apostrophes ("Don't", "world's") stay inside."""
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
            if len(inner) >= 2 and not FILE_NAME.match(inner) and not URL_RE.fullmatch(inner) and (
                    best is None or len(inner) > len(best)):
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
