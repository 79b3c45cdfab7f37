"""Replanning from what ran (LLMCompiler's joiner, the seeds' iterative planning agent).

When a node of a planned job fails for good, `continuation` takes the failed graph, the failure and
the completed outputs and proposes the next graph: the same intent, built again with what already
exists reused as values (no step re-runs) and the failed service avoided. When no other chain makes
a deliverable, the deliverable is degraded to what already ran (an upscale to the video before it, a
talking video to its speech) and the answer says so. The continuation is evaluated like any plan.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from planner.builder import Unbuildable, build
from planner.intent import Intent
from spinbot.graph import Graph
from spinbot.manifest import MergedManifest


@dataclass(frozen=True, slots=True)
class Continuation:
    """The next graph (None: none possible) and a sentence for the user."""

    graph: Graph | None
    message: str


def continuation(graph_doc: dict[str, Any], manifest: MergedManifest, *, llm: bool, version: int = 1) -> Continuation:
    """The graph that goes on from a failed run: reuses completed outputs, avoids the failed services."""
    graph = Graph.model_validate(graph_doc)
    failed = [n for n in graph.nodes if n.status == "failed"]
    if not failed:
        return Continuation(None, "nothing failed, so there is nothing to replan")
    meta = graph.metadata.get("intent")
    if not isinstance(meta, dict):
        return Continuation(None, "the graph was not made by the planner, so there is no goal to replan from")
    intent = Intent.model_validate(meta)
    why = "; ".join(f"{n.name or n.id} ({n.service}) failed: {n.error.message if n.error else 'no reason given'}"
                    for n in failed)[:600]
    reuse: dict[str, Any] = {}
    reused: list[str] = []
    for n in graph.nodes:
        spec = manifest.services.get(n.service)
        if n.status != "completed" or not n.output or spec is None or n.service == "artifact.publish":
            continue
        for out, dtype in spec.outputs.items():
            if out in n.output and dtype in ("audio", "image", "video") and dtype not in reuse:
                reuse[dtype] = n.output[out]
                reused.append(n.name or n.id)
        if n.service == "llm.generate_script" and isinstance(n.output.get("narration"), str) and intent.say is None:
            intent = intent.model_copy(update={"say": n.output["narration"]})
            reused.append(n.name or n.id)
    avoid = frozenset(n.service for n in failed)
    attempts = [intent]  # as planned; then degraded a step at a time: no upscale, then speech for a video
    for drop, instead in (("upscale", None), ("talking_video", "speech")):
        deliverables = attempts[-1].deliverables
        if drop in deliverables:
            changed = [instead if d == drop else d for d in deliverables]
            attempts.append(intent.model_copy(update={"deliverables": list(dict.fromkeys(d for d in changed if d))}))
    degraded = [d for d in intent.deliverables if d in ("upscale", "talking_video")]
    last_error = ""
    for i, attempt in enumerate(attempts):
        if not attempt.deliverables:
            continue
        try:
            doc, _ = build(attempt, manifest, goal=graph.context.goal or "", attachments=graph.context.attachments,
                           constraints=graph.context.constraints, llm=llm, reuse=reuse, avoid=avoid)
        except Unbuildable as e:
            last_error = e.message
            continue
        doc.metadata["replan"] = {"version": version, "failed": [n.id for n in failed], "reused": reused}
        kept = ", ".join(dict.fromkeys(reused)) or "nothing"
        if i == 0:
            message = f"{why}. I replanned without {', '.join(sorted(avoid))}, reusing {kept}."
        else:
            lost = [d for d in degraded if d not in attempt.deliverables]
            message = (f"{why}. Nothing else available can make the {' or '.join(lost)}, so I deliver the "
                       f"{', '.join(attempt.deliverables)} from what already ran ({kept}).")
        return Continuation(doc, message)
    return Continuation(None, f"{why}. I cannot go on: {last_error or 'no other plan fits what is available'}.")
