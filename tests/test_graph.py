"""The JSON Schema and the pydantic models accept and reject the same documents."""

from __future__ import annotations

import copy
from typing import Any

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from spinbot.graph import AttachmentRef, Graph, NodeRef, iter_refs, json_schema, resolve_params
from spinbot.graphstate import GraphState

VALIDATOR = jsonschema.Draft202012Validator(json_schema())


def pydantic_accepts(doc: Any) -> bool:
    try:
        Graph.model_validate(doc)
    except (ValidationError, ValueError):
        return False
    return True


def schema_accepts(doc: Any) -> bool:
    return VALIDATOR.is_valid(doc)


# -- documents the schema accepts ----------------------------------------------------------------

ids = st.from_regex(r"\A[A-Za-z0-9][A-Za-z0-9_.:-]{0,8}\Z")
outputs = st.from_regex(r"\A[A-Za-z_][A-Za-z0-9_]{0,8}\Z")
json_leaf = st.none() | st.booleans() | st.integers(-5, 5) | st.floats(-2, 2, allow_nan=False) | st.text(max_size=5)
json_value = st.recursive(
    json_leaf,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=6,
)
refs = st.builds(lambda n, o: {"$node": n, "output": o}, ids, outputs) | st.builds(lambda a: {"$attachment": a}, ids)
param_value = json_value | refs | st.lists(json_value | refs, max_size=3)
planes = st.sampled_from(["control", "gpu", "node", "python", "data"])
statuses = st.sampled_from(["pending", "running", "completed", "failed", "skipped", "cancelled"])
nodes = st.fixed_dictionaries(
    {"id": ids, "service": st.sampled_from(["diag.echo", "tts.synthesize", "a.b.c"]), "plane": planes},
    optional={
        "name": st.text(max_size=10) | st.none(),
        "status": statuses,
        "progressWeight": st.floats(0.01, 1) | st.none(),
        "params": st.dictionaries(st.text(max_size=5), param_value, max_size=3),
        "output": st.none() | st.dictionaries(st.text(max_size=4), json_value, max_size=2),
        "error": st.none() | st.fixed_dictionaries({"code": st.text(max_size=5), "message": st.text(max_size=5)}),
        "attempts": st.integers(0, 5),
    },
)
graphs = st.fixed_dictionaries(
    {"schema": st.just("langgraph.v1"), "workflowId": ids, "nodes": st.lists(nodes, min_size=1, max_size=4)},
    optional={
        "edges": st.lists(
            st.fixed_dictionaries({"from": ids, "to": ids}, optional={"kind": st.just("normal")}), max_size=3
        ),
        "metadata": st.dictionaries(st.text(max_size=4), json_value, max_size=2),
        "context": st.fixed_dictionaries(
            {}, optional={"goal": st.text(max_size=10), "constraints": st.just({"max_duration_s": 30})}
        ),
    },
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(graphs)
def test_generated_valid_documents_are_accepted_by_both(doc: dict[str, Any]) -> None:
    assert schema_accepts(doc)
    assert pydantic_accepts(doc)


# -- mutated documents: both must give the same verdict ------------------------------------------


def _paths(doc: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(doc, dict):
        for k, v in doc.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            out += _paths(v, (*prefix, i))
    return out


@st.composite
def mutated(draw: st.DrawFn) -> Any:
    doc = copy.deepcopy(draw(graphs))
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(_paths(doc)))
        if not path:
            continue
        parent = doc
        for p in path[:-1]:
            parent = parent[p]
        key = path[-1]
        action = draw(st.sampled_from(["replace", "delete", "extra"]))
        if action == "replace":
            parent[key] = draw(json_value | refs | st.sampled_from(["node", "gpu", "bogus", -1, 0, 1.5, True]))
        elif action == "delete":
            del parent[key]
        elif isinstance(parent[key], dict):
            parent[key][draw(st.sampled_from(["extra", "$node", "$attachment", "output", "kind"]))] = draw(json_value)
    return doc


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_schema_and_models_agree_on_mutated_documents(doc: Any) -> None:
    assert schema_accepts(doc) == pydantic_accepts(doc)


# -- behaviour of the contract -----------------------------------------------------------------


def test_seed_planes_are_normalised() -> None:
    g = Graph.model_validate(
        {
            "schema": "langgraph.v1",
            "workflowId": "w",
            "nodes": [
                {"id": "a", "service": "x.y", "plane": "node"},
                {"id": "b", "service": "x.y", "plane": "python"},
                {"id": "c", "service": "x.y", "plane": "data"},
            ],
        }
    )
    assert [n.plane for n in g.nodes] == ["control", "gpu", "gpu"]
    assert [n["plane"] for n in g.to_json()["nodes"]] == ["control", "gpu", "gpu"]


@pytest.mark.parametrize(
    "params",
    [
        {"x": {"$node": "a"}},
        {"x": {"$node": "a", "output": "o", "more": 1}},
        {"x": [{"$attachment": "bad id!"}]},
        {"x": {"$node": "a", "output": "o", "$attachment": "b"}},
    ],
)
def test_malformed_references_are_rejected(params: dict[str, Any]) -> None:
    doc = {
        "schema": "langgraph.v1",
        "workflowId": "w",
        "nodes": [{"id": "b", "service": "x.y", "plane": "gpu", "params": params}],
    }
    assert not pydantic_accepts(doc)
    assert not schema_accepts(doc)


def test_references_imply_dependencies_and_resolve() -> None:
    g = Graph.model_validate(
        {
            "schema": "langgraph.v1",
            "workflowId": "w",
            "nodes": [
                {"id": "a", "service": "x.y", "plane": "control"},
                {
                    "id": "b",
                    "service": "x.y",
                    "plane": "gpu",
                    "params": {"t": {"$node": "a", "output": "text"}, "l": [{"$attachment": "img"}, 3], "k": 1},
                },
            ],
        }
    )
    assert g.predecessors() == {"a": set(), "b": {"a"}}
    assert list(iter_refs(g.node("b").params)) == [("t", NodeRef("a", "text")), ("l", AttachmentRef("img"))]
    resolved = resolve_params(g.node("b").params, lambda r: f"<{r}>")
    assert resolved["k"] == 1 and resolved["l"][1] == 3 and resolved["t"].startswith("<NodeRef")


def test_progress_is_weighted() -> None:
    g = Graph.model_validate(
        {
            "schema": "langgraph.v1",
            "workflowId": "w",
            "nodes": [
                {"id": "a", "service": "x.y", "plane": "control", "progressWeight": 0.25, "status": "completed"},
                {"id": "b", "service": "x.y", "plane": "gpu", "progressWeight": 0.75},
            ],
        }
    )
    assert GraphState(g).progress() == pytest.approx(0.25)
