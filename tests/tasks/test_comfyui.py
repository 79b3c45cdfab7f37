"""The ComfyUI engine against a server speaking ComfyUI's HTTP + websocket protocol (tests/fake_comfyui.py)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import av
import pytest

from executors.gpu import comfyui, image, video
from spinbot.errors import Cancelled, EngineUnavailable, PermanentError
from tests.fake_comfyui import FakeComfyUI
from tests.tasks.conftest import Harness

TALKING_HEAD = {
    "1": {"class_type": "LoadImage", "inputs": {"image": "{{image}}"}},
    "2": {"class_type": "LoadAudio", "inputs": {"audio": "{{audio}}"}},
    "3": {"class_type": "WanVideoSampler", "inputs": {"steps": 4, "image": ["1", 0], "audio": ["2", 0]}},
    "4": {"class_type": "VHS_VideoCombine", "inputs": {"images": ["3", 0], "frame_rate": "{{fps}}", "frames": 10,
                                                        "filename_prefix": "talk_{{size}}"}},
}  # fmt: skip


@pytest.fixture
def comfy(harness: Harness, fake_comfyui: FakeComfyUI) -> FakeComfyUI:
    harness.settings = harness.settings.model_copy(update={"comfyui_url": fake_comfyui.url})
    return fake_comfyui


def test_fill_keeps_types_and_rejects_unknown_placeholders() -> None:
    filled = comfyui.fill({"a": "{{n}}", "b": ["x {{n}} y", {"c": "{{ s }}"}], "d": 3}, {"n": 7, "s": "hi"})
    assert filled == {"a": 7, "b": ["x 7 y", {"c": "hi"}], "d": 3}
    with pytest.raises(PermanentError, match="missing"):
        comfyui.fill({"a": "{{missing}}"}, {})


async def test_image_render_runs_the_txt2img_workflow(harness: Harness, comfy: FakeComfyUI) -> None:
    out = await image.render.handler(
        harness.ctx("img"), image.ImageParams(prompt="a lighthouse at dusk", kind="title_card", width=200, height=120)
    )
    (sent,) = comfy.prompts
    nodes = sent["prompt"]
    assert nodes["6"]["inputs"]["text"] == "a lighthouse at dusk"
    assert (nodes["5"]["inputs"]["width"], nodes["5"]["inputs"]["height"]) == (200, 120)
    assert isinstance(nodes["3"]["inputs"]["seed"], int)
    with av.open(str(harness.path(out["image"]))) as c:
        frame = next(c.decode(video=0))
        assert (frame.width, frame.height) == (200, 120)
    await harness.settle()
    messages = [m for _, _, m in harness.progress("img")]
    assert any("3 4/4" in m for m in messages), "no sampler progress from the websocket"


async def test_animate_uses_an_installed_talking_head_workflow_and_muxes_the_audio(
    harness: Harness, comfy: FakeComfyUI, media: dict[str, Path]
) -> None:
    workflows = harness.settings.data_dir / "workflows"
    workflows.mkdir(parents=True)
    (workflows / "sadtalker.json").write_text(json.dumps(TALKING_HEAD))
    img, wav = await harness.put(media["portrait"]), await harness.put(media["speech"])
    out = await video.animate_portrait.handler(
        harness.ctx("talk"), video.AnimateParams(image=img, audio=wav, fps=10, size=128)
    )
    assert set(comfy.inputs) == {"portrait.png", "speech.wav"}
    assert comfy.prompts[0]["prompt"]["4"]["inputs"]["frame_rate"] == 10
    assert comfy.prompts[0]["prompt"]["4"]["inputs"]["filename_prefix"] == "talk_128"
    assert out["frames"] == 10
    with av.open(str(harness.path(out["video"]))) as c:
        assert c.streams.video[0].codec_context.width == 128
        assert c.streams.audio, "the engine's silent video did not get the speech muxed in"


async def test_animate_without_a_workflow_falls_back_to_the_builtin_engine(
    harness: Harness, comfy: FakeComfyUI, media: dict[str, Path]
) -> None:
    img, wav = await harness.put(media["portrait"]), await harness.put(media["speech"])
    out = await video.animate_portrait.handler(
        harness.ctx("talk"), video.AnimateParams(image=img, audio=wav, fps=5, size=64)
    )
    assert comfy.prompts == [] and out["frames"] > 5


async def test_node_error_is_permanent_with_comfyuis_message(harness: Harness, comfy: FakeComfyUI) -> None:
    comfy.fail_node = "3"
    with pytest.raises(PermanentError, match="CUDA out of memory"):
        await image.render.handler(harness.ctx("img"), image.ImageParams(prompt="x"))


async def test_validation_errors_are_reported(harness: Harness, comfy: FakeComfyUI) -> None:
    async with comfyui.ComfyClient(comfy.url) as client:
        with pytest.raises(PermanentError, match="Invalid file"):
            await client.submit({"1": {"class_type": "LoadImage", "inputs": {"image": "never-uploaded.png"}}})


async def test_cancel_interrupts_the_running_prompt(harness: Harness, comfy: FakeComfyUI) -> None:
    comfy.hang_node = "3"
    task = asyncio.ensure_future(image.render.handler(harness.ctx("img"), image.ImageParams(prompt="x")))
    for _ in range(200):
        if comfy.prompts:
            break
        await asyncio.sleep(0.02)
    harness.cancel.set()
    with pytest.raises(Cancelled):
        await task
    assert comfy.interrupts == 1


async def test_unreachable_server_is_engine_unavailable(harness: Harness) -> None:
    harness.settings = harness.settings.model_copy(update={"comfyui_url": "http://127.0.0.1:9"})
    with pytest.raises(EngineUnavailable):
        await image.render.handler(harness.ctx("img"), image.ImageParams(prompt="x"))
