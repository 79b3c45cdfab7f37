"""The committed manifests/*.json are what the registries generate; probes take services off the live manifest."""

from __future__ import annotations

import json

import pytest

from executors.control.registry import build as control
from executors.gpu import espeak, media
from executors.gpu.registry import build as gpu
from executors.manifests import render
from spinbot import MANIFESTS_DIR
from spinbot.errors import EngineUnavailable
from spinbot.settings import Settings

CATALOG = {
    "control": {"llm.generate_script", "artifact.publish", "capabilities.get_manifest"},
    "gpu": {"gpu.info", "tts.synthesize", "image.render", "video.animate_portrait", "video.upscale", "video.compose",
            "voice.prepare"},
}


@pytest.mark.parametrize("plane", ["control", "gpu"])
def test_committed_manifest_is_generated(plane: str) -> None:
    committed = (MANIFESTS_DIR / f"{plane}.json").read_text()
    assert committed == render(plane), f"manifests/{plane}.json is stale: run `spinbot manifest`"  # type: ignore[arg-type]
    assert CATALOG[plane] <= {s["id"] for s in json.loads(committed)["services"]}


def test_catalog_outputs() -> None:
    g, c = gpu(), control()
    assert g.get("tts.synthesize").outputs == {"audio": "audio", "duration_s": "number", "voice_match": "text"}
    assert g.get("voice.prepare").outputs == {"voice": "audio", "features": "json"}
    assert g.get("video.animate_portrait").outputs == {"video": "video", "frames": "number", "duration_s": "number",
                                                           "mouth": "json"}
    assert c.get("llm.generate_script").outputs == {
        "title": "text",
        "narration": "text",
        "stage": "text",
        "script": "json",
    }
    assert c.get("llm.generate_script").constraints["max_duration_s"].param == "duration_s"


def test_missing_engines_take_services_off_the_live_manifest(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_espeak() -> None:
        raise EngineUnavailable("eSpeak NG is not installed", hint="pip install espeakng-loader")

    def no_ffmpeg() -> str:
        raise EngineUnavailable("no ffmpeg binary", hint="pip install imageio-ffmpeg")

    live = {s.id: s for s in gpu().manifest(Settings()).services}
    assert live["tts.synthesize"].available and live["video.upscale"].available
    monkeypatch.setattr(espeak, "load", no_espeak)
    monkeypatch.setattr(media, "ffmpeg_exe", no_ffmpeg)
    live = {s.id: s for s in gpu().manifest(Settings()).services}
    assert not live["tts.synthesize"].available and "eSpeak" in (live["tts.synthesize"].unavailable_reason or "")
    assert not live["video.animate_portrait"].available and "ffmpeg" in (live["video.compose"].unavailable_reason or "")
    assert live["image.render"].available
    assert not live["voice.prepare"].available and "ffmpeg" in (live["voice.prepare"].unavailable_reason or "")
    remote = {s.id: s for s in gpu().manifest(Settings(tts_url="http://tts:8000")).services}
    assert remote["tts.synthesize"].available, "a configured TTS server needs no eSpeak"
