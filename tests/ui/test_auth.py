"""With SPINBOT_API_KEYS set: the UI asks for a key, sends it, and media elements load artifacts with it."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from spinbot.settings import Settings
from tests.ui.conftest import Console, LiveStack, Shots

KEY = "ui-test-key"
TTS = {
    "schema": "langgraph.v1",
    "workflowId": "ui-tts",
    "context": {"goal": "speak a sentence (UI test)"},
    "nodes": [
        {
            "id": "voice",
            "service": "tts.synthesize",
            "plane": "gpu",
            "params": {"text": "The web UI sends its key, and the player loads this audio with it."},
        },
    ],
}


@pytest.fixture
def stack_settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"api_keys": [KEY]})


async def test_asks_for_the_key_and_plays_owned_audio(
    stack: LiveStack, open_page: Any, shots: Shots, console: Console
) -> None:
    auth = {"Authorization": f"Bearer {KEY}"}
    r = await stack.http.post("/api/jobs", json={"graph": TTS}, headers=auth)
    assert r.status_code == 202, r.text
    job_id = r.json()["id"]
    for _ in range(300):
        if (await stack.http.get(f"/api/jobs/{job_id}", headers=auth)).json()["status"] == "completed":
            break
        await asyncio.sleep(0.1)

    console.allow("status of 401")  # the browser logs the refused requests made before the key is set
    page = await open_page(f"/jobs/{job_id}")
    dialog = page.locator("#key-dialog")
    await dialog.wait_for()  # the 401 opened it
    await dialog.get_by_label("Key").fill(KEY)
    await shots(page, "asked")
    await dialog.get_by_role("button", name="Save").click()

    await page.wait_for_selector(".job-panel[data-status='completed']")
    audio = page.locator(".artifact audio")
    src = await audio.get_attribute("src")
    assert src and ("sig=" in src or "api_key=" in src), src  # media elements cannot send headers
    duration = await audio.evaluate(
        "a => a.readyState >= 1 ? a.duration"
        " : new Promise(r => a.addEventListener('loadedmetadata', () => r(a.duration), {once: true}))"
    )
    assert duration > 1.0
    await shots(page, "playable")
    # Another browser without the key sees nothing of it.
    other = await open_page(f"/jobs/{job_id}")
    await other.locator("#key-dialog").wait_for()
    assert await other.locator(".job-panel").count() == 0
