"""Train and generate: a goal that saves its attachments as a profile ("save this as Anna").

The goal attaches a voice sample (and a portrait) and says what the recording says, in quotes
("the recording says \"...\""). The plan prepares the sample (voice.prepare) and, when the goal also
asks for something, speaks in the prepared voice right away; `metadata.profile.save_as` tells the
API to keep the profile, whose voice is filled from the preparation step when the job ends.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from typing import Any

from planner.builder import node_weights
from planner.cues import REFERENCE
from planner.models import Profile
from planner.pipelines import edges_from_refs
from spinbot.graph import Attachment, Context, Graph, Node, Plane
from spinbot.manifest import MergedManifest

#: The service whose `voice` output a profile keeps (executors/gpu/voice.py), and its step's id in a graph.
PREPARE = "voice.prepare"
PREPARE_NODE = "prepare"
SAVE_AS = re.compile(
    r"(?<!\w)(?:save|keep|store)\s+(?:(?:it|this|that|them|these|her|him|me|my (?:voice|face)|the \w+)\s+)?"
    r"as\s+(?:a\s+|my\s+)?(?:new\s+)?(?:profile\s+)?(?:named\s+|called\s+)?[\"“']?([^\W\d_][\w-]*)"
    r"(?![\w-]|\.\w)", re.I)  # "save the output as 'example.wav'" names a file, not a profile (nor 'exampl')


@dataclass(frozen=True, slots=True)
class SaveAs:
    """A profile to save from this goal's attachments; `rest`: the goal without the saving words."""

    name: str
    sample: str | None  # attachment id of the voice sample
    portrait: str | None  # attachment id of the portrait
    reference_text: str | None
    rest: str


def read(goal: str, profiles: list[Profile], attachments: list[Attachment]) -> SaveAs | str | None:
    """The profile the goal saves, the reply it gets instead (a problem named), or None (it saves none)."""
    m = SAVE_AS.search(goal)
    if m is None:
        return None
    name = m.group(1).rstrip(".'-")
    if any(p.name.lower() == name.lower() for p in profiles):
        return f"A profile named {name!r} exists already: choose another name, or delete that one first."
    audio = next((a.id for a in attachments if a.kind == "audio"), None)
    image = next((a.id for a in attachments if a.kind == "image"), None)
    ref = REFERENCE.search(goal)
    if audio is None:
        return (f"To save {name}'s voice, attach a recording of them speaking and write what it says, e.g. "
                "the recording says \"...\"" + (" (a portrait alone: make the profile in the Profiles view)."
                                                if image else "."))
    if ref is None:
        return (f"To prepare {name}'s voice I need the exact words of the recording, in quotes: "
                "the recording says \"...\".")
    rest = goal[:m.start()] + goal[m.end():]
    rest = REFERENCE.sub(" ", rest).strip(" .,:;")
    return SaveAs(name=name, sample=audio, portrait=image, reference_text=ref.group(1).strip(), rest=rest)


def prepare_node(name: str, sample: str | None, reference_text: str | None, plane: Plane) -> Node:
    """The one voice.prepare step (id PREPARE_NODE, on `plane`) for profile `name`: the sample is the
    attachment with id `sample`, `reference_text` what it says. Planned goals and POST /api/profiles use it."""
    return Node(id=PREPARE_NODE, name=f"Prepare {name}'s voice", service=PREPARE, plane=plane,
                params={"audio": {"$attachment": sample}, "text": reference_text})


def voice_params(reference_text: str | None) -> dict[str, Any]:
    """What a speech step takes to speak in the voice being prepared (by prepare_node's step)."""
    return {"reference_audio": {"$node": PREPARE_NODE, "output": "voice"}, "reference_text": reference_text}


def with_preparation(graph: Graph | None, save: SaveAs, manifest: MergedManifest, *, goal: str,
                     attachments: list[Attachment], constraints: dict[str, Any]) -> Graph:
    """The plan (or, with none, a graph of its own) with the preparation step first and the save recorded."""
    spec = manifest.services.get(PREPARE)
    node = prepare_node(save.name, save.sample, save.reference_text, spec.planes[0] if spec else "gpu")
    nodes = [node, *(graph.nodes if graph is not None else [])]
    node_weights(nodes, manifest)
    metadata = graph.metadata if graph is not None else {}
    metadata["profile"] = {"save_as": save.name, "portrait": save.portrait}
    if graph is not None:
        return graph.model_copy(update={"nodes": nodes, "edges": edges_from_refs(nodes), "metadata": metadata})
    return Graph(schema="langgraph.v1", workflowId=f"profile-{uuid.uuid4().hex[:12]}",
                 context=Context(goal=goal[:20000], constraints=constraints, attachments=list(attachments)),
                 metadata=metadata, nodes=nodes, edges=edges_from_refs(nodes))
