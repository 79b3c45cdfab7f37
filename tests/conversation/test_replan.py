"""A planned chat job whose step fails for good goes on as a continuation that reuses what ran."""

from __future__ import annotations

import io
from typing import Any

import pytest
from PIL import Image

from spinbot.settings import Settings
from tests.web.conftest import LiveAPI, read_sse


@pytest.fixture
def api_settings(settings: Settings) -> Settings:
    """A GPU executor with 1,000 MB: speech (200 MB) runs, the portrait animation (1,500 MB) fails for good."""
    return settings.model_copy(update={"chat_job_limit_s": 20.0, "sse_ping_s": 5.0,
                                       "gpu_memory_mb": 1000})


def png() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (64, 64), (200, 120, 40)).save(buf, "PNG")
    return buf.getvalue()


async def test_a_failed_animation_goes_on_with_the_speech(api: LiveAPI, executors) -> None:
    async with api.client() as c:
        up = await c.post("/api/uploads", files={"files": ("face.png", png(), "image/png")})
        key = up.json()["items"][0]["key"]
        body = {"message": "make this photo say 'hello there'", "attachments": [{"key": key}]}
        async with c.stream("POST", "/api/chat", json=body) as resp:
            events: list[dict[str, Any]] = await read_sse(resp)
        jobs = [e["data"]["job_id"] for e in events if e["event"] == "job" and e["data"].get("status") == "queued"]
        replanning = [e["data"] for e in events if e["event"] == "planning" and e["data"].get("stage") == "replanning"]
        plans = [e["data"] for e in events if e["event"] == "plan"]
        done = events[-1]["data"]
        first = (await c.get(f"/api/jobs/{jobs[0]}")).json()
        second = (await c.get(f"/api/jobs/{done['job_id']}")).json()
    assert first["status"] == "failed"
    talk = next(n for n in first["graph"]["nodes"] if n["id"] == "talking_video")
    assert talk["status"] == "failed", talk
    assert len(replanning) == 1 and "1500 MB of device memory" in replanning[0]["message"], replanning
    assert len(plans) == 2 and plans[1]["replan"] == 1
    assert done["status"] == "completed" and done["job_id"] != jobs[0]
    items = second["graph"]["nodes"][0]["params"]["items"]
    assert [n["service"] for n in second["graph"]["nodes"]] == ["artifact.publish"]
    assert items[0]["key"].startswith(f"jobs/{jobs[0]}/speech/"), items  # the speech that ran, not made again
    assert second["graph"]["metadata"]["replan"]["of"] == jobs[0]
    answer = "".join(e["data"]["delta"] for e in events if e["event"] == "message")
    assert "speech" in answer and "failed" in answer
