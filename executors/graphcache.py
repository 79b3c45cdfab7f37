"""Validated graphs by job, so a claim applies node states instead of re-validating the graph.

The record's `graph` field changes only at submit and finish; between, node states travel in its
`n:<node>` fields (applied by a full `load`) and in hand-off deltas (applied by `advance`, from the
entry and, when this executor's copy is several versions behind, the record's `d:<version>` fields).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from spinbot.graph import Graph, Node, NodeError
from spinbot.graphstate import GraphState
from spinbot.queue import loads, node_state, node_states


@dataclass
class Parsed:
    """A job's graph as validated once: the stored document, the model, its state machine."""

    raw: str
    doc: dict[str, Any]
    graph: Graph
    state: GraphState
    base: dict[str, dict[str, Any]]  # node states as submitted
    context: dict[str, Any]
    owner: str = ""  # the API key's owner id: which objects its tasks may read
    version: int = -1  # the job version whose node states the model holds


def _apply(state: GraphState, node: Node, st: dict[str, Any]) -> None:
    # assign only what differs: pydantic attribute assignment is not free
    if node.attempts != (st.get("attempts") or 0):
        node.attempts = st.get("attempts") or 0
    if node.output != st.get("output"):
        node.output = st.get("output")
    err = st.get("error")
    if (node.error is None) != (err is None) or (err and node.error and node.error.message != err.get("message")):
        node.error = NodeError.model_validate(err) if err else None
    state.set_status(node.id, st["status"])


class GraphCache:
    """At most `size` jobs' Parsed graphs, least recently used dropped first."""

    def __init__(self, size: int = 256) -> None:
        self.size = size
        self._items: OrderedDict[str, Parsed] = OrderedDict()

    def load(self, job_id: str, fields: dict[str, str]) -> Parsed:
        """The job's graph as the whole (decoded) record says; ValueError/KeyError if it cannot be read."""
        raw = fields["graph"]
        p = self._items.get(job_id)
        if p is None or p.raw != raw:
            doc = loads(raw)
            graph = Graph.model_validate(doc)
            p = Parsed(raw, doc, graph, GraphState(graph), {n.id: node_state(n) for n in graph.nodes},
                       graph.context.model_dump(mode="json", by_alias=True), fields.get("owner", ""))
            self._items[job_id] = p
            while len(self._items) > self.size:
                self._items.popitem(last=False)
        else:
            self._items.move_to_end(job_id)
        states = node_states(fields)
        for n in p.graph.nodes:
            _apply(p.state, n, states.get(n.id) or p.base[n.id])
        p.state.resync()
        p.version = int(fields.get("version") or 0)
        return p

    def version(self, job_id: str) -> int | None:
        """The version of the job this cache holds, None if it holds none."""
        p = self._items.get(job_id)
        return None if p is None else p.version

    def advance(self, job_id: str, version: int, deltas: list[str]) -> Parsed | None:
        """The cached graph moved to `version` by the hand-off deltas of the versions after the one it
        holds (oldest first, the last one `version`'s); None if it does not hold version - len(deltas)."""
        p = self._items.get(job_id)
        if p is None or not deltas or p.version != version - len(deltas):
            return None
        for delta in deltas:
            for node_id, st in loads(delta).items():
                _apply(p.state, p.state.by_id[node_id], st)
        p.version = version
        self._items.move_to_end(job_id)
        return p

    def drop(self, job_id: str) -> None:
        self._items.pop(job_id, None)
