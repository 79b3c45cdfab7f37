"""The langgraph.v1 contract as pydantic models; manifests/langgraph.v1.schema.json is the source of truth."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator

from spinbot import MANIFESTS_DIR

SCHEMA_PATH = MANIFESTS_DIR / "langgraph.v1.schema.json"

Plane = Literal["control", "gpu"]
Status = Literal["pending", "running", "completed", "failed", "skipped", "cancelled"]
DataType = Literal["text", "audio", "image", "video", "json", "number", "any"]
TERMINAL_NODE: frozenset[str] = frozenset({"completed", "failed", "skipped", "cancelled"})

#: The seeds' plane names, accepted on input and normalised.
PLANE_ALIASES = {"node": "control", "python": "gpu", "data": "gpu"}

ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$"
OUTPUT_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]{0,63}$"
SERVICE_PATTERN = r"^[a-z][a-z0-9_]*(\.[a-z0-9_]+)+$"


def _normalise_plane(value: object) -> object:
    return PLANE_ALIASES.get(value, value) if isinstance(value, str) else value


def _json_int(value: object) -> object:
    # JSON Schema counts 2.0 as an integer; booleans are never numbers.
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


Id = Annotated[str, Field(pattern=ID_PATTERN)]
PlaneIn = Annotated[Plane, BeforeValidator(_normalise_plane)]
JsonInt = Annotated[int, BeforeValidator(_json_int), Field(ge=0)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, regex_engine="python-re")


# ---- data references -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NodeRef:
    node: str
    output: str


@dataclass(frozen=True, slots=True)
class AttachmentRef:
    attachment: str


Ref = NodeRef | AttachmentRef


class _NodeRefModel(_Model):
    node: Id = Field(alias="$node")
    output: Annotated[str, Field(pattern=OUTPUT_PATTERN)]


class _AttachmentRefModel(_Model):
    attachment: Id = Field(alias="$attachment")


# The patterns' own text without anchors, for fullmatch: the usual well-formed reference is recognised without
# building a model (graphs are read on every claim); anything else goes through the model, errors included.
_ID = re.compile(ID_PATTERN[1:-1])
_OUTPUT = re.compile(OUTPUT_PATTERN[1:-1])


def as_ref(value: object) -> Ref | None:
    """The reference `value` spells, None for plain data; ValueError for a malformed reference."""
    if not isinstance(value, dict):
        return None
    if "$node" in value:
        if "$attachment" in value:
            raise ValueError("a reference names either $node or $attachment, not both")
        node, output = value["$node"], value.get("output")
        if len(value) == 2 and type(node) is str and type(output) is str and _ID.fullmatch(node) \
                and _OUTPUT.fullmatch(output):
            return NodeRef(node, output)
        m = _NodeRefModel.model_validate(value)
        return NodeRef(m.node, m.output)
    if "$attachment" in value:
        return AttachmentRef(_AttachmentRefModel.model_validate(value).attachment)
    return None


def node_ref(node: str, output: str) -> dict[str, str]:
    return {"$node": node, "output": output}


def iter_refs(params: dict[str, Any]) -> Iterator[tuple[str, Ref]]:
    """(param name, reference) for every top-level param value or list item that is a reference."""
    for name, value in params.items():
        for item in value if isinstance(value, list) else (value,):
            ref = as_ref(item)
            if ref is not None:
                yield name, ref


def resolve_params(params: dict[str, Any], lookup: Any) -> dict[str, Any]:
    """Replace every reference by lookup(ref); the shape of params is otherwise kept."""

    def one(value: Any) -> Any:
        ref = as_ref(value)
        return value if ref is None else lookup(ref)

    return {k: [one(v) for v in val] if isinstance(val, list) else one(val) for k, val in params.items()}


# ---- graph -----------------------------------------------------------------------------------


class Attachment(_Model):
    id: Id
    kind: DataType
    key: Annotated[str, Field(min_length=1, max_length=512)]
    name: Annotated[str, Field(max_length=256)] | None = None
    content_type: Annotated[str, Field(max_length=128)] | None = Field(default=None, alias="contentType")
    size: JsonInt | None = None


class Context(_Model):
    goal: Annotated[str, Field(max_length=20000)] = ""
    inputs: dict[str, Any] = Field(default_factory=dict)
    attachments: Annotated[list[Attachment], Field(max_length=32)] = Field(default_factory=list)
    constraints: dict[str, Any] = Field(default_factory=dict)


class NodeError(_Model):
    code: Annotated[str, Field(max_length=100)]
    message: Annotated[str, Field(max_length=20000)]
    transient: bool | None = None
    hint: Annotated[str, Field(max_length=2000)] | None = None


class Node(_Model):
    id: Id
    name: Annotated[str, Field(max_length=200)] | None = None
    service: Annotated[str, Field(pattern=SERVICE_PATTERN, max_length=100)]
    plane: PlaneIn
    status: Status = "pending"
    progress_weight: Annotated[float, Field(gt=0, le=1)] | None = Field(default=None, alias="progressWeight")
    params: dict[str, Any] = Field(default_factory=dict)
    output: dict[str, Any] | None = None
    error: NodeError | None = None
    attempts: JsonInt = 0

    @field_validator("params")
    @classmethod
    def _refs_well_formed(cls, params: dict[str, Any]) -> dict[str, Any]:
        for _ in iter_refs(params):
            pass  # as_ref raises on a malformed reference
        return params


class Edge(_Model):
    source: Id = Field(alias="from")
    target: Id = Field(alias="to")
    kind: Literal["normal"] = "normal"


class Graph(_Model):
    schema_: Literal["langgraph.v1"] = Field(alias="schema")
    workflow_id: Id = Field(alias="workflowId")
    context: Context = Field(default_factory=Context)
    metadata: dict[str, Any] = Field(default_factory=dict)
    # The contract's absolute bounds; what one job may have is a setting (SPINBOT_MAX_GRAPH_NODES, checked
    # by the API and the evaluator).
    nodes: Annotated[list[Node], Field(min_length=1, max_length=10_000)]
    edges: Annotated[list[Edge], Field(max_length=100_000)] = Field(default_factory=list)

    # -- serialisation

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)

    def dumps(self) -> str:
        return json.dumps(self.to_json(), separators=(",", ":"))

    @classmethod
    def loads(cls, raw: str | bytes) -> Graph:
        return cls.model_validate(json.loads(raw))

    # -- structure

    def node(self, node_id: str) -> Node:
        for n in self.nodes:
            if n.id == node_id:
                return n
        raise KeyError(node_id)

    def predecessors(self) -> dict[str, set[str]]:
        """Node id -> ids it waits for: explicit edges plus the nodes its params reference."""
        preds: dict[str, set[str]] = {n.id: set() for n in self.nodes}
        for e in self.edges:
            if e.target in preds:
                preds[e.target].add(e.source)
        for n in self.nodes:
            for _, ref in iter_refs(n.params):
                if isinstance(ref, NodeRef):
                    preds[n.id].add(ref.node)
        return preds


@cache
def json_schema() -> dict[str, Any]:
    return json.loads(SCHEMA_PATH.read_text())
