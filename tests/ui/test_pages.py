"""The capabilities page, the job history and the job page at phone width, reached by keyboard."""

from __future__ import annotations

from typing import Any

from tests.ui.conftest import LiveStack, Shots

ECHO = {
    "schema": "langgraph.v1",
    "workflowId": "ui-echo",
    "context": {"goal": "echo hello (UI test)"},
    "nodes": [{"id": "echo", "service": "diag.echo", "plane": "control", "params": {"text": "hello"}}],
}


async def no_sideways_scroll(page: Any) -> None:
    width = await page.evaluate("() => document.documentElement.scrollWidth")
    assert width <= 375, f"the page is {width} px wide at a 375 px viewport"


async def test_pages_at_375px_by_keyboard(stack: LiveStack, open_page: Any, shots: Shots) -> None:
    job = await stack.post("/api/jobs", {"graph": ECHO})
    page = await open_page("/capabilities", width=375, height=800)
    await page.wait_for_selector("section.plane[data-plane='gpu']")
    gpu = page.locator("section.plane[data-plane='gpu']")
    assert "executor live" in await gpu.locator("h2").inner_text()
    assert "CPU (test)" in await gpu.locator(".devices").inner_text()
    assert await gpu.locator("tr[data-service='diag.wait']").count() == 1
    assert await page.locator("section.plane[data-plane='control'] tr[data-service='diag.echo']").count() == 1
    await no_sideways_scroll(page)
    await shots(page, "capabilities")

    # The menu, by keyboard: focus the toggle, open it (focus moves into it), tab to "Jobs", follow it.
    await page.focus("#menu-toggle")
    await page.keyboard.press("Enter")
    assert await page.get_attribute("#menu-toggle", "aria-expanded") == "true"
    assert await page.evaluate("() => document.activeElement.textContent") == "Chat"
    await shots(page, "menu-open")
    await page.keyboard.press("Tab")
    assert await page.evaluate("() => document.activeElement.textContent") == "Jobs"
    await page.keyboard.press("Enter")
    row = page.locator(f"tr[data-job='{job['id']}']")
    await row.wait_for()
    assert "completed" in await row.inner_text()
    await no_sideways_scroll(page)
    await shots(page, "jobs")

    await row.locator("a").focus()
    await page.keyboard.press("Enter")
    await page.wait_for_selector(".job-panel[data-status='completed']")
    assert "echo hello (UI test)" in await page.locator(".page .goal").inner_text()
    assert await page.locator(".node-row[data-node='echo'].status-completed").count() == 1
    await no_sideways_scroll(page)
    await shots(page, "job")


MARKDOWN_CASES = """async () => {
  const { renderMarkdown } = await import('/js/markdown.js');
  const html = (src) => renderMarkdown(src);
  return {
    script: html('<script>window.pwned = 1</script> and <img src=x onerror="window.pwned = 2">'),
    js_link: html('[click](javascript:alert(1)) [ok](/jobs/abc) ![pic](data:image/png;base64,AAAA)'),
    format: html('# Title\\n\\n**bold** and *em* and `<code>`\\n\\n- one\\n- two\\n\\n```\\n<b>raw</b>\\n```'),
  };
}"""


async def test_markdown_is_rendered_and_escaped(stack: LiveStack, open_page: Any) -> None:
    page = await open_page("/")
    out = await page.evaluate(MARKDOWN_CASES)
    assert "<script" not in out["script"] and "<img" not in out["script"]
    assert "&lt;script&gt;" in out["script"]
    assert "javascript:" not in out["js_link"] and "data:image" not in out["js_link"]
    assert '<a href="/jobs/abc">ok</a>' in out["js_link"]
    fmt = out["format"]
    assert "<h3>Title</h3>" in fmt and "<strong>bold</strong>" in fmt and "<em>em</em>" in fmt
    assert "<code>&lt;code&gt;</code>" in fmt and "<li>two</li>" in fmt
    assert "<pre><code>&lt;b&gt;raw&lt;/b&gt;</code></pre>" in fmt
    assert await page.evaluate("() => window.pwned") is None
