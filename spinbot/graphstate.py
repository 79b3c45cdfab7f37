"""The graph's pure state machine: structure checks, ready nodes, blocked nodes, progress, next step.

No I/O. The executor's JobRun is a shell around it: it feeds status changes in (`set_status`) and
asks what to do (`take_ready`, `skip_blocked`, `next_step`). Every query costs what changed since the
last one, not the size of the graph: the state keeps, per node, how many predecessors have not
completed, the ready nodes per plane, the finished weight and the nodes newly blocked.

    state = GraphState(graph)
    state.set_status("a", "completed")      # mutates graph.nodes too
    state.skip_blocked()                    # -> nodes it marked skipped
    state.take_ready("gpu")                 # -> ready gpu nodes not handed out before
    state.next_step("control")              # -> HandOff("gpu") | Finish(...) | Stuck([...])
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from spinbot.errors import InvalidGraph, PermanentError
from spinbot.graph import TERMINAL_NODE, AttachmentRef, Graph, Node, NodeRef, Ref, iter_refs, resolve_params

RUNNABLE = frozenset({"pending", "running"})  # a 'running' node found at load (a crash) runs again
BLOCKING = frozenset({"failed", "skipped", "cancelled"})


# ---- structure --------------------------------------------------------------------------------------


def topological(preds: dict[str, set[str]],
                succs: dict[str, list[str]] | None = None) -> tuple[list[str], list[str]]:
    """Kahn's order of the node ids and the ids on cycles ([] when acyclic; the nodes merely
    downstream of a cycle are left out of the second list). `preds`: node id -> ids it waits for;
    `succs`: its inverse (`successors(preds)`), computed when not given."""
    succs = succs if succs is not None else successors(preds)
    indegree = {k: len(v) for k, v in preds.items()}
    ready = [k for k, d in indegree.items() if d == 0]
    order: list[str] = []
    while ready:
        k = ready.pop()
        order.append(k)
        for s in succs[k]:
            indegree[s] -= 1
            if indegree[s] == 0:
                ready.append(s)
    if len(order) == len(preds):
        return order, []
    stuck = {k for k, d in indegree.items() if d > 0}
    left = set(stuck)
    changed = True
    while changed:  # peel off the sinks: what remains lies on a cycle
        changed = False
        for k in list(left):
            if not any(s in left for s in succs[k]):
                left.discard(k)
                changed = True
    return order, sorted(left or stuck)


def successors(preds: dict[str, set[str]]) -> dict[str, list[str]]:
    """Node id -> ids that wait for it (the inverse of `preds`)."""
    succs: dict[str, list[str]] = {k: [] for k in preds}
    for k, ps in preds.items():
        for p in ps:
            if p in succs:
                succs[p].append(k)
    return succs


def validate_structure(graph: Graph) -> None:
    """Unique ids, edges and references to existing nodes, no cycles; InvalidGraph otherwise."""
    ids = [n.id for n in graph.nodes]
    if len(set(ids)) != len(ids):
        dupes = sorted(i for i, count in Counter(ids).items() if count > 1)
        raise InvalidGraph(f"duplicate node ids: {', '.join(dupes)}", hint="give every node a unique id")
    known = set(ids)
    for e in graph.edges:
        for end in (e.source, e.target):
            if end not in known:
                raise InvalidGraph(f"edge {e.source} -> {e.target} names unknown node {end!r}")
    attachments = {a.id for a in graph.context.attachments}
    for n in graph.nodes:
        for param, ref in iter_refs(n.params):
            if isinstance(ref, NodeRef):
                if ref.node not in known:
                    raise InvalidGraph(f"node {n.id} param {param!r} references unknown node {ref.node!r}")
                if ref.node == n.id:
                    raise InvalidGraph(f"node {n.id} param {param!r} references its own output")
            elif ref.attachment not in attachments:
                raise InvalidGraph(
                    f"node {n.id} param {param!r} references unknown attachment {ref.attachment!r}",
                    hint=f"attachments in context: {', '.join(sorted(attachments)) or 'none'}",
                )
    _, cycle = topological(graph.predecessors())
    if cycle:
        raise InvalidGraph(f"the graph has a cycle among nodes: {', '.join(cycle)}")


# ---- the next step -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class HandOff:
    """Ready nodes wait on another plane: enqueue the job there."""

    plane: str


@dataclass(frozen=True)
class Finish:
    """Every node is finished: the job ends with `status` (completed, failed or cancelled)."""

    status: str
    failed: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Stuck:
    """Unfinished nodes that can never run (their plane has none ready and nothing runs)."""

    nodes: list[str]


Step = HandOff | Finish | Stuck


class GraphState:
    """A graph's node statuses with what depends on them kept up to date incrementally.

    Owns status changes: change a node's status through `set_status`, or call `resync()` after
    changing statuses on the model directly (O(nodes)).
    """

    def __init__(self, graph: Graph, preds: dict[str, set[str]] | None = None) -> None:
        self.graph = graph
        self.preds = preds if preds is not None else graph.predecessors()
        self.succs = successors(self.preds)
        self.by_id: dict[str, Node] = {n.id: n for n in graph.nodes}
        self.index = {n.id: i for i, n in enumerate(graph.nodes)}
        self.weight = {n.id: n.progress_weight or 1.0 for n in graph.nodes}
        self.total = sum(self.weight.values())
        self.resync()

    def resync(self) -> None:
        """Recompute every counter from the nodes' statuses."""
        status = {n.id: n.status for n in self.graph.nodes}
        self.unmet = {k: sum(1 for p in ps if status.get(p) != "completed") for k, ps in self.preds.items()}
        self.open = {k for k, s in status.items() if s not in TERMINAL_NODE}
        self.failed = {k for k, s in status.items() if s == "failed"}
        self.done_weight = sum(w for k, w in self.weight.items() if k not in self.open)
        self.ready: dict[str, dict[str, None]] = {}
        self.fresh: dict[str, dict[str, None]] = {}
        for n in self.graph.nodes:
            if n.status in RUNNABLE and self.unmet[n.id] == 0:
                self._add_ready(n)
        self.frontier = [k for k, s in status.items() if s in BLOCKING]

    # -- changes

    def set_status(self, node_id: str, new: str) -> Node:
        """Move one node to `new` (a graph Status) and update what depends on it; returns the node."""
        node = self.by_id[node_id]
        old = node.status
        if old == new:
            return node
        node.status = new  # type: ignore[assignment]
        self._moved(node, old, new)
        return node

    def _moved(self, node: Node, old: str, new: str) -> None:
        k = node.id
        if (old in TERMINAL_NODE) != (new in TERMINAL_NODE):
            if new in TERMINAL_NODE:
                self.open.discard(k)
                self.done_weight += self.weight[k]
            else:
                self.open.add(k)
                self.done_weight -= self.weight[k]
        (self.failed.add if new == "failed" else self.failed.discard)(k)
        if new in BLOCKING:
            self.frontier.append(k)
        if old == "completed" or new == "completed":
            step = -1 if new == "completed" else 1
            for s in self.succs[k]:
                self.unmet[s] += step
                self._place(self.by_id[s])
        self._place(node)

    def _place(self, node: Node) -> None:
        if node.status in RUNNABLE and self.unmet[node.id] == 0:
            if node.id not in self.ready.get(node.plane, {}):
                self._add_ready(node)
        else:
            self.ready.get(node.plane, {}).pop(node.id, None)
            self.fresh.get(node.plane, {}).pop(node.id, None)

    def _add_ready(self, node: Node) -> None:
        self.ready.setdefault(node.plane, {})[node.id] = None
        self.fresh.setdefault(node.plane, {})[node.id] = None

    # -- queries

    def ready_nodes(self, plane: str | None = None) -> list[Node]:
        """Unfinished nodes whose predecessors all completed (on `plane`, or any), in graph order."""
        planes = [plane] if plane else list(self.ready)
        ids = [k for p in planes for k in self.ready.get(p, {})]
        return [self.by_id[k] for k in sorted(ids, key=self.index.__getitem__)]

    def take_ready(self, plane: str) -> list[Node]:
        """Ready nodes of `plane` not handed out since they became ready (or since `restart`)."""
        fresh = self.fresh.get(plane)
        if not fresh:
            return []
        ids = sorted(fresh, key=self.index.__getitem__)
        fresh.clear()
        return [self.by_id[k] for k in ids]

    def restart(self) -> None:
        """A new run: every ready node may be handed out again."""
        self.fresh = {p: dict(ids) for p, ids in self.ready.items()}

    def skip_blocked(self) -> list[Node]:
        """Pending nodes downstream of a failed, skipped or cancelled node become skipped (any plane)."""
        skipped: list[Node] = []
        while self.frontier:
            k = self.frontier.pop()
            for s in self.succs[k]:
                if self.by_id[s].status == "pending":
                    skipped.append(self.set_status(s, "skipped"))  # set_status extends the frontier
        return skipped

    def progress(self, running: dict[str, float] | None = None) -> float:
        """Weighted job progress in [0, 1]: finished nodes count whole, running ones by their fraction."""
        done = self.done_weight
        for k, frac in (running or {}).items():
            if self.by_id[k].status == "running":
                done += self.weight[k] * frac
        return done / self.total if self.total else 1.0

    def finish_all(self, status: str) -> list[Node]:
        """Every unfinished node set to `status` (cancelled, skipped); returns them."""
        return [self.set_status(k, status) for k in sorted(self.open, key=self.index.__getitem__)]

    def next_step(self, plane: str, *, cancelled: bool = False) -> Step:
        """What a run on `plane` does once nothing is ready or running there: hand off, finish or stuck."""
        if cancelled:
            return Finish("cancelled")
        for other, ids in self.ready.items():
            if other != plane and ids:
                return HandOff(other)
        if not self.open:
            return Finish("failed" if self.failed else "completed",
                          sorted(self.failed, key=self.index.__getitem__))
        return Stuck(sorted(self.open, key=self.index.__getitem__))

    def first_plane(self) -> str:
        """Where a job starts (or is re-issued): the plane of its first ready node."""
        ready = self.ready_nodes()
        return ready[0].plane if ready else self.graph.nodes[0].plane

    def apply(self, states: Iterable[tuple[str, str]]) -> None:
        """(node id, status) pairs applied through set_status."""
        for k, status in states:
            self.set_status(k, status)


def resolved_params(node: Node, by_id: Mapping[str, Node], graph: Graph) -> dict[str, Any]:
    """`node`'s params with every reference replaced by the completed upstream output or the attachment it
    names (`by_id`: the graph's nodes by id). Raises PermanentError naming what is missing."""

    def lookup(ref: Ref) -> Any:
        if isinstance(ref, NodeRef):
            up = by_id[ref.node]
            if up.status != "completed" or up.output is None:
                raise PermanentError(f"node {node.id} needs {ref.node}.{ref.output}, but {ref.node} is {up.status}")
            if ref.output not in up.output:
                raise PermanentError(
                    f"node {node.id} references output {ref.output!r} of node {ref.node!r}, "
                    f"which has outputs: {', '.join(sorted(up.output)) or 'none'}",
                    hint="fix the reference in the graph",
                )
            return up.output[ref.output]
        assert isinstance(ref, AttachmentRef)
        for a in graph.context.attachments:
            if a.id == ref.attachment:
                return a.model_dump(mode="json", by_alias=True, exclude_none=True)
        raise PermanentError(f"node {node.id} references unknown attachment {ref.attachment!r}")

    return resolve_params(node.params, lookup)
