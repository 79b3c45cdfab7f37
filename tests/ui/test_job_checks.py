"""The job page shows each step's checks and, once the job completed, its results against the request."""

from __future__ import annotations

from typing import Any

from tests.ui.conftest import Console, LiveStack, Shots

FOX = {"schema": "langgraph.v1", "workflowId": "checks-page", "context": {"goal": "draw a red fox in a snowy forest"},
       "metadata": {"expect": {"deliverables": ["image"], "image": "scene",
                               "image_prompt": "a red fox in a snowy forest"}},
       "nodes": [{"id": "image", "name": "Draw the image", "service": "image.render", "plane": "gpu",
                  "params": {"prompt": "a red fox in a snowy forest", "kind": "title_card", "width": 96,
                             "height": 64}}]}


async def test_the_job_page_shows_each_check_and_what_differs(stack: LiveStack, open_page: Any, shots: Shots,
                                                             console: Console) -> None:
    job = await stack.post("/api/jobs", {"graph": FOX})
    page = await open_page(f"/jobs/{job['id']}")
    await page.wait_for_selector(".job-panel[data-status='completed'] .findings:not([hidden])", timeout=60_000)
    checks = page.locator(".node-row[data-node='image'] .checks li")
    names = [await checks.nth(i).get_attribute("data-check") for i in range(await checks.count())]
    assert names == ["size", "blank", "content"]
    assert "96x64 px" in await checks.nth(0).inner_text() and "ok" in await checks.nth(0).inner_text()
    findings = await page.locator(".findings").inner_text()
    assert "Done, but not as asked:" in findings
    assert "the built-in renderer drew a title card, not 'a red fox in a snowy forest'" in findings
    await shots(page, "checks")
