"""The plan against the request: given the intent the plan was built from (graph.metadata.intent), does it
make every deliverable asked for, read every attachment the request gave a role, speak the request's own
words, and speak for about as long as asked? Graphs without an intent (written by hand) and replanned
continuations (completed outputs stand in for their steps, metadata.replan) are not checked."""

from __future__ import annotations

from typing import Any

from evaluator.run import Run
from spinbot.graph import AttachmentRef
from spinbot.units import duration_text, shorten

#: Words per minute a speech step speaks at when it declares no default speed.
WPM = 160
#: A speech length this far from the requested one (as a ratio) is a finding.
LENGTH_RATIO = 1.15
#: The intent fields that give an attachment a role.
BINDINGS = ("portrait", "source_video", "soundtrack", "voice_sample", "text_file")


def check_request(run: Run) -> None:
    """Findings `request_deliverable`, `request_attachment`, `request_words` (errors) and `request_length`
    (a warning: without an LLM a narration cannot be made longer, and the plan says so). The words must be what
    a speech step says, exactly; with no speech step, they must be in a step's text (a poster's description)."""
    intent = run.graph.metadata.get("intent")
    if not isinstance(intent, dict) or intent.get("kind", "plan") != "plan" or run.graph.metadata.get("replan"):
        return
    nodes = run.graph.nodes
    offered = {n.id: {o.deliverable for o in run.manifest.services[n.service].offers}
               for n in nodes if n.service in run.manifest.services}
    for name in intent.get("deliverables") or []:
        if not any(name in names for names in offered.values()):
            run.add("request_deliverable", f"the request asks for {name}, and no step makes it",
                    hint=f"add a step whose service offers {name}")
    read = {ref.attachment for n in nodes for _, ref in run.refs_of(n) if isinstance(ref, AttachmentRef)}
    named = [intent.get(k) for k in BINDINGS] + list(intent.get("clips") or [])
    for att in named:
        if isinstance(att, str) and att not in read:
            run.add("request_attachment", f"the request gives attachment {att} a role, and no step reads it",
                    hint=f"wire {{\"$attachment\": \"{att}\"}} into the step that should use it")
    said = intent.get("say")
    texts = _text_params(run)
    spoken = [value for node, name, value in texts if _speaks(run, node, name)]
    if isinstance(said, str) and said and texts and not (any(value == said for value in spoken) if spoken else
                                                          any(said in value for _, _, value in texts)):
        run.add("request_words", f"the request's words to speak ({shorten(said, 60)!r}) are not what any step says",
                hint="speak the request's own words, unchanged")
    wanted = intent.get("duration_s")
    if isinstance(wanted, int | float) and wanted > 0:
        _check_length(run, float(wanted))


def _text_params(run: Run) -> list[tuple[str, str, str]]:
    """(node, param, value) of every literal string a text-typed input holds."""
    out = []
    for n in run.graph.nodes:
        spec = run.manifest.services.get(n.service)
        if spec is None:
            continue
        for name, dtype in spec.inputs.items():
            value = n.params.get(name)
            if dtype == "text" and isinstance(value, str):
                out.append((n.id, name, value))
    return out


def _speaks(run: Run, node: str, name: str) -> bool:
    """Whether input `name` of `node` is what a speech step says (its service makes audio from that text)."""
    n = next(n for n in run.graph.nodes if n.id == node)
    spec = run.manifest.services[n.service]
    return "audio" in spec.outputs.values() and name in spec.params.get("required", [])


def _check_length(run: Run, wanted: float) -> None:
    by_id = {n.id: n for n in run.graph.nodes}
    for n in run.graph.nodes:
        spec = run.manifest.services.get(n.service)
        if spec is None or "audio" not in spec.outputs.values() or spec.inputs.get("text") != "text":
            continue
        text: Any = n.params.get("text")
        if isinstance(text, str):
            speed = n.params.get("speed") or spec.params.get("properties", {}).get("speed", {}).get("default") or WPM
            seconds = len(text.split()) / float(speed) * 60
            what = "its words"
        elif isinstance(text, dict) and text.get("$node") in by_id:
            seconds = by_id[text["$node"]].params.get("duration_s") or 0
            what = f"{text['$node']}'s script"
        else:
            continue
        if seconds and max(seconds / wanted, wanted / seconds) > LENGTH_RATIO:
            run.add("request_length", f"the request asks for {duration_text(wanted)} of speech; {what} last about "
                    f"{duration_text(seconds)}", node=n.id, warn=True,
                    hint="write a script of the length asked (an LLM), or say the real length")
