"""Intent -> langgraph.v1 graph, by searching the live manifest's typed inputs and outputs.

Each deliverable names a data type to produce (speech: audio, image: image, a talking video: a
video made from an image and audio, an upscale: a video made from a video). The builder looks for
the shortest chain of available services that yields it from what the goal provides: the words to
speak or a topic (text), the attachments (image, audio, video), and other services' outputs.
Ties go to the lower estimated duration. Params are filled from the intent by name (voice, speed,
language, duration_s, style, topic, factor, ...), so a service that declares one gets it.

Text that a script would write comes from the LLM's script service when an LLM answers, and
otherwise from the goal's own words or a template sentence: a graph built here never needs an LLM
that is not there.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from planner.cues import PORTRAIT_WORDS
from planner.intent import Intent
from planner.pipelines import edges_from_refs
from spinbot.errors import PermanentError
from spinbot.expectations import from_intent
from spinbot.graph import Attachment
from spinbot.manifest import MergedManifest, ServiceSpec

#: Services the search never picks as a step toward a deliverable (they publish, describe or prepare, not make).
NOT_A_STEP = ("artifact.", "capabilities.", "diag.", "gpu.", "voice.")
#: Node ids people read in the UI, by service (others: the service id's last part).
NODE_IDS = {"llm.generate_script": "script", "tts.synthesize": "voice", "video.animate_portrait": "talk",
            "video.upscale": "upscale", "image.render": "image", "video.compose": "compose"}  # fmt: skip
NODE_NAMES = {"llm.generate_script": "Write the script", "tts.synthesize": "Speak the text",
              "video.animate_portrait": "Animate the portrait", "video.upscale": "Upscale the video",
              "image.render": "Draw the image", "video.compose": "Compose the video"}  # fmt: skip
#: Intent fields -> the param names services declare for them.
INTENT_PARAMS = {"voice": "voice", "speed": "speed", "language": "language", "duration_s": "duration_s",
                 "style": "style", "topic": "topic", "upscale_factor": "factor"}  # fmt: skip
MAX_DEPTH = 4


class Unbuildable(PermanentError):
    """No chain of available services yields a deliverable; the message says which and why."""

    code = "unbuildable"


@dataclass(frozen=True, slots=True)
class Target:
    """What a deliverable asks of the final step: its output type and the input types it must consume."""

    output: str
    consumes: frozenset[str] = frozenset()
    kind: str = ""  # a word the service id must hold when type alone does not say it (an upscale)


TARGETS: dict[str, Target] = {
    "speech": Target("audio", frozenset({"text"})),
    "image": Target("image", frozenset({"text"})),
    "talking_video": Target("video", frozenset({"image", "audio"})),
    "upscale": Target("video", frozenset({"video"}), kind="upscale"),
}


@dataclass
class Builder:
    """One build: the intent, what is available, and the nodes chosen so far (shared by deliverables)."""

    intent: Intent
    manifest: MergedManifest
    attachments: list[Attachment]
    llm: bool
    nodes: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    made: dict[str, Any] = field(default_factory=dict)  # data type -> a reference (or a reused value) that makes it
    avoid: frozenset[str] = frozenset()  # services not to use (they failed for good in the run before)
    step_params: dict[str, Any] = field(default_factory=dict)  # for each step declaring them (a profile's voice)

    # ---- what is there

    def services(self) -> list[ServiceSpec]:
        return [s for s in self.manifest.available() if not s.id.startswith(NOT_A_STEP)
                and (self.llm or not s.id.startswith("llm.")) and s.id not in self.avoid]

    def attachment(self, kind: str, wanted: str | None) -> Attachment | None:
        if wanted is not None:
            return next((a for a in self.attachments if a.id == wanted and a.kind == kind), None)
        return None

    # ---- the search

    def cost(self, dtype: str, seen: frozenset[str], depth: int = 0) -> tuple[int, float] | None:
        """(steps, estimated seconds) of the cheapest way to make `dtype` (least seconds, then fewest steps:
        the estimates are the learned ones when the caller passes spinbot.estimates.learned_manifest); None if
        there is none."""
        if dtype == "text" or dtype in self.made or self._attached(dtype):
            return (0, 0.0)
        if depth >= MAX_DEPTH or dtype in seen:
            return None
        best: tuple[int, float] | None = None
        for spec in self.services():
            if dtype not in spec.outputs.values():
                continue
            c = self.service_cost(spec, seen | {dtype}, depth + 1)
            if c is not None and (best is None or _cheaper(c, best)):
                best = c
        return best

    def service_cost(self, spec: ServiceSpec, seen: frozenset[str], depth: int) -> tuple[int, float] | None:
        steps, seconds = 1, spec.estimate.duration_s
        for name in self.required_inputs(spec):
            c = self.cost(spec.inputs[name], seen, depth)
            if c is None:
                return None
            steps, seconds = steps + c[0], seconds + c[1]
        return steps, seconds

    def required_inputs(self, spec: ServiceSpec) -> list[str]:
        required = set(spec.params.get("required", []))
        return [n for n in spec.inputs if n in required]

    def _attached(self, dtype: str) -> bool:
        wanted = {"image": self.intent.portrait, "video": self.intent.source_video}.get(dtype)
        return self.attachment(dtype, wanted) is not None

    def choose(self, target: Target, seen: frozenset[str] = frozenset()) -> ServiceSpec:
        """The service that makes `target` cheapest (least estimated seconds, then fewest steps, then its id)."""
        options = []
        for spec in self.services():
            if target.output not in spec.outputs.values():
                continue
            if not target.consumes <= set(spec.inputs.values()) or target.kind not in spec.id:
                continue
            c = self.service_cost(spec, seen | {target.output} if target.output not in target.consumes else seen, 1)
            if c is not None:
                options.append((c, spec.id, spec))
        if not options:
            what = f"{target.kind}s {target.output}" if target.kind else f"makes {target.output}"
            raise Unbuildable(f"no available service {what} from {', '.join(sorted(target.consumes)) or 'nothing'}")
        return min(options, key=lambda o: (o[0][1], o[0][0], o[1]))[2]

    def provide(self, dtype: str, name: str, seen: frozenset[str] = frozenset()) -> Any:
        """A param value of type `dtype` for input `name`: a literal, an attachment or an upstream output."""
        if dtype == "text":
            return self.text_for(name)
        if dtype in self.made:
            return self.made[dtype]
        wanted = {"image": self.intent.portrait, "video": self.intent.source_video}.get(dtype)
        if (att := self.attachment(dtype, wanted)) is not None:
            return {"$attachment": att.id}
        if dtype in seen:
            raise Unbuildable(f"making {dtype} would need {dtype} first")
        spec = self.choose(Target(dtype), seen)
        return self.add(spec, role=dtype, seen=seen | {dtype})[dtype]

    def add(self, spec: ServiceSpec, *, role: str, seen: frozenset[str] = frozenset(),
            given: dict[str, Any] | None = None) -> dict[str, dict[str, Any]]:
        """Add a step for `spec` with its inputs provided; returns {data type: reference} of its outputs."""
        params: dict[str, Any] = dict(given or {})
        for name in self.required_inputs(spec):
            if name not in params:
                params[name] = self.provide(spec.inputs[name], name, seen)
        props = spec.params.get("properties", {})
        for field_name, param in INTENT_PARAMS.items():
            value = getattr(self.intent, field_name)
            if value is not None and param in props and param not in params and param not in spec.inputs:
                params[param] = value
        params |= {k: v for k, v in self.step_params.items() if k in props and k not in params}
        if "kind" in props and role == "image":  # an image made to be animated is a presenter's portrait
            params.setdefault("kind", "portrait")
        node_id = self.node_id(spec.id)
        self.nodes.append({"id": node_id, "name": NODE_NAMES.get(spec.id, spec.id),
                           "service": spec.id, "plane": spec.planes[0], "params": params})
        refs: dict[str, dict[str, Any]] = {}
        for out, dtype in spec.outputs.items():
            ref = {"$node": node_id, "output": out}
            refs.setdefault(dtype, ref)
            self.made.setdefault(dtype, ref)
        return refs

    def node_id(self, service: str) -> str:
        base = NODE_IDS.get(service, service.rsplit(".", 1)[-1])
        taken = {n["id"] for n in self.nodes}
        out, n = base, 2
        while out in taken:
            out, n = f"{base}{n}", n + 1
        return out

    # ---- text: the words to speak, a drawing's prompt

    def text_for(self, name: str) -> Any:
        intent = self.intent
        if name in ("prompt",):
            if "script" in self.made_by():
                return {"$node": self.made_by()["script"], "output": "stage"}
            if intent.image_prompt and "talking_video" not in intent.deliverables:
                return intent.image_prompt
            return f"a friendly {intent.presenter_or_voice()} presenting, head and shoulders, studio light"
        if name == "topic":
            return intent.topic or intent.say or "an introduction to Spinbot"
        # what is said (tts text, subtitles): the user's words, else a script, else a template
        if intent.say:
            return intent.say
        script = self.script()
        if script is not None:
            return {"$node": script, "output": "narration"}
        subject = intent.topic or "this topic"
        self.note("no LLM answers, so the narration is a template sentence; start Ollama for a written script")
        return f"Here is a short introduction to {subject}."

    def made_by(self) -> dict[str, str]:
        return {n["service"].rsplit(".", 1)[-1].replace("generate_", ""): n["id"] for n in self.nodes}

    def script(self) -> str | None:
        """The script step's node id, added on first use, when an LLM script service is available."""
        for n in self.nodes:
            if n["service"] == "llm.generate_script":
                return str(n["id"])
        spec = next((s for s in self.services() if s.id == "llm.generate_script"), None)
        if spec is None:
            return None
        self.add(spec, role="script", given={"topic": self.intent.topic or "an introduction to Spinbot"})
        return str(self.nodes[-1]["id"])

    def note(self, text: str) -> None:
        if text not in self.notes:
            self.notes.append(text)


def build(
    intent: Intent,
    manifest: MergedManifest,
    *,
    goal: str,
    attachments: list[Attachment],
    constraints: dict[str, Any],
    llm: bool,
    reuse: dict[str, Any] | None = None,
    avoid: frozenset[str] = frozenset(),
    step_params: dict[str, Any] | None = None,
) -> tuple[dict[str, Any], list[str]]:
    """The graph document for a plan intent and the notes a user should read; Unbuildable if none fits.

    reuse: data type -> a value that already exists (an artifact descriptor or text from a run before):
    it is used instead of a step that would make it. avoid: service ids not to plan. step_params: params any
    step gets when its service declares them (a profile's reference_audio and reference_text).
    """
    if intent.kind != "plan" or not intent.deliverables:
        raise Unbuildable("the intent asks for no deliverable")
    b = Builder(intent, manifest, attachments, llm, made=dict(reuse or {}), avoid=avoid,
                step_params=dict(step_params or {}))
    if "upscale" in intent.deliverables and "talking_video" not in intent.deliverables \
            and b.attachment("video", intent.source_video) is None:
        raise Unbuildable("upscaling needs a video, and none is attached",
                          hint="attach the video file (services cannot download URLs)")
    finals: list[dict[str, Any]] = []
    for deliverable in intent.deliverables:
        if deliverable == "script":
            script = b.script()
            if script is None:
                raise Unbuildable("writing a script needs the LLM, and none answers now",
                                  hint="start Ollama (SPINBOT_OLLAMA_URL), or give the exact words to speak")
            finals.append({"$node": script, "output": "script"})
            continue
        target = TARGETS[deliverable]
        if deliverable != "upscale" and target.output in (reuse or {}):  # made in the run before
            finals.append(b.made[target.output])
            continue
        if deliverable == "upscale" and "talking_video" in intent.deliverables:
            spec = b.choose(target)
            finals[:] = [f for f in finals if f is not b.made.get("video")]
            finals.append(b.add(spec, role="deliverable", given={"video": b.made["video"]})["video"])
            continue
        spec = b.choose(target)
        given: dict[str, Any] = {}
        if deliverable == "image":
            given["prompt"] = intent.image_prompt or intent.topic or goal[:2000]
            given["kind"] = "portrait" if PORTRAIT_WORDS.search(goal) else "title_card"
        refs = b.add(spec, role="deliverable" if deliverable == "image" else deliverable, given=given)
        finals.append(refs[target.output])
    if "script" not in intent.deliverables and (script := next(
            (n["id"] for n in b.nodes if n["service"] == "llm.generate_script"), None)):
        finals.append({"$node": script, "output": "script"})
    publish = manifest.services.get("artifact.publish")
    if publish is not None and publish.available:
        b.nodes.append({"id": b.node_id("artifact.publish"), "name": "Publish", "service": "artifact.publish",
                        "plane": publish.planes[0],
                        "params": {"items": finals, "title": _title(intent, goal)}})
    node_weights(b.nodes, manifest)
    doc = {
        "schema": "langgraph.v1",
        "workflowId": f"plan-{uuid.uuid4().hex[:12]}",
        "context": {
            "goal": goal[:20000],
            "attachments": [a.model_dump(mode="json", by_alias=True, exclude_none=True) for a in attachments],
            "constraints": constraints,
        },
        "metadata": {"intent": intent.model_dump(mode="json", exclude_none=True),
                     "expect": from_intent(intent.model_dump(mode="json"), goal)},  # checked after the job
        "nodes": b.nodes,
        "edges": edges_from_refs(b.nodes),
    }
    return doc, b.notes


def node_weights(nodes: list[dict[str, Any]], manifest: MergedManifest) -> None:
    """Each node's progressWeight: its share of the estimated duration (in place)."""
    durations = [
        (manifest.services[n["service"]].estimate.duration_s if n["service"] in manifest.services else 1.0)
        for n in nodes
    ]
    total = sum(durations) or 1.0
    for n, d in zip(nodes, durations, strict=True):
        n["progressWeight"] = round(max(d / total, 1e-4), 6) if total else round(1 / len(nodes), 6)


def _title(intent: Intent, goal: str) -> str:
    text = intent.topic or intent.say or intent.image_prompt or goal
    text = " ".join(text.split())
    return (text[:1].upper() + text[1:])[:80] or "Results"


def _cheaper(a: tuple[int, float], b: tuple[int, float]) -> bool:
    """(steps, seconds) a before b: fewer estimated seconds first, then fewer steps."""
    return (a[1], a[0]) < (b[1], b[0])
