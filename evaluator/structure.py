"""The graph's shape: parsing, ids, fresh state, who waits for whom, and the DAG check."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from evaluator.model import Finding
from evaluator.run import Run
from evaluator.schemas import SchemaError, graph_schema
from spinbot.graph import Graph, NodeRef
from spinbot.graphstate import topological


def parse(graph: Graph | dict[str, Any]) -> tuple[Graph | None, list[Finding]]:
    """A private, validated copy of the graph; a dict is checked against the model, and on failure against
    the JSON Schema for its clearer messages (the two accept the same documents: tests/test_graph.py)."""
    if isinstance(graph, Graph):
        # Only nodes' plane and weight change: copying the nodes keeps the caller's graph untouched.
        return graph.model_copy(update={"nodes": [n.model_copy() for n in graph.nodes]}), []
    if not isinstance(graph, dict):
        return None, [Finding(code="schema", message="a graph is a JSON object", hint="send a langgraph.v1 object")]
    try:
        return Graph.model_validate(graph), []
    except ValidationError as e:
        model_errors = e.errors()[:20]
    findings = [
        Finding(code="schema", node=_node_of(graph, err), message=f"{err.where}: {err.message[:300]}",
                hint="follow manifests/langgraph.v1.schema.json")
        for err in graph_schema().errors(graph)
    ]
    return None, findings or [
        Finding(code="schema", message=f"{'/'.join(map(str, err['loc']))}: {err['msg']}") for err in model_errors
    ]


def _node_of(graph: dict[str, Any], error: SchemaError) -> str | None:
    path = error.path
    if len(path) >= 2 and path[0] == "nodes" and isinstance(path[1], int):
        try:
            node_id = graph["nodes"][path[1]].get("id")
        except (IndexError, AttributeError, TypeError):
            return None
        return node_id if isinstance(node_id, str) else None
    return None


def check_ids(run: Run) -> set[str]:
    seen: set[str] = set()
    for n in run.graph.nodes:
        if n.id in seen:
            run.add("duplicate_id", f"node id {n.id!r} is used twice", node=n.id, hint="give every node its own id")
        seen.add(n.id)
    attachments = [a.id for a in run.graph.context.attachments]
    if len(set(attachments)) != len(attachments):
        run.add("duplicate_id", "two attachments share an id", hint="give every attachment its own id")
    return seen


def check_fresh(run: Run) -> None:
    """A new job's nodes carry no state: a preset output could smuggle someone else's artifact downstream."""
    for n in run.graph.nodes:
        if n.status != "pending" or n.output is not None or n.error is not None or n.attempts:
            run.add(
                "preset_state",
                f"node {n.id} arrives {n.status}" + (" with an output" if n.output is not None else ""),
                node=n.id,
                hint="submit every node pending, without output, error or attempts",
            )


def predecessors(run: Run, ids: set[str]) -> dict[str, set[str]]:
    """Node -> nodes it waits for (edges and references); edges naming unknown nodes are findings."""
    preds: dict[str, set[str]] = {i: set() for i in ids}
    for e in run.graph.edges:
        if e.source in ids and e.target in ids:
            preds[e.target].add(e.source)
            continue
        bad = [x for x in (e.source, e.target) if x not in ids]
        run.add(
            "unknown_node",
            f"edge {e.source} -> {e.target} names a node that does not exist: {', '.join(bad)}",
            hint="edges connect existing node ids only",
        )
    for n in run.graph.nodes:
        mine = preds[n.id]
        for _, ref in run.refs_of(n):
            if type(ref) is NodeRef and ref.node in ids:
                mine.add(ref.node)
    return preds


def check_dag(run: Run, preds: dict[str, set[str]]) -> list[str] | None:
    """The DAG check (spinbot.graphstate.topological, the executors' too): Kahn's order of the node ids,
    or None (and a `cycle` finding) when there is a cycle."""
    order, stuck = topological(preds, run.succs)
    if not stuck:
        return order
    run.add(
        "cycle",
        f"the graph has a cycle through {', '.join(stuck[:10])}",
        node=stuck[0],
        hint="a node may only depend on nodes before it; remove the edge or reference that points back",
    )
    return None
