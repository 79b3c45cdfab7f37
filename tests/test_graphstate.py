"""The graph's pure state machine: structure checks, ready, blocked, progress, the next step (no I/O)."""

from __future__ import annotations

from typing import Any

import pytest

from spinbot.errors import InvalidGraph
from spinbot.graph import Graph, node_ref
from spinbot.graphstate import Finish, GraphState, HandOff, Stuck, topological, validate_structure


def g(nodes: list[tuple[str, str]], edges: list[tuple[str, str]] = (), **node_extra: Any) -> Graph:  # type: ignore[assignment]
    return Graph.model_validate({
        "schema": "langgraph.v1", "workflowId": "w",
        "nodes": [{"id": i, "service": "x.y", "plane": p, **node_extra.get(i, {})} for i, p in nodes],
        "edges": [{"from": a, "to": b} for a, b in edges],
    })


def test_topological_order_and_the_nodes_on_a_cycle() -> None:
    order, stuck = topological({"a": set(), "b": {"a"}, "c": {"b"}})
    assert order == ["a", "b", "c"] and stuck == []
    # c waits on the cycle a <-> b but is not on it
    _, stuck = topological({"a": {"b"}, "b": {"a"}, "c": {"b"}})
    assert stuck == ["a", "b"]


def test_validate_structure_refuses_what_cannot_run() -> None:
    with pytest.raises(InvalidGraph, match="duplicate node ids: a"):
        validate_structure(g([("a", "control"), ("a", "gpu")]))
    with pytest.raises(InvalidGraph, match="unknown node 'z'"):
        validate_structure(g([("a", "control")], [("a", "z")]))
    with pytest.raises(InvalidGraph, match="cycle among nodes: a, b"):
        validate_structure(g([("a", "control"), ("b", "gpu")], [("a", "b"), ("b", "a")]))
    with pytest.raises(InvalidGraph, match="its own output"):
        validate_structure(g([("a", "control")], a={"params": {"t": node_ref("a", "text")}}))
    validate_structure(g([("a", "control"), ("b", "gpu")], [("a", "b")]))


def test_ready_follows_completions_across_planes() -> None:
    s = GraphState(g([("a", "control"), ("b", "gpu"), ("c", "control")], [("a", "b"), ("b", "c")]))
    assert [n.id for n in s.take_ready("control")] == ["a"] and s.take_ready("gpu") == []
    assert s.take_ready("control") == []  # handed out once
    s.set_status("a", "running")
    assert s.next_step("control") == Stuck(["a", "b", "c"])  # (a caller asks only when nothing runs)
    s.set_status("a", "completed")
    assert s.next_step("control") == HandOff("gpu")
    assert [n.id for n in s.take_ready("gpu")] == ["b"]
    s.set_status("b", "completed")
    assert [n.id for n in s.ready_nodes()] == ["c"] and s.next_step("gpu") == HandOff("control")
    s.set_status("c", "completed")
    assert s.next_step("control") == Finish("completed") and s.progress() == 1.0


def test_restart_hands_out_ready_nodes_again_and_a_crashed_running_node_reruns() -> None:
    s = GraphState(g([("a", "gpu"), ("b", "gpu")], [("a", "b")], a={"status": "running"}))
    assert [n.id for n in s.take_ready("gpu")] == ["a"]
    s.restart()
    assert [n.id for n in s.take_ready("gpu")] == ["a"]


def test_skip_blocked_reaches_every_plane_and_the_job_fails() -> None:
    s = GraphState(g([("a", "control"), ("b", "gpu"), ("c", "control"), ("d", "gpu")],
                     [("a", "b"), ("b", "c"), ("a", "d")]))
    s.set_status("a", "completed")
    s.set_status("b", "failed")
    assert [n.id for n in s.skip_blocked()] == ["c"] and s.skip_blocked() == []
    assert s.next_step("gpu") == Stuck(["d"])  # d is ready but on gpu: the gpu run has not taken it yet
    s.set_status("d", "completed")
    assert s.next_step("gpu") == Finish("failed", ["b"])


def test_progress_is_weighted_counts_running_fractions_and_goes_back_on_a_rerun() -> None:
    s = GraphState(g([("a", "control"), ("b", "gpu")], [("a", "b")],
                     a={"progressWeight": 0.25}, b={"progressWeight": 0.75}))
    assert s.progress() == 0.0
    s.set_status("a", "completed")
    assert s.progress() == pytest.approx(0.25)
    s.set_status("b", "running")
    assert s.progress({"b": 0.5}) == pytest.approx(0.25 + 0.375)
    s.set_status("a", "running")  # a re-issued job runs a again: b waits again
    assert s.progress() == 0.0 and s.ready_nodes() == [s.by_id["a"]]


def test_cancel_and_finish_all() -> None:
    s = GraphState(g([("a", "control"), ("b", "gpu")], [("a", "b")]))
    assert [n.id for n in s.finish_all("cancelled")] == ["a", "b"]
    assert s.next_step("control", cancelled=True) == Finish("cancelled") and s.progress() == 1.0


def test_incremental_state_matches_a_fresh_one_on_a_long_chain() -> None:
    n = 300
    graph = g([(f"n{i}", ("control", "gpu")[i % 2]) for i in range(n)],
              [(f"n{i}", f"n{i + 1}") for i in range(n - 1)])
    s = GraphState(graph)
    for i in range(n):
        plane = ("control", "gpu")[i % 2]
        assert [x.id for x in s.take_ready(plane)] == [f"n{i}"]
        s.set_status(f"n{i}", "running")
        s.set_status(f"n{i}", "completed")
        fresh = GraphState(graph)
        assert s.unmet == fresh.unmet and s.open == fresh.open
        assert [x.id for x in s.ready_nodes()] == [x.id for x in fresh.ready_nodes()]
        assert s.progress() == pytest.approx(fresh.progress())
    assert s.next_step("gpu") == Finish("completed")


def test_first_plane_is_where_the_first_ready_node_runs() -> None:
    assert GraphState(g([("a", "gpu"), ("b", "control")], [("a", "b")])).first_plane() == "gpu"
