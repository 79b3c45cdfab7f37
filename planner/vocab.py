"""The planner's vocabulary: what the declared services can do for a goal, read from their own declarations.

Each service declares `offers` (spinbot.manifest.Offer: a deliverable's name, what it does in the user's
words, the cues that name it in a goal, its output, the input it transforms) and `attachable` inputs (what
an attached file of that type is to it). `Vocabulary` gathers them: the intent schema's enum, the prompt's
list, the rules' targets, the builder's final steps and the replies' "what I can do" all come from here,
so a service that makes something new needs no planner edit.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache

from planner.cues import NEGATION, words, words_after
from spinbot.manifest import Attachable, MergedManifest, ServiceSpec

#: Services that publish, describe or prepare, never a step toward a deliverable.
NOT_A_STEP = ("artifact.", "capabilities.", "diag.", "gpu.", "voice.")


@dataclass(frozen=True, slots=True)
class Deliverable:
    """One thing a goal may ask for, as a service offers it."""

    name: str
    does: str
    service: str
    output: str  # the service output that is the deliverable
    output_type: str
    base: str | None  # the input it transforms (an attachment or another deliverable's output)
    base_type: str | None
    needs: tuple[str, ...]
    consumes: frozenset[str]  # the data types the service's inputs take
    cue: re.Pattern[str] | None
    says: re.Pattern[str] | None  # a verb, then the words to speak (group 1)
    default: bool


@cache
def _pattern(alternatives: tuple[str, ...]) -> re.Pattern[str] | None:
    return words(*alternatives) if alternatives else None


class Vocabulary:
    """The deliverables the manifest's services offer, and the inputs attachments may fill."""

    def __init__(self, manifest: MergedManifest) -> None:
        self.manifest = manifest
        self.deliverables: dict[str, Deliverable] = {}  # by name: how the goal is read (one offer per name)
        self.offers: dict[str, list[Deliverable]] = {}  # by name: every service that offers it (the builder picks)
        self.attachable: dict[tuple[str, str], Attachable] = {}
        for spec in sorted(manifest.services.values(), key=lambda s: s.id):
            if spec.hidden or spec.id.startswith(NOT_A_STEP):
                continue
            for name, att in spec.attachable.items():
                self.attachable[(spec.id, name)] = att
            for offer in spec.offers:
                d = Deliverable(
                    name=offer.deliverable, does=offer.does, service=spec.id, output=offer.output,
                    output_type=_output_type(spec, offer.output), base=offer.base,
                    base_type=spec.inputs.get(offer.base) if offer.base else None, needs=tuple(offer.needs),
                    consumes=frozenset(spec.inputs.values()), cue=_pattern(tuple(offer.cues + offer.says)),
                    says=words_after("|".join(offer.says)) if offer.says else None, default=offer.default)
                self.offers.setdefault(d.name, []).append(d)
                if d.name not in self.deliverables or (spec.available and d.cue is not None):
                    self.deliverables.setdefault(d.name, d)

    # ---- reading a goal

    def named(self, text: str) -> list[str]:
        """The deliverables whose cues occur in `text` (not after "no", "without"), in the order they first occur."""
        found = []
        for d in self.deliverables.values():
            if d.cue is None:
                continue
            m = next((m for m in d.cue.finditer(text) if not NEGATION.search(text, 0, m.start())), None)
            if m is not None:
                found.append((m.start(), d.name))
        return [name for _, name in sorted(found)]

    def speaking(self) -> str | None:
        """The deliverable that speaks given words: its service makes audio from text alone."""
        for d in self.deliverables.values():
            spec = self.manifest.services[d.service]
            required = set(spec.params.get("required", []))
            if d.output_type == "audio" and d.base is None and \
                    {spec.inputs[n] for n in spec.inputs if n in required} == {"text"}:
                return d.name
        return None

    def default(self) -> str | None:
        return next((d.name for d in self.deliverables.values() if d.default), None)

    def consumes_all(self, name: str) -> frozenset[str]:
        """The data types `name`'s service needs (its base aside), directly or through the services that make them."""
        d = self.deliverables[name]
        spec = self.manifest.services[d.service]
        first = [n for n in spec.inputs if n != d.base and (n in spec.params.get("required", []) or n in d.needs)]
        seen: set[str] = set()
        todo = [spec.inputs[n] for n in first]
        while todo:
            dtype = todo.pop()
            if dtype in seen:
                continue
            seen.add(dtype)
            for spec in self.steps():
                if dtype in spec.outputs.values():
                    todo.extend(t for n, t in spec.inputs.items() if n in spec.params.get("required", []))
        return frozenset(seen)

    def takes(self, name: str) -> frozenset[str]:
        """The data types `name`'s service requires directly, its base aside."""
        d = self.deliverables[name]
        spec = self.manifest.services[d.service]
        required = set(spec.params.get("required", [])) | set(d.needs)
        return frozenset(t for n, t in spec.inputs.items() if n in required and n != d.base)

    def steps(self) -> list[ServiceSpec]:
        return [s for s in self.manifest.services.values() if not s.hidden and not s.id.startswith(NOT_A_STEP)]

    def takes_attachment(self, kind: str) -> list[tuple[str, Attachable]]:
        """(service id, input) pairs an attachment of `kind` may fill, with what it is there."""
        out = []
        for (sid, name), att in self.attachable.items():
            if self.manifest.services[sid].inputs.get(name) == kind:
                out.append((sid, att))
        return out

    def menu(self) -> list[str]:
        """What Spinbot can do, in the user's words, one entry per deliverable an available service offers."""
        return [d.does for d in self.deliverables.values() if self.manifest.services[d.service].available]


def _output_type(spec: ServiceSpec, output: str) -> str:
    return spec.outputs.get(output, "json")


def declared() -> Vocabulary:
    """The vocabulary of the committed manifests (what the code declares), for reading without a live one."""
    from spinbot.capabilities import committed_manifest

    global _declared
    if _declared is None:
        _declared = Vocabulary(committed_manifest())
    return _declared


_declared: Vocabulary | None = None


def for_reading(manifest: MergedManifest) -> Vocabulary:
    """The words a goal is read by: the live manifest's offers, and the declared ones no executor offers now
    (so "a video" with the GPU plane down is still a video, which the builder then says it cannot make)."""
    base = declared().manifest
    if all(sid in manifest.services for sid in base.services):
        return Vocabulary(manifest)
    services = {sid: spec.model_copy(update={"available": False, "unavailable_reason": "no executor offers it now"})
                for sid, spec in base.services.items()} | manifest.services
    return Vocabulary(manifest.model_copy(update={"services": services}))
