"""A signed job link (what chat answers link) opens the job page read-only in a browser that has no key."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from spinbot.settings import Settings
from tests.ui.conftest import Console, LiveStack, Shots

KEY = "signed-page-key"
SPEAK = {"schema": "langgraph.v1", "workflowId": "signed-page", "context": {"goal": "speak (signed page test)"},
         "nodes": [{"id": "voice", "service": "tts.synthesize", "plane": "gpu",
                    "params": {"text": "Anyone with the link can play this, and nobody can cancel it."}}]}


@pytest.fixture
def stack_settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"api_keys": [KEY]})


async def start_job(stack: LiveStack, graph: dict[str, Any]) -> str:
    r = await stack.http.post("/api/jobs", json={"graph": graph}, headers={"Authorization": f"Bearer {KEY}"})
    assert r.status_code == 202, r.text
    return str(r.json()["id"])


async def test_signed_job_page_follows_and_plays_without_a_key(stack: LiveStack, open_page: Any, shots: Shots,
                                                              console: Console) -> None:
    job_id = await start_job(stack, SPEAK)
    links = stack.settings  # the app signs with the secret in its data directory: the same signer here
    from conversation.auth import LinkSigner

    query = LinkSigner.from_settings(links).job_query(job_id)
    page = await open_page(f"/jobs/{job_id}?{query}")
    await page.wait_for_selector(".job-panel[data-status='completed']", timeout=60_000)  # followed live
    await shots(page, "signed")
    assert not await page.locator("#key-dialog").evaluate("d => d.open")
    assert await page.locator(".job-panel button.danger").count() == 0  # read-only: no Cancel
    audio = page.locator(".artifact audio")
    assert "sig=" in str(await audio.get_attribute("src"))
    duration = await audio.evaluate(
        "a => a.readyState >= 1 ? a.duration"
        " : new Promise(r => a.addEventListener('loadedmetadata', () => r(a.duration), {once: true}))")
    assert duration > 1.0

    console.allow("status of 401")  # the refused read below
    expired = await open_page(f"/jobs/{job_id}?exp=1&sig=AAAA")
    await expired.get_by_text("This job link has expired").wait_for()
    await asyncio.sleep(0)  # nothing else to wait for: the page says why
