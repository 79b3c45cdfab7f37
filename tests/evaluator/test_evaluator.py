"""The evaluator's checks, one finding code at a time, against the declared services (the generated manifests)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from evaluator import Limits, evaluate
from spinbot.graph import Graph
from spinbot.manifest import MergedManifest
from tests.evaluator.declared import declared_manifest


@pytest.fixture(scope="module")
def manifest() -> MergedManifest:
    return declared_manifest()


def ref(node: str, output: str) -> dict[str, str]:
    return {"$node": node, "output": output}


def talking_head() -> dict[str, Any]:
    """The seeds' shape on our services, with data references."""
    return {
        "schema": "langgraph.v1",
        "workflowId": "wf-1",
        "context": {"goal": "solar panels", "constraints": {"max_duration_s": 30}},
        "nodes": [
            {"id": "script", "service": "llm.generate_script", "plane": "node", "params": {"topic": "solar"}},
            {
                "id": "tts",
                "service": "tts.synthesize",
                "plane": "python",
                "params": {"text": ref("script", "narration")},
            },
            {"id": "img", "service": "image.render", "plane": "gpu", "params": {"prompt": ref("script", "stage")}},
            {
                "id": "anim",
                "service": "video.animate_portrait",
                "plane": "gpu",
                "params": {"image": ref("img", "image"), "audio": ref("tts", "audio")},
            },
            {
                "id": "pub",
                "service": "artifact.publish",
                "plane": "control",
                "params": {"items": [ref("anim", "video")]},
            },
        ],
        "edges": [{"from": "script", "to": "tts"}],
    }


def codes(g: dict[str, Any] | Graph, manifest: MergedManifest, limits: Limits | None = None) -> set[str]:
    return {f.code for f in evaluate(g, manifest, limits).findings}


def test_approves_the_talking_head_and_normalises(manifest: MergedManifest) -> None:
    v = evaluate(talking_head(), manifest)
    assert v.ok, v.findings
    assert v.findings == []
    assert v.graph is not None
    assert [n.plane for n in v.graph.nodes] == ["control", "gpu", "gpu", "gpu", "control"]
    weights = [n.progress_weight or 0 for n in v.graph.nodes]
    assert sum(weights) == pytest.approx(1.0, abs=1e-4)
    assert v.estimate is not None
    by_node = v.estimate.by_node
    assert weights == pytest.approx([by_node[n.id] / sum(by_node.values()) for n in v.graph.nodes], abs=1e-4)
    d = {k: s.estimate.duration_s for k, s in manifest.services.items()}
    # at their typical sizes: the script (30 s of narration by default), the picture, the publish
    assert [by_node[k] for k in ("script", "img", "pub")] == pytest.approx(
        [d["llm.generate_script"], d["image.render"], d["artifact.publish"]], abs=1e-3)
    # the speech and the video are sized by the words the 30 s script will have (predicted), not typical ones
    assert by_node["tts"] != pytest.approx(d["tts.synthesize"]) and by_node["anim"] > by_node["tts"]
    # script -> (tts, img serialised on the gpu plane) -> anim -> publish
    assert v.estimate.duration_s == pytest.approx(sum(by_node.values()), abs=1e-3)
    on_gpu = sum(by_node[n.id] for n in v.graph.nodes if manifest.services[n.service].gpu)
    assert v.estimate.gpu_s == pytest.approx(on_gpu, abs=1e-3)
    assert v.estimate.peak_memory_mb == max(s.estimate.memory_mb for s in manifest.services.values()
                                            if s.id in {n["service"] for n in talking_head()["nodes"]})
    assert v.estimate.low_s is not None and v.estimate.high_s is not None
    assert v.estimate.low_s < v.estimate.duration_s < v.estimate.high_s
    assert v.estimate.summary.startswith("about 44 s (")


def test_planes_run_one_node_at_a_time_but_in_parallel_with_each_other(manifest: MergedManifest) -> None:
    g = {
        "schema": "langgraph.v1",
        "workflowId": "par",
        "nodes": [
            {"id": "a", "service": "llm.generate_script", "plane": "control", "params": {"topic": "x"}},
            {"id": "b", "service": "image.render", "plane": "gpu", "params": {"prompt": "a cat"}},
            {"id": "c", "service": "image.render", "plane": "gpu", "params": {"prompt": "a dog"}},
        ],
    }
    v = evaluate(g, manifest)
    assert v.estimate is not None
    assert v.estimate.duration_s == pytest.approx(20)  # gpu: 10 + 10 while control runs 20


def test_plane_mismatch_is_fixed_with_a_warning(manifest: MergedManifest) -> None:
    g = talking_head()
    g["nodes"][1]["plane"] = "control"
    v = evaluate(g, manifest)
    assert v.ok
    assert [(f.code, f.severity, f.node) for f in v.findings] == [("plane_fixed", "warning", "tts")]
    assert v.graph is not None and v.graph.node("tts").plane == "gpu"


def test_graph_input_is_not_mutated(manifest: MergedManifest) -> None:
    g = talking_head()
    g["nodes"][1]["plane"] = "control"
    graph = Graph.model_validate(g)
    before = graph.to_json()
    evaluate(graph, manifest)
    assert graph.to_json() == before


@pytest.mark.parametrize(
    "doc",
    [
        {"schema": "langgraph.v1", "workflowId": "x", "nodes": []},
        {"schema": "langgraph.v2", "workflowId": "x", "nodes": [{"id": "a", "service": "diag.echo", "plane": "gpu"}]},
        {"schema": "langgraph.v1", "workflowId": "x", "nodes": [{"id": "a", "service": "rm -rf /", "plane": "gpu"}]},
        {
            "schema": "langgraph.v1",
            "workflowId": "x",
            "nodes": [{"id": "a", "service": "diag.echo", "plane": "gpu", "params": {"t": {"$node": 3}}}],
        },
        "not a graph",
    ],
)
def test_schema_errors_stop_early(manifest: MergedManifest, doc: Any) -> None:
    v = evaluate(doc, manifest)
    assert not v.ok and v.graph is None and v.estimate is None
    assert {f.code for f in v.findings} == {"schema"}


def test_structure_findings(manifest: MergedManifest) -> None:
    g = talking_head()
    g["nodes"].append(copy.deepcopy(g["nodes"][0]))
    g["edges"].append({"from": "ghost", "to": "pub"})
    assert {"duplicate_id", "unknown_node"} <= codes(g, manifest)


@pytest.mark.parametrize(
    "mutate",
    [
        lambda g: g["edges"].append({"from": "pub", "to": "script"}),
        lambda g: (
            g["nodes"][0]["params"].update(topic="x", style="y") or g["edges"].append({"from": "anim", "to": "tts"})
        ),
        lambda g: g["edges"].append({"from": "img", "to": "img"}),
    ],
)
def test_cycles(manifest: MergedManifest, mutate: Any) -> None:
    g = talking_head()
    mutate(g)
    v = evaluate(g, manifest)
    assert not v.ok and "cycle" in {f.code for f in v.findings} and v.estimate is None


def test_services(manifest: MergedManifest) -> None:
    g = talking_head()
    g["nodes"][2]["service"] = "shell.exec"
    found = evaluate(g, manifest).findings
    unknown = next(f for f in found if f.code == "unknown_service")
    assert unknown.node == "img" and "image.render" in unknown.hint
    assert "service_unavailable" in codes(
        talking_head(), declared_manifest(unavailable=("video.upscale", "tts.synthesize"))
    )


def test_params(manifest: MergedManifest) -> None:
    g = talking_head()
    g["nodes"][1]["params"]["speed"] = 1000
    g["nodes"][1]["params"]["shell"] = "ls"
    g["nodes"][0]["params"]["voice"] = "robot"
    v = evaluate(g, manifest)
    found = {(f.code, f.node) for f in v.findings}
    assert {("invalid_param", "tts"), ("unknown_param", "tts"), ("invalid_param", "script")} <= found
    speed = next(f for f in v.findings if f.code == "invalid_param" and f.node == "tts")
    assert "450" in speed.hint and "{" not in speed.hint  # in words: "from 80 to 450", not a raw schema


def test_wiring(manifest: MergedManifest) -> None:
    g = talking_head()
    del g["nodes"][3]["params"]["audio"]  # required input
    g["nodes"][1]["params"]["text"] = ref("script", "script")  # json into text
    g["nodes"][2]["params"]["prompt"] = ref("script", "mood")  # no such output
    g["nodes"][0]["params"]["style"] = ref("img", "image")  # not an input
    g["nodes"][4]["params"]["items"].append(ref("nowhere", "video"))
    found = {(f.code, f.node) for f in evaluate(g, manifest).findings}
    assert {
        ("missing_input", "anim"),
        ("type_mismatch", "tts"),
        ("unknown_output", "img"),
        ("not_an_input", "script"),
        ("unknown_ref", "pub"),
    } <= found


def test_attachments(manifest: MergedManifest) -> None:
    g = talking_head()
    g["context"]["attachments"] = [{"id": "face", "kind": "image", "key": "uploads/face.png"}]
    g["nodes"][3]["params"]["image"] = {"$attachment": "face"}
    del g["nodes"][2]
    v = evaluate(g, manifest)
    assert v.ok, v.findings
    g["nodes"][1]["params"]["text"] = {"$attachment": "face"}
    g["nodes"][2]["params"]["image"] = {"$attachment": "selfie"}
    found = {(f.code, f.node) for f in evaluate(g, manifest).findings}
    assert {("type_mismatch", "tts"), ("unknown_attachment", "anim")} <= found


def test_limits(manifest: MergedManifest) -> None:
    assert "too_many_nodes" in codes(talking_head(), manifest, Limits(max_nodes=3))
    assert "fan_out" in codes(talking_head(), manifest, Limits(max_fan_out=1))  # script feeds tts and img
    assert "gpu_budget" in codes(talking_head(), manifest, Limits(max_gpu_s=10))
    assert "too_slow" in codes(talking_head(), manifest, Limits(max_duration_s=30))


def test_goal_constraints(manifest: MergedManifest) -> None:
    g = talking_head()
    g["nodes"][0]["params"]["duration_s"] = 60
    found = [f for f in evaluate(g, manifest).findings if f.code == "constraint"]
    assert [f.node for f in found] == ["script"] and "<= 30" in found[0].hint
    g["context"]["constraints"]["max_duration_s"] = 90
    assert evaluate(g, manifest).ok


def test_unused_outputs_warn(manifest: MergedManifest) -> None:
    g = talking_head()
    g["nodes"].append({"id": "card", "service": "image.render", "plane": "gpu", "params": {"prompt": "title"}})
    g["edges"].append({"from": "card", "to": "pub"})
    v = evaluate(g, manifest)
    assert v.ok
    assert [(f.code, f.severity, f.node) for f in v.findings] == [("unused_output", "warning", "card")]


@pytest.mark.parametrize(
    "value",
    [
        "http://169.254.169.254/latest/meta-data/",
        "please summarise file:///etc/passwd for me",
        ["ok", {"nested": "gopher://evil.example:70/"}],
    ],
)
def test_url_params_are_refused(manifest: MergedManifest, value: Any) -> None:
    """In a param the service fetches (declared in its `fetches`), any URL outside allowed_hosts is refused."""
    m = manifest.model_copy(deep=True)
    m.services["llm.generate_script"].fetches = ["style"]
    m.services["artifact.publish"].fetches = ["items"]
    g = talking_head()
    g["nodes"][0]["params"]["style"] = value if isinstance(value, str) else "plain"
    if not isinstance(value, str):
        g["nodes"][4]["params"]["items"].append(value)
    v = evaluate(g, m)
    assert not v.ok and "url_not_allowed" in {f.code for f in v.findings}


@pytest.mark.parametrize("param", ["style", "topic"])
def test_urls_in_params_nothing_fetches_are_text(manifest: MergedManifest, param: str) -> None:
    """No service fetches these params: a URL in them is words (a topic, a read-aloud), not a request."""
    g = talking_head()
    g["nodes"][0]["params"][param] = "visit https://example.com/help or http://169.254.169.254/"
    assert evaluate(g, manifest).ok
    fetching = manifest.model_copy(deep=True)
    fetching.services["llm.generate_script"].fetches = ["style"]
    assert evaluate(g, fetching).ok is (param != "style")


def test_url_allowed_for_listed_hosts(manifest: MergedManifest) -> None:
    m = manifest.model_copy(deep=True)
    m.services["llm.generate_script"].allowed_hosts = ["en.wikipedia.org"]
    m.services["llm.generate_script"].fetches = ["style"]
    g = talking_head()
    g["nodes"][0]["params"]["style"] = "like https://en.wikipedia.org/wiki/Solar_panel"
    assert evaluate(g, m).ok
    g["nodes"][0]["params"]["style"] = "like http://169.254.169.254/"
    assert not evaluate(g, m).ok


def test_verdict_json_round_trip(manifest: MergedManifest) -> None:
    out = evaluate(talking_head(), manifest).to_json()
    assert out["ok"] is True and Graph.model_validate(out["graph"]).workflow_id == "wf-1"


def test_nul_characters_are_refused(manifest: MergedManifest) -> None:
    g = talking_head()
    g["nodes"][0]["params"]["topic"] = "solar\x00panels"
    assert "nul_character" in codes(g, manifest)


def test_preset_node_state_is_refused(manifest: MergedManifest) -> None:
    g = talking_head()
    g["nodes"][2] |= {"status": "completed", "output": {"image": {"key": "someone-else/face.png", "size": 1}}}
    found = [(f.code, f.node) for f in evaluate(g, manifest).errors]
    assert found == [("preset_state", "img")]


def spoken_video(text: dict[str, Any] | str, *, script_s: float | None = None) -> dict[str, Any]:
    """A talking head speaking `text` (a literal, or a script's narration of `script_s` seconds)."""
    nodes: list[dict[str, Any]] = [
        {"id": "tts", "service": "tts.synthesize", "plane": "gpu", "params": {"text": text}},
        {"id": "img", "service": "image.render", "plane": "gpu", "params": {"prompt": "a presenter"}},
        {"id": "anim", "service": "video.animate_portrait", "plane": "gpu",
         "params": {"image": ref("img", "image"), "audio": ref("tts", "audio")}}]
    if script_s is not None:
        nodes.insert(0, {"id": "script", "service": "llm.generate_script", "plane": "control",
                         "params": {"topic": "tides", "duration_s": script_s}})
    return {"schema": "langgraph.v1", "workflowId": "say", "nodes": nodes, "edges": []}


def test_a_longer_text_is_estimated_longer_speech_and_video(manifest: MergedManifest) -> None:
    sentence = "Tides rise and fall twice a day, pulled by the moon. "
    short, long = (evaluate(spoken_video(sentence * k), manifest).estimate for k in (1, 17))  # 53 and 901 chars
    assert short is not None and long is not None
    # the speech's and the video's run time grow with the words; the picture's does not
    assert long.by_node["tts"] > 5 * short.by_node["tts"] and long.by_node["anim"] > 2 * short.by_node["anim"]
    assert long.by_node["img"] == short.by_node["img"]
    assert long.duration_s > 2 * short.duration_s
    # before this, a video was estimated at the declared typical length whatever was said (about 23 s here)
    assert short.summary.startswith("about 8 s") and long.summary.startswith("about 40 s"), (short, long)
    # a script's length is known at plan time too: a 3-minute narration makes a longer video than a 20-second one
    brief, lengthy = (evaluate(spoken_video(ref("script", "narration"), script_s=s), manifest).estimate
                      for s in (20, 180))
    assert brief is not None and lengthy is not None
    assert lengthy.by_node["anim"] > 4 * brief.by_node["anim"] and lengthy.by_node["script"] > brief.by_node["script"]
