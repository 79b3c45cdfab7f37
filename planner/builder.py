"""Intent -> langgraph.v1 graph, by searching the live manifest's typed inputs and outputs.

Each deliverable is offered by a service (planner.vocab: its declaration says what it makes and which
input it transforms); that service is the deliverable's final step. The builder looks for the shortest
chain of available services that yields each of its inputs from what the goal provides: the words to
speak or a topic (text), the attachments bound in the intent (image, audio, video), and other services'
outputs.
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
from planner.vocab import NOT_A_STEP, Deliverable, Vocabulary
from spinbot.errors import PermanentError
from spinbot.expectations import from_intent
from spinbot.graph import Attachment, Context, Graph, Node, node_ref
from spinbot.manifest import MergedManifest, ServiceSpec
from spinbot.units import shorten

#: Words per minute a narration is spoken at when the goal names no speed (tts.synthesize's default).
WPM = 160
#: Intent fields -> the param names services declare for them.
INTENT_PARAMS = {"voice": "voice", "speed": "speed", "language": "language", "duration_s": "duration_s",
                 "style": "style", "topic": "topic", "upscale_factor": "factor"}  # fmt: skip
MAX_DEPTH = 4


class Unbuildable(PermanentError):
    """No chain of available services yields a deliverable; the message says which and why."""

    code = "unbuildable"


@dataclass(frozen=True, slots=True)
class Target:
    """What a step must make: its output type and the input types it must consume."""

    output: str
    consumes: frozenset[str] = frozenset()


@dataclass
class Builder:
    """One build: the intent, what is available, and the nodes chosen so far (shared by deliverables)."""

    intent: Intent
    manifest: MergedManifest
    attachments: list[Attachment]
    llm: bool
    nodes: list[Node] = field(default_factory=list)
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

    def bound(self, dtype: str) -> Attachment | None:
        """The attachment the intent binds to inputs of type `dtype` (the portrait, the video, the soundtrack)."""
        wanted = {"image": self.intent.portrait, "video": self.intent.source_video,
                  "audio": self.intent.soundtrack}.get(dtype)
        return self.attachment(dtype, wanted)

    def _attached(self, dtype: str) -> bool:
        return self.bound(dtype) is not None

    def choose(self, target: Target, seen: frozenset[str] = frozenset()) -> ServiceSpec:
        """The service that makes `target` cheapest (least estimated seconds, then fewest steps, then its id)."""
        options = []
        for spec in self.services():
            if target.output not in spec.outputs.values():
                continue
            if not target.consumes <= set(spec.inputs.values()):
                continue
            c = self.service_cost(spec, seen | {target.output} if target.output not in target.consumes else seen, 1)
            if c is not None:
                options.append((c, spec.id, spec))
        if not options:
            raise Unbuildable(f"no available service makes {target.output} from "
                              f"{', '.join(sorted(target.consumes)) or 'nothing'}")
        return min(options, key=lambda o: (o[0][1], o[0][0], o[1]))[2]

    def provide(self, dtype: str, name: str, seen: frozenset[str] = frozenset()) -> Any:
        """A param value of type `dtype` for input `name`: a literal, an attachment or an upstream output."""
        if dtype == "text":
            return self.text_for(name)
        if dtype in self.made:
            return self.made[dtype]
        if (att := self.bound(dtype)) is not None:
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
        node_id = self.node_id(spec)
        self.nodes.append(Node(id=node_id, name=node_name(spec), service=spec.id, plane=spec.planes[0], params=params))
        refs: dict[str, dict[str, Any]] = {}
        for out, dtype in spec.outputs.items():
            ref = {"$node": node_id, "output": out}
            refs.setdefault(dtype, ref)
            self.made.setdefault(dtype, ref)
        return refs

    def node_id(self, spec: ServiceSpec) -> str:
        """The first deliverable the service offers ("speech", "talking_video"), else its id's last part; a
        number added when taken ("image2")."""
        base = spec.offers[0].deliverable if spec.offers else spec.id.rsplit(".", 1)[-1]
        taken = {n.id for n in self.nodes}
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
        # what is said (tts text, subtitles): the user's words or text file, else a script, else a template
        if intent.text_file and self.attachment("text", intent.text_file) is not None:
            return {"$attachment": intent.text_file}
        if intent.say:
            return intent.say
        script = self.script()
        if script is not None:
            return {"$node": script, "output": "narration"}
        subject = intent.topic or "this topic"
        text = f"Here is a short introduction to {subject}."
        if intent.duration_s:
            real = len(text.split()) / (intent.speed or WPM) * 60
            self.note(f"you asked for {intent.duration_s:g} s, which cannot be met without an LLM to write the "
                      f"narration: it is one template sentence, only about {real:.0f} s spoken; start Ollama for a "
                      "script of the length asked")
        else:
            self.note("no LLM answers, so the narration is a template sentence; start Ollama for a written script")
        return text

    def made_by(self) -> dict[str, str]:
        return {n.service.rsplit(".", 1)[-1].replace("generate_", ""): n.id for n in self.nodes}

    def script(self) -> str | None:
        """The script step's node id, added on first use, when an LLM script service is available."""
        for n in self.nodes:
            if n.service == "llm.generate_script":
                return n.id
        spec = next((s for s in self.services() if s.id == "llm.generate_script"), None)
        if spec is None:
            return None
        self.add(spec, role="script", given={"topic": self.intent.topic or "an introduction to Spinbot"})
        return self.nodes[-1].id

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
) -> tuple[Graph, list[str]]:
    """The graph document for a plan intent and the notes a user should read; Unbuildable if none fits.

    reuse: data type -> a value that already exists (an artifact descriptor or text from a run before):
    it is used instead of a step that would make it. avoid: service ids not to plan. step_params: params any
    step gets when its service declares them (a profile's reference_audio and reference_text).
    """
    if intent.kind != "plan" or not intent.deliverables:
        raise Unbuildable("the intent asks for no deliverable")
    vocab = Vocabulary(manifest)
    step_params = dict(step_params or {})
    if intent.voice_sample and intent.voice_words:  # "in this voice": the speech steps speak like the sample
        step_params |= {"reference_audio": {"$attachment": intent.voice_sample}, "reference_text": intent.voice_words}
    b = Builder(intent, manifest, attachments, llm, made=dict(reuse or {}), avoid=avoid, step_params=step_params)
    finals: list[dict[str, Any]] = []
    for name in intent.deliverables:
        d, spec = offered(b, vocab, name)
        if d.base is None and d.output_type in (reuse or {}):  # made in the run before
            finals.append(b.made[d.output_type])
            continue
        finals.append(add_deliverable(b, d, spec, goal, finals))
    for script in [n.id for n in b.nodes if n.service == "llm.generate_script"]:
        if {"$node": script, "output": "script"} not in finals:  # the whole script travels with what it made
            finals.append({"$node": script, "output": "script"})
    publish = manifest.services.get("artifact.publish")
    if publish is not None and publish.available:
        b.nodes.append(Node(id=b.node_id(publish), name="Publish", service="artifact.publish",
                            plane=publish.planes[0], params={"items": finals, "title": _title(intent, goal)}))
    if not b.nodes:
        raise Unbuildable("everything asked for was made in the run before: no step is left to run")
    node_weights(b.nodes, manifest)
    graph = Graph(
        schema="langgraph.v1", workflowId=f"plan-{uuid.uuid4().hex[:12]}",
        context=Context(goal=goal[:20000], attachments=list(attachments), constraints=constraints),
        metadata={"intent": intent.model_dump(mode="json", exclude_none=True),
                  "expect": from_intent(intent.model_dump(mode="json"), goal)},  # checked after the job
        nodes=b.nodes, edges=edges_from_refs(b.nodes),
    )
    return graph, b.notes


def offered(b: Builder, vocab: Vocabulary, name: str) -> tuple[Deliverable, ServiceSpec]:
    """The cheapest available service offering deliverable `name` whose inputs can be made or are attached."""
    options = vocab.offers.get(name)
    if not options:
        raise Unbuildable(f"no available service offers {name!r} now",
                          hint="ask for one of: " + ("; ".join(vocab.menu()) or "nothing: no executor is running"))
    usable = {s.id: s for s in b.services()}
    costed = []
    for d in options:
        spec = usable.get(d.service)
        if spec is None:
            continue
        c = b.service_cost(spec, frozenset(), 1)
        for extra in d.needs:
            more = b.cost(spec.inputs[extra], frozenset(), 1) if extra in spec.inputs else None
            c = None if c is None or more is None else (c[0] + more[0], c[1] + more[1])
        if c is not None:
            costed.append(((c[1], c[0], spec.id), d, spec))
    if costed:
        _, d, spec = min(costed, key=lambda o: o[0])
        return d, spec
    d = options[0]
    spec = b.manifest.services[d.service]
    if d.service in usable:
        raise Unbuildable(f"no available service makes {d.output_type} ({d.does}) from what there is",
                          hint="attach what it needs, or start the services that make its inputs")
    if d.service.startswith("llm."):
        raise Unbuildable(f"to {d.does} needs the LLM, and none answers now",
                          hint="start Ollama (SPINBOT_OLLAMA_URL), or give the exact words to speak")
    why = spec.unavailable_reason or ("it failed in the run before" if d.service in b.avoid else "it is unavailable")
    raise Unbuildable(f"to {d.does} needs {d.service}, which cannot run now: {why}")


def add_deliverable(b: Builder, d: Deliverable, spec: ServiceSpec, goal: str, finals: list[dict[str, Any]]
                    ) -> dict[str, Any]:
    """Add `d`'s final step (its inputs made or bound on the way); returns the reference to what it delivers."""
    given: dict[str, Any] = {}
    if d.base is not None and d.base_type is not None:
        base = b.made.get(d.base_type) if d.base_type in b.made else b.provide(d.base_type, d.base)
        if base in finals:  # the upscaled video replaces the video it came from
            finals.remove(base)
        attached = isinstance(base, dict) and "$attachment" in base  # a base a step before made has the clips in it
        extra = [{"$attachment": c} for c in b.intent.clips if attached and b.attachment(d.base_type, c) is not None]
        is_list = spec.params.get("properties", {}).get(d.base, {}).get("type") == "array"
        given[d.base] = [base, *extra] if is_list else base
    for name in d.needs:
        given[name] = b.provide(spec.inputs[name], name)
    needing = spec.params.get("dependentRequired", {})
    for name, dtype in spec.inputs.items():  # the soundtrack of clips joined: an attachment the intent gave a role
        att = b.bound(dtype)
        if name not in given and name in spec.attachable and not needing.get(name) and att is not None \
                and {"$attachment": att.id} not in _refs(given):
            given[name] = {"$attachment": att.id}
    props = spec.params.get("properties", {})
    if d.output_type == "image" and "prompt" in props:
        given["prompt"] = b.intent.image_prompt or b.intent.topic or goal[:2000]
        if "kind" in props:
            given["kind"] = "portrait" if PORTRAIT_WORDS.search(goal) else "title_card"
    b.add(spec, role="deliverable" if d.output_type == "image" else d.name, given=given)
    return node_ref(b.nodes[-1].id, d.output)


def _refs(params: dict[str, Any]) -> list[Any]:
    """The values of `params`, list items included (where an attachment may already be read)."""
    return [x for v in params.values() for x in (v if isinstance(v, list) else [v])]


def node_name(spec: ServiceSpec) -> str:
    """What a step does, in the user's words: its first offer's `does` without the parenthesis ("Read text
    aloud"), else the service id."""
    if not spec.offers:
        return spec.id
    does = spec.offers[0].does.split(" (", 1)[0].strip()
    return does[:1].upper() + does[1:]


def unused_attachments(graph: Graph, attachments: list[Attachment]) -> list[str]:
    """A note for each attachment no step reads, with what the plan's steps take instead."""
    text = repr([n.params for n in graph.nodes])
    notes = []
    for a in attachments:
        if repr({"$attachment": a.id}) not in text:
            name = repr(a.name) if a.name else a.id
            notes.append(f"{name} ({a.kind}) was not used: no step of this plan takes it in the role the goal asks "
                         "for; say what it is for (e.g. \"use the attached recording as the soundtrack\")")
    return notes


def node_weights(nodes: list[Node], manifest: MergedManifest) -> None:
    """Each node's progressWeight: its share of the estimated duration (in place)."""
    durations = [
        (manifest.services[n.service].estimate.duration_s if n.service in manifest.services else 1.0)
        for n in nodes
    ]
    total = sum(durations) or 1.0
    for n, d in zip(nodes, durations, strict=True):
        n.progress_weight = round(max(d / total, 1e-4), 6) if total else round(1 / len(nodes), 6)


def _title(intent: Intent, goal: str) -> str:
    text = intent.topic or intent.say or intent.image_prompt or goal
    text = shorten(text, 80)
    return text[:1].upper() + text[1:] or "Results"


def _cheaper(a: tuple[int, float], b: tuple[int, float]) -> bool:
    """(steps, seconds) a before b: fewer estimated seconds first, then fewer steps."""
    return (a[1], a[0]) < (b[1], b[0])
