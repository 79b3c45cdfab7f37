"""What a person reads in the browser: artifacts named by their step in the graph's order (not "voice
audio"), kinds of file in words, sizes as the settings count them, a reused step logged once, an estimate
that follows the text's length, and a mistyped address answered with a page (not raw problem+json)."""

from __future__ import annotations

import re
from typing import Any

from tests.ui.conftest import Console, LiveStack, Shots

SENTENCE = "Tides rise and fall twice a day, pulled by the moon. "


def spoken(text: str) -> dict[str, Any]:
    """A read-aloud with a picture: two steps that make files, the second listed first in the graph."""
    return {"schema": "langgraph.v1", "workflowId": "ui-say", "context": {"goal": "say it, with a card"}, "nodes": [
        {"id": "card", "name": "Draw the title card", "service": "image.render", "plane": "gpu",
         "params": {"prompt": "Tides", "kind": "title_card", "width": 256, "height": 144}},
        {"id": "voice", "name": "Speak the text", "service": "tts.synthesize", "plane": "gpu",
         "params": {"text": text}}], "edges": []}


async def test_artifacts_sizes_and_the_reused_log(stack: LiveStack, open_page: Any, shots: Shots) -> None:
    first = await stack.post("/api/jobs", {"graph": spoken(SENTENCE)})
    page = await open_page(f"/jobs/{first['id']}")
    await page.wait_for_selector(".job-panel[data-status='completed']", timeout=60_000)
    await page.wait_for_selector(".artifact audio")
    names = await page.locator(".artifact .artifact-name").all_inner_texts()
    assert names == ["Draw the title card: image", "Speak the text: audio"], names  # graph order, said once
    kinds = " ".join(await page.locator(".artifact .muted").all_inner_texts())
    assert re.search(r"PNG image, \d+ KB", kinds) and re.search(r"WAV audio file, \d+ KB", kinds), kinds
    assert "image/png" not in kinds and "audio/wav" not in kinds
    await shots(page, "artifacts")
    await page.reload()
    await page.wait_for_selector(".artifact audio")
    assert await page.locator(".artifact .artifact-name").all_inner_texts() == names  # the same after a reload

    again = await stack.post("/api/jobs", {"graph": spoken(SENTENCE)})  # the same steps: answered from the cache
    page = await open_page(f"/jobs/{again['id']}")
    await page.wait_for_selector(".job-panel[data-status='completed']", timeout=60_000)
    log = await page.locator(".log-tail").inner_text()
    for node in ("card", "voice"):
        assert len(re.findall(rf"\[{node}\] reused the outputs", log)) == 1, log  # said once, not twice
        assert f"[{node}] completed: reused, not run again" in log, log
    await shots(page, "reused-log")


async def test_a_longer_text_is_planned_longer(stack: LiveStack, open_page: Any, shots: Shots) -> None:
    short = await stack.post("/api/evaluate", {"graph": spoken(SENTENCE)})
    long = await stack.post("/api/evaluate", {"graph": spoken(SENTENCE * 17)})  # 901 characters
    seconds = [v["estimate"]["by_node"]["voice"] for v in (short, long)]
    assert seconds[1] > 5 * seconds[0], seconds
    job = await stack.post("/api/jobs", {"graph": spoken(SENTENCE * 17)})
    page = await open_page(f"/jobs/{job['id']}")
    await page.wait_for_selector(".job-panel")
    eta = await page.locator(".job-panel .bar-text").inner_text()
    await shots(page, "long-text-running")
    assert "ETA" in eta or "completed" in eta, eta
    await page.wait_for_selector(".job-panel[data-status='completed']", timeout=90_000)
    checks = await page.locator(".node-row[data-node='voice'] .checks").inner_text()
    assert re.search(r"\d+ s of speech|\d+ min \d+ s of speech", checks), checks  # not "50.7 s", not "1350.0 s"


async def test_a_mistyped_address_shows_a_page(stack: LiveStack, open_page: Any, shots: Shots,
                                              console: Console) -> None:
    console.allow("status of 404")  # Chromium logs the page's own 404 status
    page = await open_page("/")
    response = await page.goto(f"{stack.url}/jbos")
    assert response is not None and response.status == 404
    await page.wait_for_selector("h1:has-text('Page not found')")
    body = await page.locator("main").inner_text()
    assert "/jbos" in body and "your jobs" in body and "problem" not in body, body
    assert "Page not found" in await page.title()
    await shots(page, "not-found")
    await page.get_by_role("link", name="your jobs").click()
    await page.wait_for_selector("h1:has-text('Jobs')")
    # a program asking for JSON still gets problem details
    r = await stack.http.get("/jbos", headers={"Accept": "application/json"})
    assert r.status_code == 404 and r.headers["content-type"].startswith("application/problem+json")
