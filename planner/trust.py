"""How far to trust a model's reading, measured: a probe set of known goals, scored per intent field.

The first time a model is used (per model digest), `calibrate` asks it to read PROBES, goals whose
intent is known, and scores each field (kind, deliverables, say, voice, duration_s, language) as the
balanced share of probes it got right (see `score`). A field at or above THRESHOLD is *trusted*: the
model's value then wins over the rules' (after the checks that always apply: words to speak must be
in the goal). Below it, the rules decide and the model only fills gaps. So a strong model drives the
intent, and a weak one helps only where it measured right.

Results are kept in memory and in `DATA_DIR/trust/<model>_<digest>.json` for TRUST_TTL_S, so a
restart does not re-probe (and the same model behind another URL is not probed again).
`SPINBOT_PLANNER_TRUST` chooses: `auto` (calibrate in the background on first use; rules-first until
done), `rules` (never trust a model over the rules), `model` (trust every field).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from planner import reading
from planner.vocab import Vocabulary
from spinbot.errors import SpinbotError
from spinbot.llm import digest, reachable
from spinbot.manifest import MergedManifest
from spinbot.settings import Settings

log = logging.getLogger(__name__)

FIELDS = ("kind", "deliverables", "say", "voice", "duration_s", "language")
THRESHOLD = 0.9
TRUST_TTL_S = 7 * 24 * 3600.0

#: Goals with a known intent; the expected value of each field the probe scores (others are not scored).
#: Balanced so that a model with a bias fails the field: about a third are replies (a model that always
#: plans scores 0 on them), most name no voice (a model that invents one fails those), words to speak
#: carry apostrophes and quotes, and a third are in other languages.
PROBES: list[tuple[str, dict[str, Any]]] = [
    # plans that name a voice
    ("a 40-second talking-head video about coral reefs, male voice",
     {"kind": "plan", "deliverables": ["talking_video"], "say": "", "voice": "male", "duration_s": 40}),
    ("say 'welcome aboard' in a female voice",
     {"kind": "plan", "deliverables": ["speech"], "say": "welcome aboard", "voice": "female"}),
    ("make a one minute video about tea with a woman's voice",
     {"kind": "plan", "deliverables": ["talking_video"], "voice": "female", "duration_s": 60}),
    ("read this aloud in a man's voice: don't forget your keys",
     {"kind": "plan", "deliverables": ["speech"], "say": "don't forget your keys", "voice": "male"}),
    ("una voz masculina que diga: buenos días a todos",
     {"kind": "plan", "deliverables": ["speech"], "say": "buenos días a todos", "voice": "male", "language": "es"}),
    # plans that name no voice (the expected voice is none)
    ("read this aloud: the meeting starts at noon",
     {"kind": "plan", "deliverables": ["speech"], "say": "the meeting starts at noon", "voice": "", "language": "en"}),
    ("draw a poster of a mountain village",
     {"kind": "plan", "deliverables": ["image"], "say": "", "voice": "", "duration_s": 0}),
    ("say \"it's a beautiful day, isn't it?\"",
     {"kind": "plan", "deliverables": ["speech"], "say": "it's a beautiful day, isn't it", "voice": ""}),
    ("a 20-second video about how bees make honey",
     {"kind": "plan", "deliverables": ["talking_video"], "say": "", "voice": "", "duration_s": 20, "language": "en"}),
    ("read aloud: we're open from nine o'clock",
     {"kind": "plan", "deliverables": ["speech"], "say": "we're open from nine o'clock", "voice": ""}),
    ("paint a picture of a lighthouse at dawn",
     {"kind": "plan", "deliverables": ["image"], "voice": "", "duration_s": 0}),
    ("a 30-second explainer video on recycling",
     {"kind": "plan", "deliverables": ["talking_video"], "voice": "", "duration_s": 30}),
    ("pronounce 'Tschüss' please", {"kind": "plan", "deliverables": ["speech"], "say": "Tschüss", "voice": ""}),
    ("write a script for a short video about the moon landing",
     {"kind": "plan", "deliverables": ["script"], "say": "", "voice": ""}),
    ("say: l'été est arrivé", {"kind": "plan", "deliverables": ["speech"], "say": "l'été est arrivé", "voice": ""}),
    # other languages
    ("Lis à voix haute : merci beaucoup",
     {"kind": "plan", "deliverables": ["speech"], "say": "merci beaucoup", "voice": "", "language": "fr"}),
    ("fais une vidéo de 20 secondes sur les volcans",
     {"kind": "plan", "deliverables": ["talking_video"], "voice": "", "duration_s": 20, "language": "fr"}),
    ("Lies vor: Guten Abend",
     {"kind": "plan", "deliverables": ["speech"], "say": "Guten Abend", "voice": "", "language": "de"}),
    ("ein 30-Sekunden-Video über Windkraft",
     {"kind": "plan", "deliverables": ["talking_video"], "duration_s": 30, "language": "de"}),
    ("dibuja un cartel de una playa", {"kind": "plan", "deliverables": ["image"], "voice": "", "language": "es"}),
    ("leggi ad alta voce: c'è il sole oggi",
     {"kind": "plan", "deliverables": ["speech"], "say": "c'è il sole oggi", "language": "it"}),
    # replies: questions, greetings, talk about the service
    ("how does the GPU plane work?", {"kind": "reply", "deliverables": []}),
    ("tell me about yourself", {"kind": "reply", "deliverables": []}),
    ("hi there!", {"kind": "reply", "deliverables": []}),
    ("what can you do?", {"kind": "reply", "deliverables": []}),
    ("thanks, that's all for today", {"kind": "reply", "deliverables": []}),
    ("why did my last job fail?", {"kind": "reply", "deliverables": []}),
    ("what's the difference between a voice and a voice-over?", {"kind": "reply", "deliverables": []}),
    ("bonjour, comment ça va ?", {"kind": "reply", "deliverables": [], "language": "fr"}),
    ("wie lange dauert ein Video?", {"kind": "reply", "deliverables": [], "language": "de"}),
    ("is the video I asked for ready?", {"kind": "reply", "deliverables": []}),
    ("who made you?", {"kind": "reply", "deliverables": []}),
]  # fmt: skip


@dataclass(frozen=True)
class Trust:
    """A model's measured reading accuracy per intent field (0..1) and the fields trusted over the rules."""

    model: str
    scores: dict[str, float] = field(default_factory=dict)
    probes: int = 0
    measured_at: float = 0.0
    digest: str = ""  # the model file's digest, as Ollama's /api/tags reports it

    @property
    def trusted(self) -> frozenset[str]:
        return frozenset(f for f, s in self.scores.items() if s >= THRESHOLD)

    @property
    def distrusted(self) -> frozenset[str]:
        """The fields measured below THRESHOLD (none while unmeasured: then the model fills the rules' gaps)."""
        return frozenset(f for f, s in self.scores.items() if s < THRESHOLD)

    def to_json(self) -> dict[str, Any]:
        return {"model": self.model, "digest": self.digest, "scores": self.scores, "probes": self.probes,
                "measured_at": self.measured_at, "trusted": sorted(self.trusted)}


RULES_ONLY = Trust(model="")
EVERY_FIELD = Trust(model="*", scores=dict.fromkeys(FIELDS, 1.0))


def _norm(value: Any) -> Any:
    """The comparable form of a field's value: text casefolded and trimmed, lists sorted, "none" as None."""
    if isinstance(value, str):
        value = " ".join(value.casefold().split()).strip(" .!?'\"")
    elif isinstance(value, list):
        value = sorted(_norm(v) for v in value)
    elif isinstance(value, float) and value.is_integer():
        value = int(value)
    return None if value in ("", [], 0, None) else value


def probes(manifest: MergedManifest) -> list[tuple[str, dict[str, Any]]]:
    """The PROBES whose expected deliverables the manifest's services offer (planner.vocab): a model is never
    scored on a name its schema cannot hold."""
    offered = set(Vocabulary(manifest).deliverables)
    return [(goal, expected) for goal, expected in PROBES if set(expected.get("deliverables", [])) <= offered]


def score(answers: list[Any], asked: list[tuple[str, dict[str, Any]]] = PROBES) -> dict[str, float]:
    """Per field, the *balanced* share of the probes `asked` the answers got right (a broken answer is wrong).

    The probes of a field are grouped by what they expect (kind: each value; other fields: a value or
    none), and the field's score is its worst group's share: a model that never replies scores 0 on
    kind, one that names a voice where the goal names none scores low on voice, however many probes
    are of the other group.
    """
    right: dict[tuple[str, Any], int] = {}
    total: dict[tuple[str, Any], int] = {}
    for (_, expected), answer in zip(asked, answers, strict=True):
        for name, want in expected.items():
            group = (name, _norm(want) if name == "kind" else _norm(want) is None)
            total[group] = total.get(group, 0) + 1
            ok = isinstance(answer, dict) and name in answer and _norm(answer[name]) == _norm(want)
            right[group] = right.get(group, 0) + ok
    return {name: round(min(right[g] / total[g] for g in total if g[0] == name), 3)
            for name in FIELDS if any(g[0] == name for g in total)}


_reading = 0  # the users' goals being read in this process now (see user_read)
#: How often a waiting probe looks whether the users' reads are done (seconds).
YIELD_POLL_S = 0.05


@contextlib.contextmanager
def user_read() -> Iterator[None]:
    """Around the reading of a user's goal: this process's trust probes wait until no such read is going on.

    They share one model server that answers one call at a time; without this a user's plan in the first
    ~90 s after the first use waited behind the probes (measured: 13.7 s for a warm plan, bench/first_answer.py)
    instead of behind at most the one probe already asked.
    """
    global _reading
    _reading += 1
    try:
        yield
    finally:
        _reading -= 1


async def calibrate(settings: Settings, manifest: MergedManifest) -> Trust:
    """Ask the model to read every probe the manifest can hold (one call each) and score it; errors count as
    wrong answers. Each probe waits while a user's goal is being read (user_read). The result is kept under
    the model's digest (as Ollama's /api/tags reports it)."""
    asked = probes(manifest)
    answers: list[Any] = []
    for goal, _ in asked:
        while _reading:  # noqa: ASYNC110 (polled: an Event would bind to one event loop, and tests run many)
            await asyncio.sleep(YIELD_POLL_S)
        try:
            answers.append((await reading.ask(settings, manifest, goal, [])).data)
        except SpinbotError as e:
            log.info("trust probe %r: %s", goal, e.message)
            answers.append(None)
    await reachable(settings)  # the model's digest, for the cache key
    trust = Trust(model=settings.ollama_model, scores=score(answers, asked), probes=len(asked),
                  measured_at=time.time(), digest=digest(settings) or "")
    _remember(settings, trust)
    log.info("model %s measured on %d probes: %s; trusted over the rules: %s", trust.model, trust.probes,
             trust.scores, ", ".join(sorted(trust.trusted)) or "nothing")
    return trust


_known: dict[tuple[str, str, str], Trust] = {}
_running: dict[tuple[str, str, str], asyncio.Task[Trust]] = {}


def _key(settings: Settings) -> tuple[str, str, str]:
    """(url, model, digest): the same name pulled again (a new digest) is measured again; "" while unknown."""
    return settings.ollama_url, settings.ollama_model, digest(settings) or ""


def _file(settings: Settings) -> Path:
    """DATA_DIR/trust/<model>_<digest>.json: any server with the same model file shares it (url only if no digest)."""
    _, model, sha = _key(settings)
    name = f"{model}_{sha.removeprefix('sha256:')[:16]}" if sha else f"{settings.ollama_url}_{model}"
    return settings.data_dir / "trust" / f"{re.sub(r'[^A-Za-z0-9_.-]+', '_', name)}.json"


def _remember(settings: Settings, trust: Trust) -> None:
    _known[_key(settings)] = trust
    try:
        path = _file(settings)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(trust.to_json()))
    except OSError as e:
        log.warning("cannot keep the model's trust scores: %s", e)


def _recall(settings: Settings) -> Trust | None:
    key = _key(settings)
    trust = _known.get(key)
    if trust is None:
        try:
            doc = json.loads(_file(settings).read_text())
            trust = Trust(model=doc["model"], scores=doc["scores"], probes=doc["probes"],
                          measured_at=doc["measured_at"], digest=doc.get("digest", ""))
        except (OSError, ValueError, KeyError, TypeError):
            return None
        _known[key] = trust
    return trust if time.time() - trust.measured_at < TRUST_TTL_S else None


def current(settings: Settings, manifest: MergedManifest) -> Trust:
    """The trust to plan with now; never waits. In `auto` mode a first use starts calibration in the background."""
    if settings.planner_trust == "rules":
        return RULES_ONLY
    if settings.planner_trust == "model":
        return EVERY_FIELD
    trust = _recall(settings)
    if trust is not None:
        return trust
    key = _key(settings)
    if key not in _running:
        task = asyncio.create_task(calibrate(settings, manifest), name=f"calibrate {settings.ollama_model}")
        _running[key] = task
        task.add_done_callback(lambda _t: _running.pop(key, None))
    return RULES_ONLY
