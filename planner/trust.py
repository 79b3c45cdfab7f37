"""How far to trust a model's reading, measured: a probe set of known goals, scored per intent field.

The first time a model is used (per Ollama URL and model name), `calibrate` asks it to read PROBES,
goals whose intent is known, and scores each field (kind, deliverables, say, voice, duration_s,
language) as the share of probes it got right. A field at or above THRESHOLD is *trusted*: the
model's value then wins over the rules' (after the checks that always apply: words to speak must be
in the goal). Below it, the rules decide and the model only fills gaps. So a strong model drives the
intent, and a weak one helps only where it measured right.

Results are kept in memory and in `DATA_DIR/trust/` for TRUST_TTL_S, so a restart does not re-probe.
`SPINBOT_PLANNER_TRUST` chooses: `auto` (calibrate in the background on first use; rules-first until
done), `rules` (never trust a model over the rules), `model` (trust every field).
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from dataclasses import dataclass, field
from typing import Any

from planner import reading
from planner.vocab import Vocabulary
from spinbot.errors import SpinbotError
from spinbot.manifest import MergedManifest
from spinbot.settings import Settings

log = logging.getLogger(__name__)

FIELDS = ("kind", "deliverables", "say", "voice", "duration_s", "language")
THRESHOLD = 0.9
TRUST_TTL_S = 7 * 24 * 3600.0

#: Goals with a known intent; the expected value of each field the probe scores (others are not scored).
PROBES: list[tuple[str, dict[str, Any]]] = [
    ("read this aloud: the meeting starts at noon",
     {"kind": "plan", "deliverables": ["speech"], "say": "the meeting starts at noon", "voice": "", "language": "en"}),
    ("a 40-second talking-head video about coral reefs, male voice",
     {"kind": "plan", "deliverables": ["talking_video"], "say": "", "voice": "male", "duration_s": 40}),
    ("draw a poster of a mountain village",
     {"kind": "plan", "deliverables": ["image"], "say": "", "duration_s": 0}),
    ("how does the GPU plane work?", {"kind": "reply", "deliverables": []}),
    ("say 'welcome aboard' in a female voice",
     {"kind": "plan", "deliverables": ["speech"], "say": "welcome aboard", "voice": "female"}),
    ("Lis à voix haute : merci beaucoup",
     {"kind": "plan", "deliverables": ["speech"], "say": "merci beaucoup", "language": "fr"}),
    ("fais une vidéo de 20 secondes sur les volcans",
     {"kind": "plan", "deliverables": ["talking_video"], "duration_s": 20, "language": "fr"}),
    ("tell me about yourself", {"kind": "reply", "deliverables": []}),
    ("make a one minute video about tea with a woman's voice",
     {"kind": "plan", "deliverables": ["talking_video"], "voice": "female", "duration_s": 60}),
    ("Lies vor: Guten Abend", {"kind": "plan", "deliverables": ["speech"], "say": "Guten Abend", "language": "de"}),
]  # fmt: skip


@dataclass(frozen=True)
class Trust:
    """A model's measured reading accuracy per intent field (0..1) and the fields trusted over the rules."""

    model: str
    scores: dict[str, float] = field(default_factory=dict)
    probes: int = 0
    measured_at: float = 0.0

    @property
    def trusted(self) -> frozenset[str]:
        return frozenset(f for f, s in self.scores.items() if s >= THRESHOLD)

    def to_json(self) -> dict[str, Any]:
        return {"model": self.model, "scores": self.scores, "probes": self.probes, "measured_at": self.measured_at,
                "trusted": sorted(self.trusted)}


RULES_ONLY = Trust(model="")
EVERY_FIELD = Trust(model="*", scores=dict.fromkeys(FIELDS, 1.0))


def _norm(value: Any) -> Any:
    if isinstance(value, str):
        return " ".join(value.casefold().split()).strip(" .!?'\"")
    if isinstance(value, list):
        return sorted(_norm(v) for v in value)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def probes(manifest: MergedManifest) -> list[tuple[str, dict[str, Any]]]:
    """The PROBES whose expected deliverables the manifest's services offer (planner.vocab): a model is never
    scored on a name its schema cannot hold."""
    offered = set(Vocabulary(manifest).deliverables)
    return [(goal, expected) for goal, expected in PROBES if set(expected.get("deliverables", [])) <= offered]


def score(answers: list[Any], asked: list[tuple[str, dict[str, Any]]] = PROBES) -> dict[str, float]:
    """Per field, the share of the probes `asked` (default PROBES) the answers got right (a missing or broken
    answer is wrong)."""
    right: dict[str, int] = dict.fromkeys(FIELDS, 0)
    total: dict[str, int] = dict.fromkeys(FIELDS, 0)
    for (_, expected), answer in zip(asked, answers, strict=True):
        for name, want in expected.items():
            total[name] += 1
            got = answer.get(name) if isinstance(answer, dict) else None
            if got is not None and _norm(got) == _norm(want):
                right[name] += 1
    return {name: round(right[name] / total[name], 3) for name in FIELDS if total[name]}


async def calibrate(settings: Settings, manifest: MergedManifest) -> Trust:
    """Ask the model to read every probe the manifest can hold (one call each) and score it; errors count as
    wrong answers."""
    asked = probes(manifest)
    answers: list[Any] = []
    for goal, _ in asked:
        try:
            answers.append((await reading.ask(settings, manifest, goal, [])).data)
        except SpinbotError as e:
            log.info("trust probe %r: %s", goal, e.message)
            answers.append(None)
    trust = Trust(model=settings.ollama_model, scores=score(answers, asked), probes=len(asked),
                  measured_at=time.time())
    _remember(settings, trust)
    log.info("model %s measured on %d probes: %s; trusted over the rules: %s", trust.model, trust.probes,
             trust.scores, ", ".join(sorted(trust.trusted)) or "nothing")
    return trust


_known: dict[tuple[str, str], Trust] = {}
_running: dict[tuple[str, str], asyncio.Task[Trust]] = {}


def _file(settings: Settings) -> Any:
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", f"{settings.ollama_url}_{settings.ollama_model}")
    return settings.data_dir / "trust" / f"{safe}.json"


def _remember(settings: Settings, trust: Trust) -> None:
    _known[(settings.ollama_url, settings.ollama_model)] = trust
    try:
        path = _file(settings)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(trust.to_json()))
    except OSError as e:
        log.warning("cannot keep the model's trust scores: %s", e)


def _recall(settings: Settings) -> Trust | None:
    key = (settings.ollama_url, settings.ollama_model)
    trust = _known.get(key)
    if trust is None:
        try:
            doc = json.loads(_file(settings).read_text())
            trust = Trust(model=doc["model"], scores=doc["scores"], probes=doc["probes"],
                          measured_at=doc["measured_at"])
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
    key = (settings.ollama_url, settings.ollama_model)
    if key not in _running:
        task = asyncio.create_task(calibrate(settings, manifest), name=f"calibrate {settings.ollama_model}")
        _running[key] = task
        task.add_done_callback(lambda _t: _running.pop(key, None))
    return RULES_ONLY
