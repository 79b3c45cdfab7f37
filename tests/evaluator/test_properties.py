"""Property tests: whatever graph it is given, the evaluator answers with a verdict and never raises."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from evaluator import Limits, evaluate
from tests.evaluator.declared import declared_manifest

MANIFEST = declared_manifest(unavailable=("video.upscale",))
SERVICES = sorted(MANIFEST.services) + ["shell.exec", "image.generate"]
OUTPUTS = sorted({o for s in MANIFEST.services.values() for o in s.outputs}) + ["nope"]
PARAMS = sorted({p for s in MANIFEST.services.values() for p in s.params.get("properties", {})}) + ["url"]
IDS = [f"n{i}" for i in range(8)]

json_leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**6), 10**6),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
    st.sampled_from(["http://169.254.169.254/", "female", "portrait", "lanczos"]),
)
json_any = st.recursive(
    json_leaf,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)
node_ref = st.builds(lambda n, o: {"$node": n, "output": o}, st.sampled_from(IDS), st.sampled_from(OUTPUTS))
att_ref = st.builds(lambda a: {"$attachment": a}, st.sampled_from(["a1", "a2"]))
param_value = st.one_of(json_leaf, node_ref, att_ref, st.lists(st.one_of(node_ref, json_leaf), max_size=3))


@st.composite
def graphs(draw: st.DrawFn) -> dict[str, Any]:
    ids = draw(st.lists(st.sampled_from(IDS), min_size=1, max_size=8))
    nodes = [
        {
            "id": i,
            "service": draw(st.sampled_from(SERVICES)),
            "plane": draw(st.sampled_from(["control", "gpu", "node", "python"])),
            "params": draw(st.dictionaries(st.sampled_from(PARAMS), param_value, max_size=4)),
            **({"progressWeight": draw(st.floats(0.01, 1))} if draw(st.booleans()) else {}),
        }
        for i in ids
    ]
    edges = draw(
        st.lists(st.builds(lambda a, b: {"from": a, "to": b}, st.sampled_from(IDS), st.sampled_from(IDS)), max_size=8)
    )
    attachments = [{"id": "a1", "kind": draw(st.sampled_from(["image", "audio", "text"])), "key": "k/a1"}]
    constraints = draw(st.dictionaries(st.sampled_from(["max_duration_s", "style"]), json_leaf, max_size=2))
    return {
        "schema": "langgraph.v1",
        "workflowId": "prop",
        "context": {"goal": "g", "attachments": attachments, "constraints": constraints},
        "nodes": nodes,
        "edges": edges,
    }


def _compatible(produced: str, wanted: str) -> bool:
    return produced == wanted or "any" in (produced, wanted)


@st.composite
def wired_graphs(draw: st.DrawFn) -> dict[str, Any]:
    """Mostly sound graphs: each node's inputs reference earlier outputs of a compatible type."""
    specs = [MANIFEST.services[k] for k in sorted(MANIFEST.services)]
    nodes: list[dict[str, Any]] = []
    for i in range(draw(st.integers(1, 8))):
        spec = draw(st.sampled_from(specs))
        params: dict[str, Any] = {}
        for name, wanted in spec.inputs.items():
            sources = [(n["id"], o) for n in nodes for o, t in MANIFEST.services[n["service"]].outputs.items()]
            sources = [
                (nid, o) for nid, o in sources if _compatible(MANIFEST.services[_svc(nodes, nid)].outputs[o], wanted)
            ]
            required = name in spec.params.get("required", [])
            if sources and (required or draw(st.booleans())):
                nid, o = draw(st.sampled_from(sources))
                value: Any = {"$node": nid, "output": o}
                schema = spec.params["properties"].get(name, {})
                params[name] = [value] if schema.get("type") == "array" else value
        if any(r not in params for r in spec.params.get("required", []) if r in spec.inputs):
            spec = MANIFEST.services["diag.echo"]
            params = {"text": draw(st.text(max_size=10))}
        if spec.id == "llm.generate_script":
            params["topic"] = draw(st.text(min_size=1, max_size=10))
        nodes.append({"id": f"n{i}", "service": spec.id, "plane": draw(st.sampled_from(spec.planes)), "params": params})
    return {"schema": "langgraph.v1", "workflowId": "wired", "nodes": nodes}


def _svc(nodes: list[dict[str, Any]], node_id: str) -> str:
    return next(n["service"] for n in nodes if n["id"] == node_id)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(graphs(), wired_graphs()), st.integers(1, 10))
def test_generated_graphs_never_raise(doc: dict[str, Any], max_nodes: int) -> None:
    v = evaluate(doc, MANIFEST, Limits(max_nodes=max_nodes, max_fan_out=3))
    assert v.ok == (not any(f.severity == "error" for f in v.findings))
    if v.ok:
        assert v.graph is not None and v.estimate is not None
        assert abs(sum(n.progress_weight or 0 for n in v.graph.nodes) - 1) < 1e-3
        assert all(n.plane in MANIFEST.services[n.service].planes for n in v.graph.nodes)
        assert len({n.id for n in v.graph.nodes}) == len(v.graph.nodes) <= max_nodes


@settings(max_examples=200, deadline=None)
@given(json_any)
def test_arbitrary_json_never_raises(doc: Any) -> None:
    v = evaluate(doc, MANIFEST)
    assert not v.ok and v.graph is None
