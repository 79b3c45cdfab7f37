"""Control-plane services: the script writer (against a fake Ollama), publish, and the capabilities merge."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from executors.control import capabilities, publish, script
from executors.gpu import info
from executors.manifests import registry
from spinbot.errors import PermanentError
from spinbot.llm import LLMGarbage, LLMPromptTooLong, num_ctx_for, probe, prompt_tokens_for
from spinbot.manifest import MergedManifest
from spinbot.settings import Settings
from tests.fake_ollama import FakeOllama, Reply
from tests.tasks.conftest import Harness

NARRATION = (
    "Solar panels are made of many small cells. When sunlight hits a cell, it knocks electrons loose. "
    "Those moving electrons are an electric current. An inverter turns it into the power your home uses. "
    "On a sunny day a roof of panels can run a whole house, and extra power flows back into the grid."
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
    # and the narration cannot stop short: 95 % of 50 words at 7 characters each (German words run long)
    assert schema["properties"]["narration"]["minLength"] == int(50 * script.MIN_FILL * 7.0)
    english = script.schema(script.ScriptParams(topic="x", duration_s=20))["properties"]["narration"]
    assert english["minLength"] == int(50 * script.MIN_FILL * script.MIN_CHARS_PER_WORD)
    prompt = " ".join(m["content"] for m in request.messages)
    assert "how solar panels work" in prompt and "50 words" in prompt and "German" in prompt
    assert "4 plain spoken sentences" in prompt  # a small model keeps a count of sentences better than of words
    assert "solar" not in request.messages[0]["content"], "the system part is the same bytes for every script"
    assert request.options.get("num_predict", 0) <= 4096


async def test_overlong_narration_is_cut_at_a_sentence(harness: Harness, llm: FakeOllama) -> None:
    long = " ".join(f"Sentence number {i} says a few more words." for i in range(60))
    llm.replies.append({"title": "T", "narration": long, "stage": "A man."})
    out = await script.generate_script.handler(harness.ctx("script"), script.ScriptParams(topic="x", duration_s=10))
    words = out["script"]["words"]
    assert 15 <= words <= 25 * 1.2 and out["narration"].endswith(".")


async def test_a_short_script_is_asked_for_in_short_sentences(harness: Harness, llm: FakeOllama) -> None:
    """25 words in 2 sentences of ~12 leave `fit` no sentence end within 15 % of the target; 3 of ~8 do."""
    llm.replies.append({"title": "Sun", "narration": words(25), "stage": "A woman."})
    await script.generate_script.handler(harness.ctx("script"), script.ScriptParams(topic="sun", duration_s=10))
    asked = llm.chat_requests[0].messages[-1]["content"]
    assert "3 plain spoken sentences of about 8 words each, 25 words in all" in asked
    assert [script.sentences(w) for w in (25, 50, 75, 150)] == [3, 4, 6, 12]


async def test_an_overlong_narration_is_asked_for_again_in_shorter_sentences(harness: Harness, llm: FakeOllama) -> None:
    one_sentence = " ".join(["sunlight"] * 39 + ["shines."])  # no sentence end to cut it at
    llm.replies += [{"title": "Sun", "narration": one_sentence, "stage": "A woman."},
                    {"title": "Sun", "narration": words(25), "stage": "A woman."}]
    out = await script.generate_script.handler(harness.ctx("script"), script.ScriptParams(topic="sun", duration_s=10))
    assert out["script"]["words"] == 25
    feedback = llm.chat_requests[1].messages[-1]["content"]
    assert "has 40 words" in feedback and "shorter: 3 sentences of at most 8 words each" in feedback


def test_a_narration_with_no_sentence_end_near_the_target_is_cut_after_a_clause() -> None:
    three = ("Coffee is a drink loved by people around the world. It comes from roasted beans, grown in warm and "
             "sunny hills. Each cup brings warmth, energy and a moment of calm.")  # sentence ends at 10, 20, 31
    assert script.fit(three, 25) == three.split(", energy")[0] + "."
    assert len(script.fit(three, 25).split()) == 25
    two = "Solar panels turn light into power. They work on every roof, in every town, all year long."
    assert script.fit(two, 16) == two, "within 15 % of the target (17 of 16 words) it is kept whole"
    assert script.fit(two, 6) == "Solar panels turn light into power.", "a sentence end within 15 % wins"


async def test_empty_narration_is_garbage(harness: Harness, llm: FakeOllama) -> None:
    llm.replies += [Reply('{"title": "T", "narration": "  ", "stage": ""}')] * 2
    with pytest.raises(LLMGarbage, match="no narration"):
        await script.generate_script.handler(harness.ctx("script"), script.ScriptParams(topic="x"))
    assert len(llm.chat_requests) == 2, "an empty narration is asked for once more, then fails"


def words(n: int) -> str:
    """A narration of exactly n words, in sentences of five."""
    sentences = [" ".join(["sunlight"] * 4 + ["shines."]) for _ in range(n // 5)]
    return " ".join([*sentences, *(["more"] * (n % 5))])


async def test_short_narration_is_asked_for_again(harness: Harness, llm: FakeOllama) -> None:
    short = {"title": "Sun", "narration": "Solar panels make clean power.", "stage": "A woman in a studio."}
    llm.replies += [short, {"title": "Sun", "narration": words(75), "stage": "A woman in a studio."}]
    out = await script.generate_script.handler(harness.ctx("script"), script.ScriptParams(topic="sun", duration_s=30))
    assert out["script"]["words"] == 75 and out["script"]["target_words"] == 75
    first, second = llm.chat_requests
    assert second.format == first.format and second.options["num_predict"] == first.options["num_predict"]
    assert second.messages[:-1][-1] == {"role": "assistant", "content": json.dumps(short)}, "it sees its own answer"
    feedback = second.messages[-1]
    assert feedback["role"] == "user"
    assert "has 5 words" in feedback["content"] and "~75 words (30 s at 150 wpm)" in feedback["content"]
    assert any("asking again" in d.get("message", "") for _, k, d in harness.events if k == "log")


async def test_cut_off_answer_is_asked_for_again(harness: Harness, llm: FakeOllama) -> None:
    llm.replies += [
        Reply('{"title": "Sun", "narration": "Solar panels turn sunlight into', done_reason="length"),
        {"title": "Sun", "narration": NARRATION, "stage": "A man in a studio."},
    ]
    out = await script.generate_script.handler(harness.ctx("script"), script.ScriptParams(topic="sun", duration_s=20))
    assert out["narration"] == NARRATION
    assert len(llm.chat_requests) == 2
    assert "cut off" in llm.chat_requests[1].messages[-1]["content"]


async def test_still_off_after_the_second_answer_keeps_the_closer_one(harness: Harness, llm: FakeOllama) -> None:
    llm.replies += [
        {"title": "Sun", "narration": words(20), "stage": "A woman."},
        {"title": "Sun", "narration": words(10), "stage": "A woman."},
    ]
    out = await script.generate_script.handler(harness.ctx("script"), script.ScriptParams(topic="sun", duration_s=30))
    assert out["script"]["words"] == 20, "the closer of the two answers is kept"
    assert len(llm.chat_requests) == 2, "only one second try"
    logs = [d.get("message", "") for _, k, d in harness.events if k == "log"]
    assert any("20 words, the target ~75" in m for m in logs)


async def test_garbage_twice_fails(harness: Harness, llm: FakeOllama) -> None:
    llm.replies += ["Sure! Here is your script", "Sure! Here it is again"]
    with pytest.raises(LLMGarbage, match="not JSON"):
        await script.generate_script.handler(harness.ctx("script"), script.ScriptParams(topic="x"))
    assert len(llm.chat_requests) == 2


@pytest.mark.parametrize("duration_s", [5, 30, 120, 600])
@pytest.mark.parametrize("language", ["en", "ru"])
def test_num_predict_covers_the_longest_answer_the_schema_allows(duration_s: float, language: str) -> None:
    p = script.ScriptParams(topic="x", duration_s=duration_s, language=language)
    max_ctx = Settings().ollama_num_ctx_max
    sch, num_predict = script.sized(p, max_ctx)
    allowed_chars = sum(prop["maxLength"] for prop in sch["properties"].values())
    assert num_predict >= allowed_chars / 3 + 32, "a model using all the room the schema gives is never cut off"
    target = script.target_words(duration_s)
    assert sch["properties"]["narration"]["maxLength"] >= target * 7 * 1.1, "room for more than the target"
    feedback = {"role": "user", "content": "your narration has 5 words; the target is ~1500 words; write it again"}
    num_ctx_for([*script.messages(p), feedback], num_predict, max_ctx)  # the second try fits the context too
    if duration_s <= 120:
        assert sch == script.schema(p), "a short script's schema is not shrunk"


async def test_a_script_too_long_for_the_context_fails_before_asking(harness: Harness, llm: FakeOllama) -> None:
    harness.settings = harness.settings.model_copy(update={"ollama_num_ctx_max": 2048})
    with pytest.raises(LLMPromptTooLong, match="600 s script"):
        await script.generate_script.handler(harness.ctx("s"), script.ScriptParams(topic="x", duration_s=600))
    assert llm.requests == []


async def test_script_request_sizes_its_context(harness: Harness, llm: FakeOllama) -> None:
    llm.replies.append({"title": "T", "narration": words(150), "stage": "A man."})
    await script.generate_script.handler(harness.ctx("script"), script.ScriptParams(topic="x", duration_s=60))
    (request,) = llm.chat_requests
    allowed = sum(prop["maxLength"] for prop in request.format["properties"].values())
    assert request.options["num_predict"] * 3 >= allowed
    sent = [{"role": m["role"], "content": m["content"]} for m in request.messages]
    assert prompt_tokens_for(sent) + request.options["num_predict"] <= request.options["num_ctx"]


def test_the_script_service_is_unavailable_while_no_llm_answers(harness: Harness, fake_ollama: FakeOllama) -> None:
    assert script.generate_script.probe is probe
    control = registry("control")
    spec = control.manifest(harness.settings).model_dump()  # harness: nothing listens on its Ollama URL
    by_id = {s["id"]: s for s in spec["services"]}
    assert by_id["llm.generate_script"]["available"] is False
    assert "not reachable" in by_id["llm.generate_script"]["unavailable_reason"]
    assert by_id["artifact.publish"]["available"] is True, "only the LLM's services depend on it"
    up = harness.settings.model_copy(update={"ollama_url": fake_ollama.url})
    assert {s.id: s.available for s in control.manifest(up).services}["llm.generate_script"] is True


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
    gpu = (await info.info.handler(harness.ctx("gpu", plane="gpu"), info.InfoParams()))["info"]
    assert gpu["device"]["kind"] in ("cpu", "cuda") and gpu["device"]["total_mb"] > 0
    assert "used_mb" in gpu["device"]
    control = harness.ctx("manifest", plane="control")
    out = await capabilities.get_manifest.handler(control, capabilities.ManifestParams(gpu=gpu))
    merged = MergedManifest.model_validate(out["manifest"])
    assert merged.services["tts.synthesize"].planes == ["gpu"]
    assert merged.services["llm.generate_script"].planes == ["control"]
    assert merged.services["diag.echo"].planes == ["gpu", "control"], "the gpu node comes first"
    assert merged.planes["gpu"].devices[0]["kind"] == gpu["device"]["kind"]
    alone = await capabilities.get_manifest.handler(control, capabilities.ManifestParams())
    assert "tts.synthesize" not in alone["manifest"]["services"]
    with pytest.raises(PermanentError, match="gpu.info"):
        await capabilities.get_manifest.handler(
            harness.ctx("m", plane="control"), capabilities.ManifestParams(gpu={"manifest": {"x": 1}})
        )
