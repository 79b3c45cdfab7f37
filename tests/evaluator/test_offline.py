"""A queue queues: with the declared manifest, a plane with no executor online is a warning, not an error."""

from __future__ import annotations

import json
from typing import Any

import pytest

from evaluator import evaluate
from spinbot import MANIFESTS_DIR
from spinbot.capabilities import committed_manifest
from spinbot.manifest import MergedManifest, PlaneManifest, merge

DECLARED = committed_manifest()


def live(*planes: str, unavailable: dict[str, str] | None = None, drop: tuple[str, ...] = ()) -> MergedManifest:
    """The live manifest of one executor per plane in `planes`, as the committed files declare them.

    `unavailable` marks services off with a reason (as a failing probe does); `drop` leaves services out
    (an executor of an older version).
    """
    out = []
    for plane in planes:
        doc = json.loads((MANIFESTS_DIR / f"{plane}.json").read_text())
        m = PlaneManifest.model_validate(doc).model_copy(update={"executor": f"{plane}-1"})
        specs = []
        for spec in m.services:
            if spec.id in drop:
                continue
            reason = (unavailable or {}).get(spec.id)
            specs.append(spec.model_copy(update={"available": False, "unavailable_reason": reason}) if reason else spec)
        out.append(m.model_copy(update={"services": specs}))
    return merge(out)


def node(node_id: str, service: str, plane: str, **params: Any) -> dict[str, Any]:
    return {"id": node_id, "service": service, "plane": plane, "params": params}


def graph(*nodes: dict[str, Any]) -> dict[str, Any]:
    return {"schema": "langgraph.v1", "workflowId": "wf", "nodes": list(nodes)}


def found(v: Any) -> list[tuple[str, str, str | None]]:
    return [(f.code, f.severity, f.node) for f in v.findings]


VOICEOVER = graph(
    node("wait", "diag.wait", "control", seconds=0.1),
    node("speak", "tts.synthesize", "gpu", text={"$node": "wait", "output": "text"}),
)


def test_no_executor_online_queues_with_a_warning_per_node() -> None:
    v = evaluate(VOICEOVER, live(), declared=DECLARED)
    assert v.ok, v.findings
    assert found(v) == [("plane_offline", "warning", "wait"), ("plane_offline", "warning", "speak")]
    speak = next(f for f in v.findings if f.node == "speak")
    assert speak.message == "no gpu executor online; the job starts when one joins"
    assert v.estimate is not None and v.estimate.duration_s > 0  # the declared specs still estimate
    assert v.graph is not None and [n.plane for n in v.graph.nodes] == ["control", "gpu"]


@pytest.mark.parametrize(("online", "waiting"), [(("control",), "speak"), (("gpu",), "wait")])
def test_one_plane_down_warns_only_for_its_nodes(online: tuple[str, ...], waiting: str) -> None:
    v = evaluate(VOICEOVER, live(*online), declared=DECLARED)
    assert v.ok and found(v) == [("plane_offline", "warning", waiting)]


def test_both_planes_online_no_warning() -> None:
    v = evaluate(VOICEOVER, live("control", "gpu"), declared=DECLARED)
    assert v.ok and v.findings == []


def test_a_node_keeps_its_declared_plane_while_that_plane_is_down() -> None:
    """diag.echo runs on both planes: asked for gpu while only control is up, it waits for gpu (not moved)."""
    v = evaluate(graph(node("e", "diag.echo", "gpu", text="hi")), live("control"), declared=DECLARED)
    assert v.ok and found(v) == [("plane_offline", "warning", "e")]
    assert v.graph is not None and v.graph.node("e").plane == "gpu"


def test_a_node_on_a_plane_its_service_never_runs_on_is_moved_then_waits() -> None:
    v = evaluate(graph(node("s", "tts.synthesize", "control", text="hi")), live("control"), declared=DECLARED)
    assert v.ok and found(v) == [("plane_fixed", "warning", "s"), ("plane_offline", "warning", "s")]
    assert v.graph is not None and v.graph.node("s").plane == "gpu"


@pytest.mark.parametrize("online", [(), ("control",), ("control", "gpu")])
def test_an_undeclared_service_is_unknown_whoever_is_online(online: tuple[str, ...]) -> None:
    v = evaluate(graph(node("x", "shell.exec", "gpu")), live(*online), declared=DECLARED)
    assert not v.ok and found(v) == [("unknown_service", "error", "x")]
    assert "tts.synthesize" in v.findings[0].hint  # declared services are offered even while their plane is down


def test_a_live_service_that_reports_itself_unavailable_is_refused_with_its_reason() -> None:
    manifest = live("control", unavailable={"llm.generate_script": "Ollama is not reachable at http://x"})
    v = evaluate(graph(node("s", "llm.generate_script", "control", topic="solar")), manifest, declared=DECLARED)
    assert not v.ok and found(v) == [("service_unavailable", "error", "s")]
    assert "Ollama is not reachable" in v.findings[0].message


def test_an_online_plane_whose_executors_lack_the_service_is_refused() -> None:
    v = evaluate(graph(node("s", "llm.generate_script", "control", topic="solar")),
                 live("control", "gpu", drop=("llm.generate_script",)), declared=DECLARED)
    assert not v.ok and found(v) == [("service_unavailable", "error", "s")]
    assert "no live executor offers it" in v.findings[0].message


def test_waiting_nodes_still_have_their_params_checked() -> None:
    v = evaluate(graph(node("s", "tts.synthesize", "gpu", text="hi", speed=1000, shell="ls")), live(),
                 declared=DECLARED)
    assert not v.ok and {"invalid_param", "unknown_param"} <= {f.code for f in v.errors}


def test_without_the_declared_manifest_only_what_runs_now_counts() -> None:
    """The planner's rule (it plans with what runs now): a service of a plane that is down is unknown."""
    v = evaluate(VOICEOVER, live("control"))
    assert not v.ok and found(v) == [("unknown_service", "error", "speak")]


def test_the_manifests_are_not_mutated() -> None:
    before, manifest = DECLARED.to_json(), live("control")
    live_before = manifest.to_json()
    evaluate(graph(node("s", "tts.synthesize", "control", text="hi")), manifest, declared=DECLARED)
    assert DECLARED.to_json() == before and manifest.to_json() == live_before
