"""The fixed pipelines: each builds a graph the evaluator approves; bad params are refused clearly."""

from __future__ import annotations

from typing import Any

import pytest

from evaluator import evaluate
from planner.pipelines import PipelineError, build_graph, list_pipelines
from spinbot.graph import Attachment
from tests.evaluator.declared import declared_manifest

MANIFEST = declared_manifest()
FACE = Attachment(id="face", kind="image", key="uploads/face.png")

CASES: list[tuple[str, dict[str, Any], list[Attachment], list[str]]] = [
    (
        "f5tts_infinitetalk",
        {"topic": "how solar panels work", "duration_s": 30, "voice": "female"},
        [],
        [
            "llm.generate_script",
            "tts.synthesize",
            "image.render",
            "video.animate_portrait",
            "video.upscale",
            "artifact.publish",
        ],
    ),
    (
        "svd_wav2lip",
        {"topic": "the water cycle"},
        [],
        [
            "llm.generate_script",
            "tts.synthesize",
            "image.render",
            "video.animate_portrait",
            "video.compose",
            "artifact.publish",
        ],
    ),
    (
        "sadtalker",
        {"text": "Hello, I am Spinbot."},
        [],
        ["tts.synthesize", "image.render", "video.animate_portrait", "artifact.publish"],
    ),
    (
        "sadtalker",
        {"text": "Hi!", "portrait": "face", "voice": "male"},
        [FACE],
        ["tts.synthesize", "video.animate_portrait", "artifact.publish"],
    ),
    ("capabilities", {}, [], ["gpu.info", "capabilities.get_manifest"]),
]


def test_listed_with_schemas() -> None:
    listed = {p.name: p.public() for p in list_pipelines()}
    assert set(listed) == {"f5tts_infinitetalk", "svd_wav2lip", "sadtalker", "capabilities"}
    assert all(set(p) == {"name", "description", "params_schema"} for p in listed.values())


@pytest.mark.parametrize(("name", "params", "attachments", "services"), CASES)
def test_every_pipeline_is_approved(
    name: str, params: dict[str, Any], attachments: list[Attachment], services: list[str]
) -> None:
    graph = build_graph(name, params, goal="a goal", attachments=attachments)
    assert [n.service for n in graph.nodes] == services
    assert graph.metadata["pipeline"] == name
    verdict = evaluate(graph, MANIFEST)
    assert verdict.ok, verdict.findings
    assert verdict.findings == []  # planes are right, every output is used
    assert verdict.graph is not None
    gpu_first = verdict.graph.nodes[0].plane == "gpu"
    assert gpu_first == (name in ("capabilities", "sadtalker"))


def test_params_land_in_the_graph() -> None:
    g = build_graph("f5tts_infinitetalk", {"topic": "tides", "duration_s": 60, "voice": "male", "upscale": 4})
    assert g.node("script").params["duration_s"] == 60
    assert g.node("voice").params["voice"] == "male"
    assert g.node("upscale").params["factor"] == 4
    assert {(e.source, e.target) for e in g.edges} == {
        ("script", "voice"),
        ("script", "portrait"),
        ("portrait", "talk"),
        ("voice", "talk"),
        ("talk", "upscale"),
        ("upscale", "publish"),
        ("script", "publish"),
    }
    no_subs = build_graph("svd_wav2lip", {"topic": "tides", "subtitles": False})
    assert "subtitles" not in no_subs.node("compose").params
    with_face = build_graph("sadtalker", {"text": "hi", "portrait": "face"}, attachments=[FACE])
    assert with_face.node("talk").params["image"] == {"$attachment": "face"}


@pytest.mark.parametrize(
    ("name", "params", "match"),
    [
        ("nope", {}, "no pipeline"),
        ("f5tts_infinitetalk", {}, "topic"),
        ("f5tts_infinitetalk", {"topic": "x", "duration_s": 9999}, "duration_s"),
        ("f5tts_infinitetalk", {"topic": "x", "voice": "robot"}, "voice"),
        ("sadtalker", {"text": "x", "cmd": "rm -rf /"}, "cmd"),
        ("sadtalker", {"text": "x", "portrait": "ghost"}, "not attached"),
    ],
)
def test_bad_params_are_refused(name: str, params: dict[str, Any], match: str) -> None:
    with pytest.raises(PipelineError, match=match):
        build_graph(name, params)
