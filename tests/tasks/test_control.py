"""Control-plane services: the script writer (against a fake Ollama), publish, and the capabilities merge."""

from __future__ import annotations

from pathlib import Path

import pytest

from executors.control import capabilities, publish, script
from executors.gpu import info
from spinbot.errors import PermanentError
from spinbot.llm import LLMGarbage
from spinbot.manifest import MergedManifest
from tests.fake_ollama import FakeOllama, Reply
from tests.tasks.conftest import Harness

NARRATION = (
    "Solar panels are made of many small cells. When sunlight hits a cell, it knocks electrons loose. "
    "Those moving electrons are an electric current. An inverter turns it into the power your home uses."
)


@pytest.fixture
def llm(harness: Harness, fake_ollama: FakeOllama) -> FakeOllama:
    harness.settings = harness.settings.model_copy(update={"ollama_url": fake_ollama.url, "ollama_timeout_s": 10})
    return fake_ollama


async def test_script_from_structured_output(harness: Harness, llm: FakeOllama) -> None:
    llm.replies.append(
        {
            "title": "How Solar Panels Work",
            "narration": f"**{NARRATION}** [pause]",
            "stage": "A woman in a bright studio.",
        }
    )
    p = script.ScriptParams(topic="how solar panels work", duration_s=20, voice="female", language="de")
    out = await script.generate_script.handler(harness.ctx("script"), p)
    assert out["title"] == "How Solar Panels Work"
    assert out["narration"] == NARRATION, "markdown and stage directions must not be spoken"
    assert out["stage"] == "A woman in a bright studio."
    s = out["script"]
    assert s["words"] == len(NARRATION.split()) and s["target_words"] == 50
    assert s["estimated_duration_s"] == pytest.approx(len(NARRATION.split()) / 150 * 60, abs=0.1)
    (request,) = llm.chat_requests
    schema = request.format
    assert schema["required"] == ["title", "narration", "stage"] and not schema["additionalProperties"]
    assert all("maxLength" in prop for prop in schema["properties"].values()), "unbounded strings let a model ramble"
    prompt = " ".join(m["content"] for m in request.messages)
    assert "how solar panels work" in prompt and "about 50 words" in prompt and "German" in prompt
    assert request.options.get("num_predict", 0) <= 4096


async def test_overlong_narration_is_cut_at_a_sentence(harness: Harness, llm: FakeOllama) -> None:
    long = " ".join(f"Sentence number {i} says a few more words." for i in range(60))
    llm.replies.append({"title": "T", "narration": long, "stage": "A man."})
    out = await script.generate_script.handler(harness.ctx("script"), script.ScriptParams(topic="x", duration_s=10))
    words = out["script"]["words"]
    assert 15 <= words <= 25 * 1.2 and out["narration"].endswith(".")


async def test_empty_narration_is_garbage(harness: Harness, llm: FakeOllama) -> None:
    llm.replies.append(Reply('{"title": "T", "narration": "  ", "stage": ""}'))
    with pytest.raises(LLMGarbage):
        await script.generate_script.handler(harness.ctx("script"), script.ScriptParams(topic="x"))


async def test_publish_links_artifacts_and_keeps_values(harness: Harness, media: dict[str, Path]) -> None:
    wav = await harness.put(media["speech"], "jobs/job1/voice/speech.wav")
    img = await harness.put(media["portrait"], "jobs/job1/portrait/image.png")
    p = publish.PublishParams(items=[img, wav, {"title": "T", "words": 3}, "hello"], title="My video")
    summary = (await publish.publish.handler(harness.ctx("publish"), p))["summary"]
    assert summary["title"] == "My video" and summary["job"] == "job1" and summary["artifacts"] == 2
    assert summary["primary"]["key"] == "jobs/job1/voice/speech.wav", "audio outranks an image"
    first = summary["items"][0]
    assert first["url"] == "/api/artifacts/jobs/job1/portrait/image.png" and first["kind"] == "image"
    assert first["size"] == media["portrait"].stat().st_size
    assert summary["items"][2] == {"kind": "json", "value": {"title": "T", "words": 3}}
    assert summary["items"][3] == {"kind": "text", "value": "hello"}
    harness.settings = harness.settings.model_copy(update={"public_url": "https://spin.example/"})
    again = (await publish.publish.handler(harness.ctx("publish"), p))["summary"]
    assert again["items"][1]["url"] == "https://spin.example/api/artifacts/jobs/job1/voice/speech.wav"
    missing = {"key": "jobs/job1/nope/video.mp4", "contentType": "video/mp4", "size": 1, "sha256": "0"}
    with pytest.raises(PermanentError, match="not in the artifact store"):
        await publish.publish.handler(harness.ctx("publish"), publish.PublishParams(items=[missing]))


async def test_capabilities_merges_gpu_info_with_the_control_plane(harness: Harness) -> None:
    gpu = (await info.info.handler(harness.ctx("gpu"), info.InfoParams()))["info"]
    assert gpu["device"]["kind"] in ("cpu", "cuda") and gpu["device"]["total_mb"] > 0
    assert "used_mb" in gpu["device"]
    out = await capabilities.get_manifest.handler(harness.ctx("manifest"), capabilities.ManifestParams(gpu=gpu))
    merged = MergedManifest.model_validate(out["manifest"])
    assert merged.services["tts.synthesize"].planes == ["gpu"]
    assert merged.services["llm.generate_script"].planes == ["control"]
    assert merged.services["diag.echo"].planes == ["gpu", "control"], "the gpu node comes first"
    assert merged.planes["gpu"].devices[0]["kind"] == gpu["device"]["kind"]
    alone = await capabilities.get_manifest.handler(harness.ctx("manifest"), capabilities.ManifestParams())
    assert "tts.synthesize" not in alone["manifest"]["services"]
    with pytest.raises(PermanentError, match="gpu.info"):
        await capabilities.get_manifest.handler(
            harness.ctx("m"), capabilities.ManifestParams(gpu={"manifest": {"x": 1}})
        )
