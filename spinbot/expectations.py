"""The request's expectations, and how a job's checked results compare with them.

A plan carries what the request asked for as graph metadata `expect` (written by the planner from its
intent, `from_intent`; a hand-written graph may give its own):

    {"deliverables": ["talking_video"], "duration_s": 20, "say": "...", "voice": "female",
     "language": "en", "image": "scene"}

`compare(graph)` reads the nodes' `output.checks` (spinbot/checks.py) against them and returns findings:
`miss` (a result differs from the request, with the measured figures), `not_checked` (a check could not
be made, and why), `refined` (a node was run once more to fix a miss). Pure: the executor calls it after
each node (with `only`), the answer and the job views after the job.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from spinbot.checks import Check, checks_of, find
from spinbot.units import duration_text

#: Speaking pitch that separates typical adult male (85-155 Hz) from female (165-255 Hz) voices
#: (Titze, Principles of Voice Production, 1994); tts.synthesize maps a voice sample with the same line.
FEMALE_FROM_HZ = 160.0
#: A length within this share of the requested one (and at least MIN_SLACK_S) matches.
LENGTH_SLACK = 0.25
MIN_SLACK_S = 2.0
#: The rate a script is sized for (executors/control/script.py: WPM).
SCRIPT_WPM = 150
#: Image requests that a title card (words on a background) delivers, and ones a portrait delivers.
TITLE_WORDS = re.compile(r"\b(title( card)?|poster|banner|headline|heading|slide|card|cover|thumbnail|caption|"
                         r"text|words|saying|quote|sign)\b", re.I)
PORTRAIT_WORDS = re.compile(r"\b(portrait|face|headshot|selfie|presenter)\b", re.I)
#: Deliverable -> the content type (prefix) of the artifact that delivers it.
DELIVERED_AS = {"speech": "audio/", "image": "image/", "talking_video": "video/", "upscale": "video/"}
SPOKEN = ("speech", "talking_video")

Kind = Literal["miss", "not_checked", "refined"]


@dataclass(frozen=True, slots=True)
class Finding:
    """One difference between the request and the results (kind `miss`), a check not made, or a re-run."""

    kind: Kind
    message: str
    node: str | None = None
    check: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "message": self.message, "node": self.node, "check": self.check}


# ---- what the request asked for ---------------------------------------------------------------


def image_kind(text: str) -> str:
    """What an image request asks for: a `title_card` (words), a `portrait` or a `scene` (anything else)."""
    if PORTRAIT_WORDS.search(text):
        return "portrait"
    return "title_card" if TITLE_WORDS.search(text) else "scene"


def from_intent(intent: Mapping[str, Any] | None, goal: str = "") -> dict[str, Any]:
    """The expectations in a planner intent (planner.intent.Intent as JSON; unknown fields are ignored, so
    the intent may grow). A request with its own words to speak has no length: the words decide it."""
    if not intent or intent.get("kind") != "plan":
        return {}
    deliverables = [str(d) for d in intent.get("deliverables") or []]
    expect: dict[str, Any] = {"deliverables": deliverables}
    if intent.get("say"):
        if any(d in SPOKEN for d in deliverables):  # with an image alone, `say` is its title
            expect["say"] = str(intent["say"])
    elif intent.get("duration_s") and any(d in (*SPOKEN, "script") for d in deliverables):
        expect["duration_s"] = float(intent["duration_s"])
    if intent.get("voice") and not intent.get("profile"):  # a profile speaks in its own voice
        expect["voice"] = str(intent["voice"])
    if intent.get("language"):
        expect["language"] = str(intent["language"])
    if "image" in deliverables:
        expect["image"] = image_kind(f"{intent.get('image_prompt') or ''} {goal}")
        expect["image_prompt"] = str(intent.get("image_prompt") or goal)[:300]
    return expect


def expectations(graph: Mapping[str, Any]) -> dict[str, Any]:
    """The graph's `metadata.expect`, else what its planner intent implies (plans made before `expect`)."""
    meta = graph.get("metadata") or {}
    if isinstance(meta.get("expect"), dict):
        return dict(meta["expect"])
    return from_intent(meta.get("intent"), str((graph.get("context") or {}).get("goal", "")))


# ---- how the results compare ------------------------------------------------------------------


def label(node: Mapping[str, Any]) -> str:
    return str(node.get("name") or node.get("id"))


def content_types(node: Mapping[str, Any]) -> list[str]:
    out = []
    for value in (node.get("output") or {}).values():
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, dict) and "contentType" in item:
                out.append(str(item["contentType"]))
    return out


def is_speech(node: Mapping[str, Any]) -> bool:
    return str(node.get("service", "")).startswith("tts.")


def length_carrier(node: Mapping[str, Any], deliverables: list[str]) -> bool:
    """Whether this node's measured duration is the deliverable's length (a video for a talking video)."""
    kinds = content_types(node)
    if "talking_video" in deliverables:
        return any(k.startswith("video/") for k in kinds)
    return "speech" in deliverables and any(k.startswith("audio/") for k in kinds)


def narration_cause(nodes: list[Mapping[str, Any]], expect: Mapping[str, Any], planned: bool) -> str:
    """Why spoken output has the length it has: the planner's template sentence (`planned`: the graph was
    planned from a goal), the text given, or the script's word count."""
    by_id = {n.get("id"): n for n in nodes}
    for n in nodes:
        if not is_speech(n):
            continue
        text = (n.get("params") or {}).get("text")
        if isinstance(text, str) and not expect.get("say"):
            if not planned:
                return f"the text spoken has {len(text.split())} words"
            return (f"without an LLM the narration is one template sentence ({len(text.split())} words); "
                    "start Ollama for a written script")
        if isinstance(text, dict) and (script := by_id.get(text.get("$node"))) is not None:
            words = find(checks_of(script.get("output")), "word_count")
            if words is not None and isinstance(words.value, int | float):
                return (f"the script has {words.value:g} words, about {words.value * 60 / SCRIPT_WPM:.0f} s at "
                        f"{SCRIPT_WPM} words a minute")
    return ""


def own_findings(node: Mapping[str, Any]) -> Iterable[Finding]:
    """The node's own verdicts: checks that failed, checks not made, and a re-run."""
    for c in checks_of(node.get("output")):
        if c.not_checked is not None:
            yield Finding("not_checked", f"{label(node)}: {c.name} not checked: {c.not_checked}", node.get("id"),
                          c.name)
        elif c.ok is False:
            yield Finding("miss", f"{label(node)}: {c.detail or f'{c.name} is {c.value}'}", node.get("id"), c.name)
    refined = (node.get("output") or {}).get("refined")
    if isinstance(refined, dict) and refined.get("why"):
        yield Finding("refined", f"{label(node)} ran once more: {refined['why']}", node.get("id"))


def length_finding(node: Mapping[str, Any], nodes: list[Mapping[str, Any]], expect: Mapping[str, Any],
                   planned: bool) -> Finding | None:
    want = float(expect["duration_s"])
    got = find(checks_of(node.get("output")), "duration_s")
    if got is None or not isinstance(got.value, int | float):
        return None
    if abs(float(got.value) - want) <= max(MIN_SLACK_S, LENGTH_SLACK * want):
        return None
    what = "video" if "talking_video" in expect.get("deliverables", []) else "speech"
    cause = narration_cause(nodes, expect, planned)
    return Finding("miss", f"the {what} is {duration_text(float(got.value))}, not {duration_text(want)}"
                   + (f": {cause}" if cause else ""), node.get("id"), "duration_s")


def voice_finding(node: Mapping[str, Any], want: str) -> Finding | None:
    if (node.get("params") or {}).get("reference_audio") is not None:
        return None  # speaking in a sample's voice: voice_match says how close it is
    pitch = find(checks_of(node.get("output")), "pitch_hz")
    if pitch is None or not isinstance(pitch.value, int | float):
        return None
    heard = "female" if pitch.value >= FEMALE_FROM_HZ else "male"
    if heard == want:
        return None
    return Finding("miss", f"the voice's median pitch is {pitch.value:.0f} Hz, in the {heard} range, not the {want} "
                   f"voice asked for (female from {FEMALE_FROM_HZ:.0f} Hz)", node.get("id"), "pitch_hz")


def image_finding(node: Mapping[str, Any], expect: Mapping[str, Any]) -> Finding | None:
    made = find(checks_of(node.get("output")), "content")
    want = expect.get("image")
    if made is None or want is None or made.value in (want, "rendered"):
        return None
    if want == "title_card":
        return None  # any picture with the words is a card
    asked = str(expect.get("image_prompt") or "the description")
    return Finding("miss", f"the built-in renderer drew a {str(made.value).replace('_', ' ')}, not {asked!r}"
                   + (f" ({made.detail})" if made.detail else ""), node.get("id"), "content")


def delivery_findings(nodes: list[Mapping[str, Any]], expect: Mapping[str, Any]) -> Iterable[Finding]:
    """Deliverables the job made no artifact for, and words to speak that nothing spoke."""
    done = [n for n in nodes if n.get("status") == "completed"]
    made = [k for n in done for k in content_types(n)]
    for d in expect.get("deliverables", []):
        prefix = DELIVERED_AS.get(d)
        if prefix is not None and not any(k.startswith(prefix) for k in made):
            yield Finding("miss", f"you asked for {d.replace('_', ' ')}; the job made no {prefix.rstrip('/')} "
                          f"(it made: {', '.join(sorted(set(made))) or 'no files'})", check="deliverables")
        if d == "script" and not any("script" in (n.get("output") or {}) for n in done):
            yield Finding("miss", "you asked for a script; the job wrote none", check="deliverables")
    say = " ".join(str(expect.get("say") or "").split())
    if say and not any(is_speech(n) and " ".join(str((n.get("params") or {}).get("text", "")).split()) == say
                       for n in done):
        yield Finding("miss", "the words you gave were not spoken: no step spoke them", check="say")


def compare(graph: Mapping[str, Any], only: str | None = None) -> list[Finding]:
    """The findings of a job's graph against its expectations; `only`: just that node's (after it ran)."""
    expect = expectations(graph)
    planned = bool((graph.get("metadata") or {}).get("intent"))
    nodes = [n for n in graph.get("nodes", []) if isinstance(n, Mapping)]
    deliverables = list(expect.get("deliverables") or [])
    out: list[Finding] = []
    carriers = [n for n in nodes if find(checks_of(n.get("output")), "duration_s") and length_carrier(n, deliverables)]
    for n in nodes:
        if only is not None and n.get("id") != only:
            continue
        out += own_findings(n)
        if expect.get("duration_s") and n in (carriers if only else carriers[-1:]):
            out += [f for f in [length_finding(n, nodes, expect, planned)] if f]
        if expect.get("voice") and is_speech(n):
            out += [f for f in [voice_finding(n, str(expect["voice"]))] if f]
        if str(n.get("service", "")).startswith("image."):
            out += [f for f in [image_finding(n, expect)] if f]
    if only is None:
        out += delivery_findings(nodes, expect)
    return out


def misses(findings: Iterable[Finding]) -> list[Finding]:
    return [f for f in findings if f.kind == "miss"]


def check_line(c: Check) -> str:
    """A check in a few words for logs and pages: 'duration_s 2.7 s', 'words ok (0.82)', 'words not checked'."""
    if c.not_checked is not None:
        return f"{c.name} not checked ({c.not_checked})"
    value = f"{c.value:g}" if isinstance(c.value, float) else str(c.value)
    verdict = {True: " ok", False: " MISS", None: ""}[c.ok]
    return f"{c.name} {value}{(' ' + c.unit) if c.unit else ''}{verdict}"
