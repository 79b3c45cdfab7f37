"""The job record's shapes and codecs: what the Redis hash, its event stream and a hand-off carry.

A job record (constants.job_key) is a hash: `graph` is the graph document as of submit or finish;
`n:<node>` fields hold node states written since; `d:<version>` fields hold the node states each
hand-off changed (so an executor whose cached graph is a few versions behind catches up by reading
only those); `entry`/`stream` name the plane-stream entry that carries the job now.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

import orjson

from spinbot.graph import Node

TERMINAL_JOB = frozenset({"completed", "failed", "cancelled"})
NODE_FIELD = "n:"
DELTA_FIELD = "d:"


class Event(NamedTuple):
    """One entry of a job's event stream: its stream id, type (job, node, progress, log, artifact), data."""

    id: str
    type: str
    data: dict[str, Any]


@dataclass(frozen=True)
class JobState:
    """A job as its Redis record says now (the graph with every node state written since applied)."""

    id: str
    status: str
    progress: float
    plane: str | None
    version: int
    owner: str
    graph: dict[str, Any]
    error: dict[str, Any] | None
    created: float
    updated: float
    pipeline: str | None = None
    cancel_requested: bool = False
    entry: str | None = None
    stream: str | None = None

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL_JOB


def dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


def loads(raw: str | bytes) -> Any:
    return orjson.loads(raw)


def as_str(value: Any) -> str:
    """A Redis reply value (bytes or str) as str."""
    return value.decode() if isinstance(value, bytes) else str(value)


def decode_hash(raw: dict[Any, Any]) -> dict[str, str]:
    """A Redis hash reply with str keys and values."""
    return {as_str(k): as_str(v) for k, v in raw.items()}


def decode_event(eid: Any, fields: dict[Any, Any]) -> Event:
    """An entry of a job's event stream as an Event."""
    f = decode_hash(fields)
    return Event(as_str(eid), f.get("type", ""), orjson.loads(f.get("data") or "{}"))


def flat(pairs: dict[str, Any]) -> list[Any]:
    """{k: v, ...} as [k, v, ...] (Lua ARGV)."""
    out: list[Any] = []
    for k, v in pairs.items():
        out += [k, v]
    return out


def node_states(fields: dict[str, str]) -> dict[str, dict[str, Any]]:
    """The `n:<node>` fields of a record as node id -> state."""
    return {k[len(NODE_FIELD):]: orjson.loads(v) for k, v in fields.items() if k.startswith(NODE_FIELD)}


def node_state(node: Node) -> dict[str, Any]:
    """What a node-state field holds: the parts of a node an executor changes."""
    return {
        "status": node.status,
        "attempts": node.attempts,
        "output": node.output,
        "error": node.error.model_dump(mode="json", exclude_none=True) if node.error else None,
    }


def doc_with_states(doc: dict[str, Any], states: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """A graph document with the given node states applied (a new dict; `doc` is not changed)."""
    nodes = []
    for node in doc["nodes"]:
        st = states.get(node["id"])
        if st is None:
            nodes.append(node)
            continue
        new = {k: v for k, v in node.items() if k not in ("output", "error")}
        new.update({k: v for k, v in st.items() if v is not None})
        nodes.append(new)
    return {**doc, "nodes": nodes}


def state_from_hash(job_id: str, fields: dict[str, str]) -> JobState:
    """A decoded job record as a JobState."""
    graph = doc_with_states(orjson.loads(fields["graph"]), node_states(fields))
    error = fields.get("error")
    return JobState(
        id=job_id,
        status=fields.get("status", "queued"),
        progress=float(fields.get("progress") or 0.0),
        plane=fields.get("plane") or None,
        version=int(fields.get("version") or 0),
        owner=fields.get("owner", ""),
        graph=graph,
        error=orjson.loads(error) if error else None,
        created=float(fields.get("created") or 0.0),
        updated=float(fields.get("updated") or 0.0),
        pipeline=fields.get("pipeline") or None,
        cancel_requested=fields.get("cancel") == "1",
        entry=fields.get("entry") or None,
        stream=fields.get("stream") or None,
    )


def id_tuple(entry: str) -> tuple[int, int]:
    """A stream id "ms-seq" as a comparable tuple."""
    ms, _, seq = entry.partition("-")
    return int(ms or 0), int(seq or 0)
