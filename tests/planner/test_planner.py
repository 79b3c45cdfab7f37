"""The planner's pieces: compile, events and metrics, the request's shape, `spinbot plan`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import REGISTRY

from evaluator import evaluate
from planner import PlanRequest, plan
from planner.cli import plan_command
from planner.compile import PlanShapeError, compile_plan
from planner.pipelines import build_graph
from planner.prompting import decompile
from spinbot.graph import Attachment
from spinbot.manifest import MergedManifest
from spinbot.settings import Settings as SpinbotSettings
from tests.evaluator.catalog import catalog_manifest
from tests.fake_ollama import FakeOllama

MANIFEST = catalog_manifest()
FACE = Attachment(id="face", kind="image", key="uploads/face.png")


def step(
    id: str, service: str, params: dict[str, Any] | None = None, inputs: dict[str, Any] | None = None
) -> dict[str, Any]:
    return {"id": id, "service": service, "params": params or {}, "inputs": inputs or {}}


def test_compile_derives_ids_planes_wiring_weights_edges() -> None:
    plan_doc = {
        "steps": [
            step("Voice Over!", "tts.synthesize", {"text": "Hello there"}),
            step("Voice Over!", "tts.synthesize", {"text": "Second"}),
            step("talk", "video.animate_portrait", {"audio": "Voice_Over.audio"}, {"image": "@face"}),
            step("pub", "artifact.publish"),
        ]
    }
    doc = compile_plan(plan_doc, MANIFEST, goal="g", attachments=[FACE], constraints={})
    nodes = {n["id"]: n for n in doc["nodes"]}
    assert list(nodes) == ["Voice_Over", "Voice_Over_2", "talk", "pub"]
    assert {n["plane"] for n in doc["nodes"]} == {"gpu", "control"} and nodes["pub"]["plane"] == "control"
    assert nodes["talk"]["params"] == {
        "audio": {"$node": "Voice_Over", "output": "audio"},
        "image": {"$attachment": "face"},
    }
    assert nodes["pub"]["params"]["items"] == [{"$node": "talk", "output": "video"}]  # derived: the latest artifact
    assert sum(n["progressWeight"] for n in doc["nodes"]) == pytest.approx(1, abs=1e-3)
    assert sorted((e["from"], e["to"]) for e in doc["edges"]) == [("Voice_Over", "talk"), ("talk", "pub")]
    assert evaluate(doc, MANIFEST).ok


@pytest.mark.parametrize("bad", [None, [], {"steps": []}, {"steps": "two"}, {"steps": [1, 2]}, {"plan": []}])
def test_compile_refuses_what_is_not_a_plan(bad: Any) -> None:
    with pytest.raises(PlanShapeError):
        compile_plan(bad, MANIFEST, goal="g", attachments=[], constraints={})


def test_decompile_round_trips_a_pipeline() -> None:
    graph = build_graph("svd_wav2lip", {"topic": "tides"})
    doc = compile_plan(decompile(graph), MANIFEST, goal="tides", attachments=[], constraints={})
    assert [n["params"] for n in doc["nodes"]] == [n.params for n in graph.nodes]


def test_request_accepts_the_web_history_shape() -> None:
    req = PlanRequest(goal="and now?", history=[{"role": "assistant", "content": "ok", "job_id": "j1", "extra": 1}])
    assert req.conversation[0].job_id == "j1"


def _value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_events_and_metrics_of_a_repair(fake_ollama: FakeOllama, tmp_path: Path) -> None:
    good = decompile(build_graph("f5tts_infinitetalk", {"topic": "tea"}))
    fake_ollama.replies += [{"steps": [step("x", "video.generate")]}, good]
    before = (_value("spinbot_planner_attempts_total", outcome="rejected"),
              _value("spinbot_planner_attempts_total", outcome="approved"))  # fmt: skip
    events: list[dict[str, Any]] = []

    async def on_event(e: dict[str, Any]) -> None:
        events.append(e)

    settings = SpinbotSettings(ollama_url=fake_ollama.url, data_dir=tmp_path)
    result = await plan(settings, PlanRequest(goal="a video about tea"), MANIFEST, on_event)
    assert [(e["type"], e["attempt"], e["stage"]) for e in events] == [
        ("planning", 1, "drafting"), ("planning", 2, "repairing"), ("planning", 2, "done"),
    ]  # fmt: skip
    assert _value("spinbot_planner_attempts_total", outcome="rejected") == before[0] + 1
    assert _value("spinbot_planner_attempts_total", outcome="approved") == before[1] + 1
    assert result.graph is not None
    trace = result.graph.metadata["planner"]
    assert trace["llm_calls"] == 2 and trace["model"] == settings.ollama_model
    assert trace["completion_tokens"] > 0 and all("duration_s" in a for a in trace["attempts"])
    repair = fake_ollama.chat_requests[1].messages
    assert repair[-2]["role"] == "assistant" and "video.generate" in repair[-1]["content"]


async def test_nothing_available_is_not_approved(tmp_path: Path) -> None:
    settings = SpinbotSettings(ollama_url="http://127.0.0.1:9", data_dir=tmp_path)
    fallbacks = _value("spinbot_planner_fallbacks_total")
    result = await plan(settings, PlanRequest(goal="a video about tea"), MergedManifest())
    assert result.kind == "plan" and not result.approved and result.fallback
    assert "no fixed pipeline fits" in result.message
    assert _value("spinbot_planner_fallbacks_total") == fallbacks + 1


async def test_plan_command_falls_back_and_writes_the_graph(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "graph.json"
    settings = SpinbotSettings(ollama_url="http://127.0.0.1:9", data_dir=tmp_path)
    code = await plan_command(settings, "a 20 second video about otters, male voice", out)
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert "not reachable" in printed and "approved" in printed
    graph = json.loads(out.read_text())
    assert graph["metadata"]["pipeline"] == "f5tts_infinitetalk"
    assert graph["nodes"][0]["params"]["duration_s"] == 20


async def test_plan_command_reply(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert await plan_command(SpinbotSettings(data_dir=tmp_path), "hi!", None) == 0
    assert "Spinbot" in capsys.readouterr().out


_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.text(max_size=12)
    | st.sampled_from(["script.narration", "talk.video", "attachment:face", "@face", "tts.synthesize", "image.render"]),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(
            st.sampled_from(["id", "service", "params", "inputs", "text", "items", "image", "steps", "prompt"]),
            inner,
            max_size=5,
        )
    ),
    max_leaves=25,
)


@settings(max_examples=150, deadline=None)
@given(st.one_of(_json, st.builds(lambda s: {"steps": s}, st.lists(_json, min_size=1, max_size=5))))
def test_any_llm_json_compiles_or_is_refused_never_crashes(answer: Any) -> None:
    try:
        doc = compile_plan(answer, MANIFEST, goal="g", attachments=[FACE], constraints={})
    except PlanShapeError:
        return
    evaluate(doc, MANIFEST)  # a verdict, whatever the LLM wrote
